# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""RT-02: slow clients cost a connection, not a worker. Each service runs
under gunicorn with its shipped conf (2 workers), reached directly (no proxy)
on loopback."""

import http.client
import socket
import time

import pytest

from tecken_shared.testing.services import SERVICES, running_service
from tecken_shared.testing.slowclients import measure

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("service", SERVICES)
def test_fifty_slow_clients_do_not_deny_service(service, tmp_path):
    with running_service(service, tmp_path) as svc:
        alone, loaded, still_open = measure(service, svc.host, svc.port, slow=50, requests=60)
    print(f"{service}: alone {alone}, with 50 slow {loaded}")
    assert alone.failures == 0
    # The slow connections are held (not refused) and cost no worker.
    assert still_open == 50
    assert loaded.failures == 0
    # Answered well within the probes' 10 s deadline (sync workers: every probe fails).
    assert loaded.p99_ms < 2000


def read_answer(sock: socket.socket) -> bytes:
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    return answer


def test_a_request_trickled_past_the_read_deadline_gets_408(tmp_path):
    """Activity does not extend the deadline: a header every 0.5 s for 1.5 s,
    and the 408 comes 2 s after the first byte (idle connections are only
    closed after 30 s)."""
    extra = {"ELIOT_GUNICORN_REQUEST_READ_TIMEOUT": "2"}
    with running_service("eliot", tmp_path, workers=1, extra_env=extra) as svc:
        with socket.create_connection((svc.host, svc.port), timeout=30) as sock:
            sock.sendall(b"POST /symbolicate/v5 HTTP/1.1\r\nHost: x\r\n")
            for _ in range(3):
                time.sleep(0.5)
                sock.sendall(b"X-Slow: 1\r\n")
            # Nothing more is sent, so the server's close cannot reset the
            # connection before the answer is read.
            answer = read_answer(sock)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b'"error": "The request was not received in time' in answer


def test_collector_stalled_body_gets_antennas_408(tmp_path):
    extra = {"COLLECTOR_READ_TIMEOUT": "1"}
    with running_service("collector", tmp_path, workers=1, extra_env=extra) as svc:
        with socket.create_connection((svc.host, svc.port), timeout=30) as sock:
            sock.sendall(
                b"POST /submit HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
                b"Content-Type: multipart/form-data; boundary=b\r\n\r\n--b\r\n"
            )
            answer = read_answer(sock)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert answer.endswith(b"\r\n\r\nDiscarded=malformed_read_timeout")


def test_chunked_bodies_are_read_whole(tmp_path):
    """RT-24: the worker de-chunks a body and passes its length on."""
    with running_service("collector", tmp_path, workers=1) as svc:
        boundary = "b"
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="ProductName"\r\n\r\n'
            f"Firefox\r\n--{boundary}\r\nContent-Disposition: form-data; "
            f'name="upload_file_minidump"; filename="d.dmp"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\nMDMP\x00\x01\r\n--{boundary}--\r\n"
        ).encode()
        chunks = b"".join(
            f"{len(body[i : i + 50]):x}\r\n".encode() + body[i : i + 50] + b"\r\n"
            for i in range(0, len(body), 50)
        )
        with socket.create_connection((svc.host, svc.port), timeout=30) as sock:
            sock.sendall(
                b"POST /submit HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                b"Transfer-Encoding: chunked\r\n"
                + f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n".encode()
                + chunks
                + b"0\r\n\r\n"
            )
            answer = read_answer(sock)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert b"CrashID=" in answer


def test_a_declared_body_over_the_limit_is_refused_by_the_service_unread(tmp_path):
    with running_service("collector", tmp_path, workers=1) as svc:
        with socket.create_connection((svc.host, svc.port), timeout=30) as sock:
            sock.sendall(
                b"POST /submit HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n"
                b"Content-Type: multipart/form-data; boundary=b\r\n\r\n--b\r\n"
            )
            answer = read_answer(sock)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert answer.endswith(b"Discarded=malformed_payload_too_large")


def test_answers_with_and_without_a_body_on_one_connection(tmp_path):
    """The worker sends a response head with the body's first bytes (one
    send): answers without a body (HEAD) still get their head, and nothing
    held leaks into the next answer on a kept-alive connection."""
    with running_service("eliot", tmp_path, workers=1) as svc:
        conn = http.client.HTTPConnection(svc.host, svc.port, timeout=30)
        try:
            answers = []
            for method in ("GET", "HEAD", "HEAD", "GET", "POST"):
                body = b'{"jobs": []}' if method == "POST" else None
                path = "/symbolicate/v5" if method == "POST" else "/__lbheartbeat__"
                conn.request(method, path, body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                kind = resp.getheader("Content-Type", "").split(";")[0]
                answers.append((method, resp.status, kind, resp.read()))
        finally:
            conn.close()
    assert [a[:3] for a in answers] == [
        ("GET", 200, "application/json"),
        ("HEAD", 200, "application/json"),
        ("HEAD", 200, "application/json"),
        ("GET", 200, "application/json"),
        ("POST", 200, "application/json"),
    ]
    assert answers[1][3] == answers[2][3] == b""
    assert answers[0][3] == answers[3][3] != b""
    assert answers[4][3] == b'{"results": []}'
