# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

import threading

import pytest
import webtest
from everett import InvalidValueError

from tecken_collector.app import create_app
from tecken_collector.crashmover import run
from tecken_collector.seconds import parse_seconds
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
    assert app.get("/__version__").json == {}  # no version.json: Dockerflow says {}


@pytest.mark.parametrize(
    "option",
    ["READ_TIMEOUT", "CRASHMOVER_POLL_INTERVAL", "CRASHMOVER_STALE_SECONDS"],
)
@pytest.mark.parametrize("value", ["-1", "nan"])
def test_negative_seconds_refused_at_start_up(tmp_path, option, value):
    """A negative read timeout made every request under gunicorn a 500; a
    negative stale age made the sweep delete temp files of saves in flight."""
    env = {"COLLECTOR_CRASHSTORAGE_ROOT": str(tmp_path), f"COLLECTOR_{option}": value}
    manager = build_config_manager(env, str(tmp_path / "none.env"))
    with pytest.raises(InvalidValueError, match=f"COLLECTOR_{option}"):
        create_app(manager)
        stopped = threading.Event()
        stopped.set()  # reads its options, then no pass
        run(manager, stopped)  # the crashmover's options


def test_zero_seconds_allowed():
    assert parse_seconds("0") == 0
    assert parse_seconds("0.5") == 0.5


def test_openapi_describes_every_route(app):
    from tecken_collector.app import OPENAPI_SPEC
    from tecken_shared.openapi import load_spec, spec_mismatches

    spec = app.get("/__openapi__.json").json
    assert spec == load_spec(OPENAPI_SPEC)
    undescribed, missing = spec_mismatches(app.app, spec)
    assert (undescribed, missing) == ([], [])


def test_errors_outside_submit_have_the_json_error_shape(app):
    resp = app.get("/no/such/path", expect_errors=True)
    assert resp.status_int == 404
    assert resp.json["error"]
    resp = app.get("/submit", expect_errors=True)
    assert resp.status_int == 405
    assert resp.json["error"]
    resp = app.get("/__broken__", expect_errors=True)
    assert resp.status_int == 500
    assert resp.json["error"]
