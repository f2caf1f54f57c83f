# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Upload by download URL against a real HTTP server on 127.0.0.1."""

import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tecken_symbols.upload.by_url import Fetch, download, normalize_url, resolve
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
        elif path == "/trickle.zip":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            if self.command == "GET":
                import time

                for _ in range(100):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.1)
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
        allowed_domains=("127.0.0.1",),
        require_https=False,
        allow_private_addresses=True,
        download_retries=2,
        download_backoff=0,
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


# RT-01: one parser, public addresses only, the checked address pinned.


@pytest.fixture
def listener():
    """A TCP listener counting connections (nothing should reach it)."""
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.settimeout(0.2)
    yield sock
    sock.close()


def _accepted(sock) -> int:
    n = 0
    while True:
        try:
            conn, _ = sock.accept()
        except OSError:
            return n
        conn.close()
        n += 1


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1:{port}\\@queue.taskcluster.net/x.zip",
        "https://127.0.0.1:{port}\\\\@queue.taskcluster.net/x.zip",
        "https://user@queue.taskcluster.net/x.zip",
        "https://127.0.0.1:{port}@queue.taskcluster.net/x.zip",
        "https://queue.taskcluster%2enet/x.zip",
        "https://queue.taskcluster.net\t/x.zip",
    ],
)
def test_ambiguous_authorities_are_refused_without_a_connection(listener, tmp_path, url):
    port = listener.getsockname()[1]
    err = error(url.format(port=port), tmp_path, allowed_domains=("queue.taskcluster.net",))
    assert err.status == 400 and err.message.startswith("Not an allowed domain")
    assert _accepted(listener) == 0


def test_allowed_name_resolving_to_a_private_address_is_refused(server, tmp_path):
    # "localhost" is allowed by name but resolves to loopback.
    port = server.rsplit(":", 1)[1]
    err = error(
        f"http://localhost:{port}/sample.zip",
        tmp_path,
        allowed_domains=("localhost",),
        allow_private_addresses=False,
    )
    assert err.status == 400
    assert "resolves to 127.0.0.1" in err.message and "loopback, private" in err.message


def test_redirect_hops_get_the_same_check(server, tmp_path):
    port = server.rsplit(":", 1)[1]
    s = settings(allowed_domains=("127.0.0.1", "localhost"), allow_private_addresses=False)
    fetch = Fetch(s)
    # The first host "resolves" to a public address (pinned to the test
    # server); the redirect's host resolves to loopback and is refused.
    fetch.guard.resolver = lambda host, p: ["127.0.0.1"] if host == "localhost" else []
    fetch.guard.pins.set("127.0.0.1", int(port), "127.0.0.1")
    with pytest.raises(UploadError) as info:
        resolve(f"http://127.0.0.1:{port}/away.zip", s, fetch)
    assert "loopback" in info.value.message and "redirected to from" in info.value.message


def test_the_checked_address_is_the_one_connected_to(server, tmp_path):
    """The host is resolved once; every request (HEAD, redirects, GET) goes to
    that address, with the name in the Host header."""
    port = server.rsplit(":", 1)[1]
    s = settings(allowed_domains=("symbols.example",), allow_private_addresses=True)
    fetch = Fetch(s)
    calls = []

    def resolver(host, p):
        calls.append(host)
        # A rebinding DNS: the first answer is checked, later ones would differ.
        return ["127.0.0.1"] if len(calls) == 1 else ["10.9.9.9"]

    fetch.guard.resolver = resolver
    resolved = resolve(f"http://symbols.example:{port}/hop2.zip", s, fetch)
    path, size = download(resolved, s, str(tmp_path), fetch)
    assert size == len(SAMPLE) and open(path, "rb").read() == SAMPLE
    assert calls == ["symbols.example"]


def test_unchecked_hosts_are_never_connected_to():
    from tecken_symbols.upload.safeurl import UrlGuard

    guard = UrlGuard(("a.example",))
    session = guard.session("test")
    with pytest.raises(Exception, match="not checked"):
        session.get("http://127.0.0.1:1/x", timeout=2)


def test_public_address_rule():
    from tecken_symbols.upload.safeurl import is_public

    for private in (
        "127.0.0.1",
        "10.0.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "::1",
        "fe80::1",
        "::ffff:127.0.0.1",
        "0.0.0.0",
        "100.64.0.1",
        "fc00::1",
    ):
        assert not is_public(private), private
    for public in ("93.184.216.34", "2606:2800:220:1::"):
        assert is_public(public), public


def test_upload_by_url_has_an_overall_deadline(server, tmp_path):
    # RT-14: bytes keep coming (never 5 s apart) but the whole download may
    # take only 1 s; answered 502 so the client retries later.
    err = error(f"{server}/trickle.zip", tmp_path, download_deadline=1.0, download_read_timeout=5)
    assert err.status == 502 and "longer than the 1 seconds allowed" in err.message
    assert os.listdir(tmp_path) == []
