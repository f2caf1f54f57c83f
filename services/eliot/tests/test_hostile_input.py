# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The findings of the hostile-input review (RT-03, 04, 06, 07, 13, 25 and
issue 16's redirect message), against real symbol servers on 127.0.0.1."""

import json
import logging
import time
import uuid

import pytest

from tecken_eliot.diskcache import DiskCache
from tecken_eliot.naming import cache_stem, module_key
from tecken_eliot.testing import QIPCAP, SSLTUNNEL
from tecken_shared.breakpad import symbol_key
from tecken_shared.testing.servers import free_port, wsgi_server


def post(app, payload, **kw):
    return app.post("/symbolicate/v5", json.dumps(payload), content_type="application/json", **kw)


def flood(modules):
    names = [
        [f"flood{uuid.uuid4().hex[:12]}.pdb", uuid.uuid4().hex.upper() + "0"]
        for _ in range(modules)
    ]
    return {"jobs": [{"memoryMap": names, "stacks": [[[i, 4096] for i in range(len(names))]]}]}


# -- RT-03 and RT-06: bounded requests and answers ----------------------------


def test_too_many_modules_is_a_413_naming_the_limit(make_app, symbol_server, metricsmock):
    app = make_app(ELIOT_MAX_MODULES="5")
    resp = post(app, flood(6), expect_errors=True)
    assert resp.status_int == 413
    assert "too many modules: 6" in resp.json["error"]
    assert "ELIOT_MAX_MODULES" in resp.json["error"]
    assert sum(symbol_server.hits.values()) == 0
    metricsmock.assert_incr("eliot.symbolicate.request_error", tags=["reason:too_many_modules"])
    assert post(app, flood(5)).status_int == 200


def test_modules_are_counted_over_every_job(make_app):
    app = make_app(ELIOT_MAX_MODULES="5")
    payload = {"jobs": flood(3)["jobs"] + flood(3)["jobs"]}
    assert post(app, payload, expect_errors=True).status_int == 413


def test_too_many_frames_is_a_413_naming_the_limit(make_app, symbol_server):
    app = make_app(ELIOT_MAX_FRAMES="10")
    payload = {"memoryMap": [list(QIPCAP)], "stacks": [[[0, 4096]] * 6, [[0, 4096]] * 5]}
    resp = app.post(
        "/symbolicate/v4", json.dumps(payload), content_type="application/json", expect_errors=True
    )
    assert resp.status_int == 413
    assert "too many frames: 11" in resp.json["error"]
    assert "ELIOT_MAX_FRAMES" in resp.json["error"]
    assert sum(symbol_server.hits.values()) == 0


def test_the_reports_inputs_are_refused_by_the_default_limits(app, symbol_server):
    # RT-03: 20,000 modules; RT-06: 700,000 frames of one module.
    assert post(app, flood(20_000), expect_errors=True).status_int == 413
    frames = {"jobs": [{"memoryMap": [list(QIPCAP)], "stacks": [[[0, 4096]] * 700_000]}]}
    resp = post(app, frames, expect_errors=True)
    assert resp.status_int == 413
    assert "ELIOT_MAX_FRAMES" in resp.json["error"]
    assert sum(symbol_server.hits.values()) == 0


def test_an_answer_over_the_limit_is_a_413(make_app, symbol_server):
    app = make_app(ELIOT_MAX_RESPONSE_SIZE="5kb")
    small = {"jobs": [{"memoryMap": [list(QIPCAP)], "stacks": [[[0, 4096]] * 5]}]}
    assert post(app, small).status_int == 200
    big = {"jobs": [{"memoryMap": [list(QIPCAP)], "stacks": [[[0, 4096]] * 200]}]}
    resp = post(app, big, expect_errors=True)
    assert resp.status_int == 413
    assert "ELIOT_MAX_RESPONSE_SIZE" in resp.json["error"]


# -- RT-04: a sym file with one huge line -------------------------------------


@pytest.mark.parametrize("newline", [True, False], ids=["huge-line", "no-newline"])
def test_a_sym_file_with_a_huge_line_is_malformed(make_app, symbol_server, newline):
    name, did = f"bigline{uuid.uuid4().hex[:8]}.pdb", "B16B16B16B16B16B16B16B16B16B16B10"
    path = symbol_server.root / symbol_key(name, did)
    path.parent.mkdir(parents=True)
    with open(path, "wb") as fp:
        fp.write(f"MODULE windows x86_64 {did} {name}\nINFO CODE_ID ".encode())
        fp.write(b"A" * 3_000_000)
        if newline:
            fp.write(b" bigline.dll\nFUNC 1000 10 0 f\n1000 10 1 1\n")
    app = make_app(ELIOT_MAX_SYM_LINE_LENGTH="1mb")
    payload = {"jobs": [{"memoryMap": [[name, did]], "stacks": [[[0, 4096]]]}]}
    resp = post(app, payload, headers={"Debug": "1"})
    assert resp.json["results"][0]["found_modules"] == {f"{name}/{did}": False}
    status = resp.json["debug"]["modules"]["status_per_module"][f"{name}/{did}"]
    assert status["status"] == "malformed"
    assert "ELIOT_MAX_SYM_LINE_LENGTH" in status["detail"]
    assert not list((app.app.store.disk.tmp_dir).iterdir())


# -- RT-07: a trickling symbol server ------------------------------------------


def trickling_server(seconds_per_byte=0.2, total=150):
    def server(environ, start_response):  # type: ignore[no-untyped-def]
        start_response("200 OK", [("Content-Type", "text/plain")])

        def body():
            for _ in range(total):
                time.sleep(seconds_per_byte)
                yield b"M"

        return body()

    return server


def test_a_trickling_download_ends_at_the_download_deadline(make_app, cache_dir):
    with wsgi_server(trickling_server()) as url:
        app = make_app(ELIOT_SYMBOL_URLS=url, ELIOT_DOWNLOAD_DEADLINE="1")
        resp = post(app, {"jobs": [{"memoryMap": [list(SSLTUNNEL)], "stacks": [[[0, 1]]]}]})
    result = resp.json["results"][0]
    assert result["found_modules"] == {module_key(*SSLTUNNEL): False}
    error = result["module_errors"][module_key(*SSLTUNNEL)]
    assert "did not finish in time" in error and "ELIOT_DOWNLOAD_DEADLINE" in error
    assert url.removeprefix("http://") in error
    # An error, not remembered: the next request tries again.
    assert not list(cache_dir.glob("cache/*/*"))


def test_a_request_ends_at_its_fetch_deadline(make_app):
    modules = [[f"slow{i}.pdb", "0123456789ABCDEF0123456789ABCDEF0"] for i in range(3)]
    with wsgi_server(trickling_server()) as url:
        app = make_app(ELIOT_SYMBOL_URLS=url, ELIOT_FETCH_DEADLINE="1", ELIOT_FETCH_THREADS="1")
        payload = {"jobs": [{"memoryMap": modules, "stacks": [[[0, 1], [1, 1], [2, 1]]]}]}
        resp = post(app, payload)
    errors = resp.json["results"][0]["module_errors"]
    assert sorted(errors) == sorted(module_key(*m) for m in modules)
    assert all("ELIOT_FETCH_DEADLINE" in e for e in errors.values())


def test_waiting_for_another_workers_fetch_gives_up_with_an_error(
    make_app, cache_dir, symbol_server
):
    app = make_app(ELIOT_LOCK_TIMEOUT="0.3")
    disk = DiskCache(cache_dir)
    with disk.lock(cache_stem(*SSLTUNNEL)) as got:  # another worker is fetching it
        assert got
        resp = post(app, {"jobs": [{"memoryMap": [list(SSLTUNNEL)], "stacks": [[[0, 1]]]}]})
    error = resp.json["results"][0]["module_errors"][module_key(*SSLTUNNEL)]
    assert "another eliot worker is still fetching" in error
    assert symbol_server.downloads(*SSLTUNNEL) == 0
    # Once the other worker is done, the module is fetched as usual.
    resp = post(app, {"jobs": [{"memoryMap": [list(SSLTUNNEL)], "stacks": [[[0, 1]]]}]})
    assert resp.json["results"][0]["found_modules"] == {module_key(*SSLTUNNEL): True}


# -- RT-13 and issue 16: what the errors say -----------------------------------


def test_symbol_server_credentials_never_show(make_app, symbol_server, capfd):
    symbol_server.faults["/"] = "500"
    host = symbol_server.url.removeprefix("http://")
    app = make_app(ELIOT_SYMBOL_URLS=f"http://svcuser:s3cretpw@{host}")
    resp = post(app, {"jobs": [{"memoryMap": [list(QIPCAP)], "stacks": [[[0, 1]]]}]})
    error = resp.json["results"][0]["module_errors"][module_key(*QIPCAP)]
    assert error.startswith(f"HTTP 500 from http://{host}")
    assert "svcuser" not in resp.text and "s3cretpw" not in resp.text
    logged = capfd.readouterr().err  # the service's own log lines
    assert f"symbol servers: http://{host}" in logged
    assert "s3cretpw" not in logged


def test_presigned_redirect_targets_lose_their_query(symbol_server):
    from tecken_eliot.downloader import public_url, redact

    url = "https://u:p@bucket.example:8443/a/b.sym?X-Amz-Signature=abc#f"
    assert public_url(url) == "https://bucket.example:8443/a/b.sym?..."
    assert redact(f"Timeout fetching {url} now") == (
        "Timeout fetching https://bucket.example:8443/a/b.sym?... now"
    )


def test_a_failed_redirect_names_its_target(make_app, symbol_server):
    dead = f"http://127.0.0.1:{free_port()}"

    def redirector(environ, start_response):  # type: ignore[no-untyped-def]
        start_response("302 Found", [("Location", dead + environ["PATH_INFO"])])
        return [b""]

    with wsgi_server(redirector) as url:
        app = make_app(ELIOT_SYMBOL_URLS=url, ELIOT_DOWNLOAD_RETRIES="0")
        resp = post(app, {"jobs": [{"memoryMap": [list(QIPCAP)], "stacks": [[[0, 1]]]}]})
    error = resp.json["results"][0]["module_errors"][module_key(*QIPCAP)]
    assert error.startswith(f"ConnectionError fetching {dead}/{symbol_key(*QIPCAP)}")
    assert f"redirected from {url}/{symbol_key(*QIPCAP)}" in error


# -- RT-25: unhandled exceptions go through logging -----------------------------


def test_an_unhandled_exception_is_logged_and_answered_in_json(app, caplog):
    caplog.set_level(logging.ERROR)
    resp = app.get("/__broken__", expect_errors=True)
    assert resp.status_int == 500
    assert resp.json["error"]
    records = [r for r in caplog.records if r.name == "tecken_eliot" and r.exc_info]
    assert records and "GET /__broken__" in records[0].getMessage()
