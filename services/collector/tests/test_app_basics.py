# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

import webtest

from tecken_collector.app import create_app
from tecken_shared.config import build_config_manager


def test_index_and_dockerflow(tmp_path):
    app = webtest.TestApp(
        create_app(
            build_config_manager(
                {"COLLECTOR_CRASHSTORAGE_ROOT": str(tmp_path)}, str(tmp_path / "none.env")
            )
        )
    )
    assert "Tecken collector" in app.get("/").text
    assert app.get("/__lbheartbeat__").status_int == 200
    assert app.get("/__heartbeat__").json["status"] == "ok"
    assert "version" in app.get("/__version__").json
