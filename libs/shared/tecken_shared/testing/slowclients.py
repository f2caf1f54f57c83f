# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Slow clients against a running service: latency of normal requests alone,
then while ``slow`` connections trickle their headers (half of them) or their
body (the other half), one byte a second. Loopback only, bounded in
connections and time. Used by ``libs/shared/tests/test_slow_clients.py`` and
runnable by itself for the figures::

    uv run --locked python -m tecken_shared.testing.slowclients [--slow 50] [--requests 200]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

#: A path each service reads a body on (what the body tricklers POST to).
BODY_PATH = {"symbols": "/upload/", "eliot": "/symbolicate/v5", "collector": "/submit"}


@dataclass
class Latencies:
    count: int
    failures: int
    p50_ms: float
    p99_ms: float


def probe(host: str, port: int, count: int, timeout: float = 10.0) -> Latencies:
    """``count`` sequential ``GET /__lbheartbeat__`` on new connections."""
    times: list[float] = []
    failures = 0
    for _ in range(count):
        started = time.monotonic()
        try:
            with socket.create_connection((host, port), timeout=timeout) as sock:
                sock.sendall(
                    b"GET /__lbheartbeat__ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                )
                answer = b""
                while chunk := sock.recv(65536):
                    answer += chunk
            if not answer.startswith(b"HTTP/1.1 200"):
                failures += 1
        except OSError:
            failures += 1
        times.append((time.monotonic() - started) * 1000)
    times.sort()
    return Latencies(
        count,
        failures,
        statistics.median(times),
        times[min(len(times) - 1, int(len(times) * 0.99))],
    )


class SlowClients:
    """``count`` connections kept busy trickling a request, until :meth:`stop`."""

    def __init__(self, host: str, port: int, count: int, body_path: str) -> None:
        self.stopped = threading.Event()
        self.sockets: list[socket.socket] = []
        for i in range(count):
            sock = socket.create_connection((host, port), timeout=5)
            if i % 2:  # trickled body
                sock.sendall(
                    f"POST {body_path} HTTP/1.1\r\nHost: x\r\nContent-Type: "
                    "application/octet-stream\r\nContent-Length: 100000\r\n\r\n".encode()
                )
            else:  # trickled headers
                sock.sendall(f"POST {body_path} HTTP/1.1\r\nHost: x\r\n".encode())
            self.sockets.append(sock)
        self.thread = threading.Thread(target=self._trickle, daemon=True)
        self.thread.start()

    def _trickle(self) -> None:
        while not self.stopped.wait(1.0):
            for i, sock in enumerate(self.sockets):
                try:
                    sock.sendall(b"x" if i % 2 else b"X-Slow: 1\r\n")
                except OSError:
                    pass

    def alive(self) -> int:
        """How many of the slow connections the server still holds open."""
        count = 0
        for sock in self.sockets:
            try:
                sock.setblocking(False)
                sock.recv(1, socket.MSG_PEEK)  # an answer or the end: not held
            except BlockingIOError:
                count += 1
            except OSError:
                pass
            finally:
                sock.setblocking(True)
        return count

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()
        for sock in self.sockets:
            sock.close()


def measure(
    service: str, host: str, port: int, slow: int = 50, requests: int = 200
) -> tuple[Latencies, Latencies, int]:
    """Latencies of ``requests`` normal requests without, then with, ``slow``
    slow connections; and how many slow connections were still open at the end."""
    probe(host, port, 10)  # warm up
    alone = probe(host, port, requests)
    clients = SlowClients(host, port, slow, BODY_PATH[service])
    try:
        time.sleep(1.5)  # every slow connection has sent something more
        loaded = probe(host, port, requests)
        still_open = clients.alive()
    finally:
        clients.stop()
    return alone, loaded, still_open


def main() -> int:
    from tecken_shared.testing.services import SERVICES, running_service

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slow", type=int, default=50)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument(
        "--worker-class", default="", help="instead of the conf's (e.g. sync, to compare)"
    )
    parser.add_argument("services", nargs="*", default=list(SERVICES))
    args = parser.parse_args()
    for name in args.services:
        with tempfile.TemporaryDirectory() as tmp:
            extra = {}
            if args.worker_class:
                extra[f"{name.upper()}_GUNICORN_WORKER_CLASS"] = args.worker_class
            with running_service(name, Path(tmp), extra_env=extra) as svc:
                alone, loaded, still_open = measure(
                    name, svc.host, svc.port, args.slow, args.requests
                )
        print(
            f"{name:10} alone p50 {alone.p50_ms:7.1f} ms p99 {alone.p99_ms:7.1f} ms "
            f"failed {alone.failures}/{alone.count} | with {args.slow} slow "
            f"({still_open} still open): p50 {loaded.p50_ms:7.1f} ms p99 "
            f"{loaded.p99_ms:7.1f} ms failed {loaded.failures}/{loaded.count}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
