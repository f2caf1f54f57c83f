# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

import json
import os
import time

import pytest
from everett import InvalidValueError

from tecken_eliot.app import create_app
from tecken_shared.config import build_config_manager


def write_heartbeat(cache_dir, age=0.0):
    (cache_dir / "cache-manager.json").write_text(json.dumps({"time": time.time() - age, "pid": 1}))


def test_index_and_dockerflow(app, cache_dir):
    assert "Tecken eliot" in app.get("/").text
    resp = app.get("/__lbheartbeat__")
    assert resp.status_int == 200
    assert resp.content_type == "application/json"
    write_heartbeat(cache_dir)
    assert app.get("/__heartbeat__").json["status"] == "ok"
    assert app.get("/__version__").json == {}  # no version.json: Dockerflow says {}
    assert app.get("/__broken__", expect_errors=True).status_int == 500


def test_heartbeat_fails_without_cache_manager(app, cache_dir):
    resp = app.get("/__heartbeat__", expect_errors=True)
    assert resp.status_int == 500
    assert resp.json["checks"]["cache_manager"] == "error"
    assert "no heartbeat" in resp.json["details"]["cache_manager"]["messages"][0]
    write_heartbeat(cache_dir, age=600)
    resp = app.get("/__heartbeat__", expect_errors=True)
    assert resp.status_int == 500
    assert "600s old" in resp.json["details"]["cache_manager"]["messages"][0]


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_heartbeat_fails_on_read_only_cache_dir(app, cache_dir):
    write_heartbeat(cache_dir)
    os.chmod(cache_dir / "tmp", 0o500)
    try:
        resp = app.get("/__heartbeat__", expect_errors=True)
    finally:
        os.chmod(cache_dir / "tmp", 0o700)
    assert resp.status_int == 500
    assert resp.json["checks"]["cache_dir"] == "error"


def test_heartbeat_fails_when_cache_dir_vanishes(app, cache_dir):
    write_heartbeat(cache_dir)
    os.rename(cache_dir / "tmp", cache_dir / "gone")
    (cache_dir / "tmp").write_text("a file where the directory should be")
    resp = app.get("/__heartbeat__", expect_errors=True)
    assert resp.status_int == 500
    assert resp.json["checks"]["cache_dir"] == "error"
    assert "not writable" in resp.json["details"]["cache_dir"]["messages"][0]


def test_cors(app):
    resp = app.post_json("/symbolicate/v5", {"jobs": []}, headers={"Origin": "https://example.com"})
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    resp = app.post(
        "/symbolicate/v5", b"{", headers={"Origin": "https://x.org"}, expect_errors=True
    )
    assert resp.status_int == 400
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    resp = app.options(
        "/symbolicate/v5",
        headers={"Origin": "https://x.org", "Access-Control-Request-Method": "POST"},
    )
    assert resp.status_int == 200
    assert "POST" in resp.headers["Access-Control-Allow-Methods"]


def test_pageview_metric(app, metricsmock):
    app.get("/")
    app.post_json("/symbolicate/v5", {"jobs": []})
    metricsmock.assert_incr("eliot.pageview", tags=["path:/", "method:get"])
    metricsmock.assert_incr("eliot.pageview", tags=["path:/symbolicate/v5", "method:post"])


def test_symbol_urls_must_be_http(tmp_path):
    env = {"ELIOT_SYMBOL_URLS": "ftp://x/", "ELIOT_SYMBOLS_CACHE_DIR": str(tmp_path)}
    with pytest.raises(InvalidValueError):
        create_app(build_config_manager(env, str(tmp_path / "none.env")))


def test_old_symbols_urls_name_is_accepted(tmp_path, symbol_server):
    env = {
        "ELIOT_SYMBOLS_URLS": "http://a.example/,http://b.example",
        "ELIOT_SYMBOLS_CACHE_DIR": str(tmp_path),
    }
    app = create_app(build_config_manager(env, str(tmp_path / "none.env")))
    assert app.store.downloader.source_urls == ["http://a.example/", "http://b.example"]


def test_default_symbol_url_is_local_symbols_service(tmp_path):
    app = create_app(
        build_config_manager({"ELIOT_SYMBOLS_CACHE_DIR": str(tmp_path)}, str(tmp_path / "none.env"))
    )
    assert app.store.downloader.source_urls == ["http://localhost:3000/"]


def test_options_are_logged_at_startup(make_app, capfd):
    make_app(ELIOT_DOWNLOAD_TIMEOUT="3.5")
    err = capfd.readouterr().err
    assert "ELIOT_DOWNLOAD_TIMEOUT=3.5" in err
    assert "ELIOT_SYMBOLS_CACHE_MAX_SIZE=1gb" in err  # as configured


def test_statsd_port_defaults_to_eliots_8124_and_can_be_set() -> None:
    from tecken_eliot.settings import EliotCommonConfig
    from tecken_shared.config import build_config_manager

    default = build_config_manager(environ={}, env_file=None)
    assert default.with_namespace("eliot").with_options(EliotCommonConfig)("statsd_port") == 8124
    custom = build_config_manager(environ={"ELIOT_STATSD_PORT": "9999"}, env_file=None)
    assert custom.with_namespace("eliot").with_options(EliotCommonConfig)("statsd_port") == 9999
