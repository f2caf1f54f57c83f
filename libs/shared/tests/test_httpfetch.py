# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The shared fetch helper against a real HTTP server on loopback."""

from __future__ import annotations

import gzip
import io
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tecken_shared.httpfetch import FetchError, make_session, open_url, stream_to

BODY = b"MODULE Linux x86_64 ABC libfoo.so\n" * 100


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hits: dict[str, int] = {}

    def log_message(self, *args) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = self.path
        count = self.hits[path] = self.hits.get(path, 0) + 1
        if path == "/ok":
            self._send(200, BODY)
        elif path == "/gzip":
            self._send(200, gzip.compress(BODY), {"Content-Encoding": "gzip"})
        elif path == "/missing":
            self._send(404, b"no")
        elif path == "/flaky":
            self._send(503 if count < 3 else 200, BODY)
        elif path == "/down":
            self._send(503, b"down")
        elif path.startswith("/hop/"):
            left = int(path.rsplit("/", 1)[1])
            self._send(302, headers={"Location": f"/hop/{left - 1}" if left else "/ok"})
        elif path == "/unsized":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for _ in range(10):
                self.wfile.write(b"%x\r\n%s\r\n" % (1000, b"x" * 1000))
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/trickle":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            try:
                for _ in range(1000):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.05)
            except OSError:
                pass
        elif path == "/cut":
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"x" * 100)
            self.wfile.flush()
            self.close_connection = True
        else:
            self._send(400)


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.hits = {}
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def session():
    return make_session("tecken-test/1.0")


def fetch(session, url: str, max_size: int = 10**6, **kwargs) -> bytes:
    out = io.BytesIO()
    deadline = kwargs.pop("deadline", None)
    with open_url(session, url, deadline=deadline, **kwargs) as resp:
        assert resp.status_code == 200
        assert stream_to(resp, out, max_size=max_size, deadline=deadline) == len(out.getvalue())
    return out.getvalue()


def test_a_body_and_a_gzip_body(server, session) -> None:
    assert fetch(session, f"{server}/ok") == BODY
    assert fetch(session, f"{server}/gzip") == BODY


def test_a_404_is_an_answer_not_an_error(server, session) -> None:
    with open_url(session, f"{server}/missing", retries=2, backoff=0) as resp:
        assert resp.status_code == 404
    assert _Handler.hits["/missing"] == 1


def test_retryable_statuses_are_retried(server, session) -> None:
    attempts: list[int | None] = []
    body = fetch(
        session,
        f"{server}/flaky",
        retries=2,
        backoff=0.01,
        on_attempt=lambda seconds, status: attempts.append(status),
    )
    assert body == BODY
    assert attempts == [503, 503, 200]


def test_a_status_left_after_the_retries_is_returned(server, session) -> None:
    with open_url(session, f"{server}/down", retries=1, backoff=0.01) as resp:
        assert resp.status_code == 503
    assert _Handler.hits["/down"] == 2


def test_redirects_are_followed_and_each_hop_is_checked(server, session) -> None:
    seen: list[tuple[str, str | None]] = []
    with open_url(
        session, f"{server}/hop/2", check_url=lambda url, via: seen.append((url, via))
    ) as resp:
        assert resp.status_code == 200
        assert resp.url == f"{server}/ok"
        assert resp.history_urls == [f"{server}/hop/1", f"{server}/hop/0", f"{server}/ok"]
    assert seen[0] == (f"{server}/hop/2", None)
    assert seen[-1] == (f"{server}/ok", f"{server}/hop/0")


def test_a_refused_hop_is_not_requested(server, session) -> None:
    def refuse_ok(url: str, via: str | None) -> None:
        if url.endswith("/ok"):
            raise ValueError(f"refused {url}")

    with pytest.raises(ValueError, match="refused"):
        open_url(session, f"{server}/hop/0", check_url=refuse_ok)
    assert "/ok" not in _Handler.hits


def test_too_many_redirects(server, session) -> None:
    with pytest.raises(FetchError) as info:
        open_url(session, f"{server}/hop/9", max_redirects=3)
    assert info.value.kind == "redirect"


def test_not_following_redirects_returns_the_redirect(server, session) -> None:
    with open_url(session, f"{server}/hop/0", follow_redirects=False) as resp:
        assert resp.status_code == 302


@pytest.mark.parametrize("path", ["/ok", "/unsized"])
def test_size_cap(server, session, path: str) -> None:
    with pytest.raises(FetchError) as info:
        fetch(session, f"{server}{path}", max_size=500)
    assert info.value.kind == "too_large"


def test_a_trickling_server_is_cut_at_the_deadline(server, session) -> None:
    start = time.monotonic()
    with pytest.raises(FetchError) as info:
        fetch(session, f"{server}/trickle", deadline=start + 0.5, timeout=5)
    assert info.value.kind == "deadline"
    assert time.monotonic() - start < 3


def test_a_body_that_breaks_off(server, session) -> None:
    with pytest.raises(FetchError) as info:
        fetch(session, f"{server}/cut")
    assert info.value.kind == "connection"


def test_connection_refused_after_retries(session) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(FetchError) as info:
        open_url(session, f"http://127.0.0.1:{port}/x", retries=1, backoff=0.01, timeout=1)
    assert info.value.kind == "connection"


def test_a_passed_deadline_stops_before_asking(server, session) -> None:
    with pytest.raises(FetchError) as info:
        open_url(session, f"{server}/ok", deadline=time.monotonic() - 1)
    assert info.value.kind == "deadline"
    assert "/ok" not in _Handler.hits
