# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""COLLECTOR_ACCEPT_CHUNKED under gunicorn (which decodes chunked request
bodies): Crashpad's uploader sends gzip multipart bodies with
Transfer-Encoding: chunked and no Content-Length. The real Crashpad upload is
in realclients/; refused-by-default is in test_http.py."""

from __future__ import annotations

import gzip
import re
import socket
from collections.abc import Iterator

import pytest
from collector_helpers import ANNOTATIONS, Gunicorn, crash_files, read_raw_crash

from tecken_collector.multipart import encode_multipart


@pytest.fixture
def server(make_env) -> Iterator[str]:  # type: ignore[no-untyped-def]
    gunicorn = Gunicorn(make_env(accept_chunked="true", max_request_size="64KiB"))
    try:
        yield gunicorn.url
    finally:
        gunicorn.kill()


def post_chunked(url: str, body: bytes, ctype: str, gzipped: bool) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    head = (
        "POST /submit HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        f"Content-Type: {ctype}\r\nConnection: close\r\n"
        + ("Content-Encoding: gzip\r\n" if gzipped else "")
        + "\r\n"
    ).encode()
    chunks = b"".join(
        f"{len(body[i : i + 4000]):x}\r\n".encode() + body[i : i + 4000] + b"\r\n"
        for i in range(0, len(body), 4000)
    )
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head + chunks + b"0\r\n\r\n")
        answer = b""
        while data := sock.recv(65536):
            answer += data
    return answer


@pytest.mark.parametrize("gzipped", [False, True])
def test_a_chunked_crash_is_accepted_and_sized(server, roots, gzipped: bool) -> None:  # type: ignore[no-untyped-def]
    data, ctype = encode_multipart(ANNOTATIONS, {"upload_file_minidump": b"MDMP" + b"x" * 20000})
    body = gzip.compress(data) if gzipped else data
    answer = post_chunked(server, body, ctype, gzipped)
    assert b" 200 " in answer.split(b"\r\n", 1)[0], answer
    crash_id = re.search(rb"CrashID=bp-([0-9a-f-]{36})", answer).group(1).decode()  # type: ignore[union-attr]
    metadata = read_raw_crash(roots[0], crash_id)["metadata"]
    assert metadata["payload_size"] == len(body)  # the bytes received, not a header
    assert metadata["payload_compressed"] == ("1" if gzipped else "0")


def test_a_chunked_body_over_the_limit_is_413(server, roots) -> None:  # type: ignore[no-untyped-def]
    data, ctype = encode_multipart(ANNOTATIONS, {"upload_file_minidump": b"x" * 100_000})
    answer = post_chunked(server, data, ctype, False)
    assert b" 413 " in answer.split(b"\r\n", 1)[0], answer
    assert b"Discarded=malformed_payload_too_large" in answer
    assert crash_files(roots[0]) == []
