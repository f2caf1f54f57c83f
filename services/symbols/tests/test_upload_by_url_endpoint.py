# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""POST /upload/ with ``url=``: the whole path against a real HTTP server."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tecken_symbols.upload.testing import FIXTURES, make_token

SAMPLE = (FIXTURES / "sample.zip").read_bytes()
SYM = "xpcshell.dbg/A7D6F1BB18CD4CB48/xpcshell.sym"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, body=b"", location=None):
        self.send_response(code)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        if self.path == "/builds/sample.zip":
            self.reply(200, SAMPLE)
        elif self.path == "/redirect/target.zip":
            self.reply(302, location="/builds/sample.zip")
        elif self.path == "/broken.zip":
            self.reply(503)
        else:
            self.reply(404)


@pytest.fixture(scope="module")
def origin():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def svc(make_service):
    return make_service(
        {
            "SYMBOLS_UPLOAD_VALIDATE_CONTENT": "false",
            "SYMBOLS_ALLOW_UPLOAD_BY_DOWNLOAD_DOMAINS": "127.0.0.1",
            "SYMBOLS_UPLOAD_BY_DOWNLOAD_REQUIRE_HTTPS": "false",
            "SYMBOLS_UPLOAD_BY_DOWNLOAD_ALLOW_PRIVATE_ADDRESSES": "true",
        }
    )


def post_url(svc, token, url, status="*", **fields):
    return svc.app.post(
        "/upload/", {"url": url, **fields}, headers={"Auth-Token": token}, status=status
    )


def test_upload_by_url(svc, origin):
    token = make_token(svc.ctx, ["upload_symbols"])
    resp = post_url(svc, token, f"{origin}/redirect/target.zip", status=201)
    upload = resp.json["upload"]
    assert upload["download_url"] == f"{origin}/redirect/target.zip"
    assert upload["redirect_urls"] == [f"{origin}/builds/sample.zip"]
    assert upload["filename"] == "target.zip" and upload["size"] == len(SAMPLE)
    assert svc.ctx.storages.regular.storage.metadata(SYM) is not None
    again = post_url(svc, token, f"{origin}/builds/sample.zip", status=201).json["upload"]
    assert len(again["skipped_keys"]) == 2


def test_upload_by_url_try_field(svc, origin):
    token = make_token(svc.ctx, ["upload_symbols"])
    resp = post_url(svc, token, f"{origin}/builds/sample.zip", status=201, **{"try": "true"})
    assert resp.json["upload"]["try_symbols"] is True
    assert svc.ctx.storages.try_.storage.metadata(SYM) is not None


def test_upload_by_url_refusals(svc, origin, make_service):
    token = make_token(svc.ctx, ["upload_symbols"])
    assert post_url(svc, token, f"{origin}/broken.zip", status=502).json == {
        "error": f"{origin}/broken.zip errored (503)"
    }
    assert post_url(svc, token, f"{origin}/nothing.zip", status=400).json == {
        "error": f"{origin}/nothing.zip can't be found (404)"
    }
    strict = make_service()
    key = make_token(strict.ctx, ["upload_symbols"], email="strict@example.com")
    assert (
        post_url(strict, key, f"{origin}/builds/sample.zip", status=400)
        .json["error"]
        .startswith("Insecure URL")
    )
    assert post_url(strict, key, "https://example.com/x.zip", status=400).json == {
        "error": "Not an allowed domain ('example.com') to download from."
    }
    assert post_url(strict, key, "not a url", status=400).json == {"error": "Enter a valid URL."}


def test_any_domain_switch(make_service, origin):
    svc = make_service(
        {"SYMBOLS_UPLOAD_VALIDATE_CONTENT": "false", "SYMBOLS_ALLOW_UPLOAD_BY_ANY_DOMAIN": "true"}
    )
    token = make_token(svc.ctx, ["upload_symbols"])
    assert post_url(svc, token, f"{origin}/builds/sample.zip", status=201)
