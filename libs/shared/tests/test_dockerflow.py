# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

import json

import falcon
import webtest

from tecken_shared.dockerflow import add_dockerflow_routes


def make_app(checks, tmp_path=None, version=None):
    app = falcon.App()
    version_file = None
    if tmp_path is not None and version is not None:
        version_file = tmp_path / "version.json"
        version_file.write_text(json.dumps(version))
    add_dockerflow_routes(app, checks=checks, version_file=version_file)
    return webtest.TestApp(app)


def test_lbheartbeat():
    resp = make_app({}).get("/__lbheartbeat__")
    assert resp.status_int == 200
    assert resp.content_type == "application/json"
    assert resp.json == {}  # the JSON its type says (schemathesis checks it)


def test_heartbeat_ok_and_failing():
    def broken():
        raise ConnectionError("redis at 127.0.0.1:1 refused the connection")

    app = make_app(
        {"storage": lambda: None, "redis": broken, "disk": lambda: "cache dir is read-only"}
    )
    resp = app.get("/__heartbeat__", status=500)
    assert resp.json["status"] == "error"
    assert resp.json["checks"] == {"storage": "ok", "redis": "error", "disk": "error"}
    assert {e["name"] for e in resp.json["errors"]} == {"redis", "disk"}
    assert "refused" in resp.json["details"]["redis"]["messages"][0]
    ok = make_app({"storage": lambda: None}).get("/__heartbeat__")
    assert ok.json["status"] == "ok"


def test_version_file_and_fallback(tmp_path):
    info = {
        "source": "https://example.invalid/tecken",
        "version": "1.2.3",
        "commit": "abc",
        "build": "b",
    }
    assert make_app({}, tmp_path, info).get("/__version__").json == info
    assert make_app({}).get("/__version__").json == {}


def test_broken_raises():
    app = make_app({})
    app.get("/__broken__", status=500, expect_errors=True)


def test_release_name_prefers_version_json(tmp_path):
    from tecken_shared.dockerflow import release_name

    (tmp_path / "version.json").write_text('{"version": "9.9.9"}')
    assert release_name(tmp_path / "version.json", "tecken-shared") == "9.9.9"
    assert release_name(tmp_path / "none.json", "tecken-shared") == "0.1.0"
    assert release_name(None, "no-such-package") == "unknown"
