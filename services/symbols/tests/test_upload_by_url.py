# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Upload by download URL against a real HTTP server on 127.0.0.1."""

import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tecken_symbols.upload.by_url import download, normalize_url, resolve
from tecken_symbols.upload.config import UploadSettings
from tecken_symbols.upload.errors import UploadError
from tecken_symbols.upload.testing import FIXTURES

SAMPLE = (FIXTURES / "sample.zip").read_bytes()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hits: dict = {}

    def log_message(self, *args):
        pass

    def _send(self, code, body=b"", headers=None, length=True):
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if length:
            self.send_header("Content-Length", str(len(body)))
        else:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(body)

    def do_HEAD(self):
        self.route()

    def do_GET(self):
        self.route()

    def route(self):
        path = self.path
        Handler.hits[path] = Handler.hits.get(path, 0) + 1
        port = self.server.server_address[1]
        if path == "/sample.zip":
            self._send(200, SAMPLE)
        elif path == "/nolength.zip":
            self._send(200, SAMPLE, length=False)
            self.close_connection = True
        elif path.startswith("/hop"):
            n = int(path[4:].split(".")[0] or 0)
            target = "/sample.zip" if n == 0 else f"/hop{n - 1}.zip"
            self._send(302, headers={"Location": target})
        elif path == "/away.zip":
            self._send(302, headers={"Location": f"http://localhost:{port}/sample.zip"})
        elif path == "/head-ok-get-away.zip":
            if self.command == "HEAD":
                self._send(200, headers={"Content-Length": "10"}, length=False)
            else:
                self._send(302, headers={"Location": f"http://localhost:{port}/sample.zip"})
        elif path == "/bad-redirect.zip":
            self._send(302, headers={"Location": "http://[::1/sample.zip"})
        elif path == "/flaky.zip":
            if Handler.hits[path] % 2:
                self._send(500)
            else:
                self._send(200, SAMPLE)
        elif path == "/error.zip":
            self._send(503)
        elif path == "/missing.zip":
            self._send(404)
        elif path == "/get-fails.zip":
            if self.command == "HEAD":
                self._send(200, SAMPLE)
            else:
                self._send(403)
        else:
            self._send(404)


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def settings(**kw):
    base = dict(
        allowed_domains=("127.0.0.1",), require_https=False, download_retries=2, download_backoff=0
    )
    base.update(kw)
    return UploadSettings(**base)


def fetch(url, tmp_path, **kw):
    s = settings(**kw)
    resolved = resolve(url, s)
    path, size = download(resolved, s, str(tmp_path))
    return resolved, path, size


def error(url, tmp_path, **kw) -> UploadError:
    with pytest.raises(UploadError) as info:
        fetch(url, tmp_path, **kw)
    return info.value


def test_plain_download(server, tmp_path):
    resolved, path, size = fetch(f"{server}/sample.zip", tmp_path)
    assert resolved.size == size == len(SAMPLE) and resolved.filename == "sample.zip"
    assert resolved.redirect_urls == []
    assert open(path, "rb").read() == SAMPLE


def test_redirect_trail(server, tmp_path):
    resolved, path, _ = fetch(f"{server}/hop2.zip", tmp_path)
    assert resolved.redirect_urls == [
        f"{server}/hop1.zip",
        f"{server}/hop0.zip",
        f"{server}/sample.zip",
    ]
    assert resolved.filename == "hop2.zip"
    assert os.path.getsize(path) == len(SAMPLE)


def test_too_many_redirects(server, tmp_path):
    err = error(f"{server}/hop5.zip", tmp_path)
    assert (
        err.status == 400 and err.message == f"Too many redirects trying to open {server}/hop5.zip"
    )


def test_redirect_to_other_domain_refused(server, tmp_path):
    err = error(f"{server}/away.zip", tmp_path)
    assert err.status == 400
    assert "Not an allowed domain ('localhost') to download from." in err.message
    assert "redirected to from" in err.message


def test_download_redirect_checked_too(server, tmp_path):
    err = error(f"{server}/head-ok-get-away.zip", tmp_path)
    assert "Not an allowed domain ('localhost')" in err.message


def test_unparsable_redirect_is_400(server, tmp_path):
    # An unparsable Location (unclosed IPv6 bracket): a 400, not a 500.
    for kw in ({}, {"allow_any_domain": True}):
        err = error(f"{server}/bad-redirect.zip", tmp_path, **kw)
        assert err.status == 400
        assert err.message == f"Cannot open {server}/bad-redirect.zip: Invalid IPv6 URL"


def test_any_domain_switch(server, tmp_path):
    resolved, _, _ = fetch(
        f"{server}/away.zip", tmp_path, allow_any_domain=True, allowed_domains=()
    )
    assert resolved.redirect_urls[-1].startswith("http://localhost:")


def test_domain_and_scheme_rules(tmp_path):
    s = UploadSettings()
    with pytest.raises(UploadError) as info:
        resolve("https://example.com/x.zip", s)
    assert info.value.message == "Not an allowed domain ('example.com') to download from."
    with pytest.raises(UploadError) as info:
        resolve("http://queue.taskcluster.net/x.zip", s)
    assert info.value.message.startswith("Insecure URL")
    for bad in (
        "",
        "ftp://x/y.zip",
        "https://",
        "http://x:port/y",
        "http://[::1",
        "https://[x/a.zip",
    ):
        with pytest.raises(UploadError) as info:
            resolve(bad, s)
        assert info.value.message == "Enter a valid URL."
    assert normalize_url("queue.taskcluster.net/a.zip") == "https://queue.taskcluster.net/a.zip"


def test_retries_5xx_then_succeeds(server, tmp_path):
    Handler.hits.pop("/flaky.zip", None)
    _, path, _ = fetch(f"{server}/flaky.zip", tmp_path)
    assert os.path.getsize(path) == len(SAMPLE)


def test_upstream_errors_are_5xx(server, tmp_path):
    err = error(f"{server}/error.zip", tmp_path)
    assert err.status >= 500 and err.message == f"{server}/error.zip errored (503)"
    from tecken_shared.testing.servers import free_port

    dead = f"http://127.0.0.1:{free_port()}/x.zip"
    err = error(dead, tmp_path)
    assert err.status >= 500 and err.message == f"ConnectionError trying to open {dead}"


def test_not_found_is_400(server, tmp_path):
    err = error(f"{server}/missing.zip", tmp_path)
    assert err.status == 400 and err.message == f"{server}/missing.zip can't be found (404)"
    err = error(f"{server}/get-fails.zip", tmp_path)
    assert err.status == 400


def test_size_limits(server, tmp_path):
    err = error(f"{server}/sample.zip", tmp_path, max_size=100)
    assert err.status == 413
    err = error(f"{server}/nolength.zip", tmp_path, max_size=100)
    assert err.status == 413
    assert [n for n in os.listdir(tmp_path)] == []


def test_no_content_length(server, tmp_path):
    resolved, path, size = fetch(f"{server}/nolength.zip", tmp_path)
    assert resolved.size is None and size == len(SAMPLE)
