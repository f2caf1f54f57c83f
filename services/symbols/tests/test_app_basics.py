# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.


def test_index_and_dockerflow(service):
    app = service.app
    assert "Tecken symbols" in app.get("/").text
    assert app.get("/__lbheartbeat__").status_int == 200
    body = app.get("/__heartbeat__").json
    assert body["status"] == "ok", body
    assert set(body["checks"]) == {"database", "storage_regular", "storage_try"}
    assert app.get("/__version__").json == {}  # no version.json: Dockerflow says {}


def test_unknown_path_is_json_404(fs_service):
    resp = fs_service.app.get("/nope", status=404)
    assert resp.json == {"error": "Not Found", "path": "/nope"}
