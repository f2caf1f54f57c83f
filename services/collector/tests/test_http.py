# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""POST /submit over real HTTP on 127.0.0.1 (raw sockets for what HTTP
libraries will not send: chunked bodies, bad Content-Length)."""

from __future__ import annotations

import gzip
import socket

import pytest
import requests
from collector_helpers import ANNOTATIONS, crash_files, crash_id_of, fixture_dump, read_raw_crash

from tecken_collector.app import create_app
from tecken_collector.multipart import encode_multipart
from tecken_shared.config import build_config_manager
from tecken_shared.testing.servers import wsgi_server


@pytest.fixture
def server(make_env, tmp_path):
    env = make_env(max_request_size="1MiB")
    app = create_app(build_config_manager(env, str(tmp_path / "none.env")))
    with wsgi_server(app) as url:
        yield url


def raw_request(url: str, head: bytes, body: bytes = b"", timeout: float = 5) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(head + body)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_real_http_plain_and_gzip(server, roots):
    data, ctype = encode_multipart(ANNOTATIONS, {"upload_file_minidump": fixture_dump()})
    resp = requests.post(f"{server}/submit", data=data, headers={"Content-Type": ctype})
    assert resp.status_code == 200
    crash_id = crash_id_of(resp.text)
    assert read_raw_crash(roots[0], crash_id)["uuid"] == crash_id
    resp = requests.post(
        f"{server}/submit",
        data=gzip.compress(data),
        headers={"Content-Type": ctype, "Content-Encoding": "gzip"},
    )
    assert read_raw_crash(roots[0], crash_id_of(resp.text))["metadata"]["payload_compressed"] == "1"


def test_chunked_without_content_length_refused(server, roots):
    data, ctype = encode_multipart(ANNOTATIONS, {"upload_file_minidump": b"x"})
    chunked = f"{len(data):x}\r\n".encode() + data + b"\r\n0\r\n\r\n"
    head = (
        "POST /submit HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        f"Content-Type: {ctype}\r\nConnection: close\r\n\r\n"
    ).encode()
    answer = raw_request(server, head, chunked)
    assert answer.startswith(b"HTTP/1.0 400") or answer.startswith(b"HTTP/1.1 400")
    assert answer.endswith(b"\r\n\r\nDiscarded=malformed_no_content_length")
    assert crash_files(roots[0]) == []


def test_non_integer_content_length(server):
    data, ctype = encode_multipart(ANNOTATIONS, {})
    head = (
        f"POST /submit HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n"
        f"Content-Type: {ctype}\r\nConnection: close\r\n\r\n"
    ).encode()
    answer = raw_request(server, head, data)
    assert b" 400 " in answer.split(b"\r\n")[0]
    assert b"Content-Length" in answer.split(b"\r\n\r\n", 1)[1]  # Falcon's JSON error body


def test_oversize_refused_before_body_is_sent(server, roots):
    _, ctype = encode_multipart(ANNOTATIONS, {})
    head = (
        f"POST /submit HTTP/1.1\r\nHost: x\r\nContent-Length: {50 * 1024 * 1024}\r\n"
        f"Content-Type: {ctype}\r\nConnection: close\r\n\r\n"
    ).encode()
    # Only the headers are sent: the answer must come without the 50 MiB body.
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(head)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert b" 413 " in answer.split(b"\r\n")[0]
    assert answer.endswith(b"Discarded=malformed_payload_too_large")
    assert crash_files(roots[0]) == []


def test_slow_body_gets_408_under_gunicorn(make_env, roots):
    from collector_helpers import Gunicorn

    server = Gunicorn(make_env(read_timeout="0.5"))
    try:
        data, ctype = encode_multipart(ANNOTATIONS, {"upload_file_minidump": b"x" * 1000})
        head = (
            f"POST /submit HTTP/1.1\r\nHost: x\r\nContent-Length: {len(data)}\r\n"
            f"Content-Type: {ctype}\r\n\r\n"
        ).encode()
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(head + data[:200])  # then nothing more, connection kept open
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        assert b" 408 " in answer.split(b"\r\n")[0]
        assert answer.endswith(b"Discarded=malformed_read_timeout")
        assert crash_files(roots[0]) == []
    finally:
        server.kill()
