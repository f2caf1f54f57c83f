# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Find or start the real servers tests talk to.

Order for each: an explicit URL in the environment (DATABASE_URL / REDIS_URL),
else the server on its default port on 127.0.0.1, else a throwaway server
started from the binaries on PATH. If none can be had, the error says what to
install: tests are never silently skipped."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class MissingServer(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port, 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


def wait_for_http(url: str, timeout: float = 15) -> None:
    """Wait until ``url`` answers 200: a gunicorn master binds its port
    before its workers have loaded the app, so an open port is not a
    ready server."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=max(0.1, deadline - time.monotonic())) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{url} did not answer 200 within {timeout}s")
        time.sleep(0.05)


def _drop_privileges_prefix(owner: str) -> list[str]:
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if not setpriv:
        raise MissingServer("running as root needs setpriv (util-linux) to start PostgreSQL")
    return [setpriv, f"--reuid={owner}", f"--regid={owner}", "--clear-groups", "--"]


@dataclass
class ThrowawayPostgres:
    url: str
    datadir: str
    prefix: list[str] = field(default_factory=list)

    def stop(self) -> None:
        subprocess.run(
            [*self.prefix, "pg_ctl", "-D", self.datadir, "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(os.path.dirname(self.datadir), ignore_errors=True)


def start_postgres() -> ThrowawayPostgres:
    for binary in ("initdb", "pg_ctl"):
        if not shutil.which(binary):
            raise MissingServer(
                "No PostgreSQL answers on 127.0.0.1:5432, DATABASE_URL is not set, and "
                f"'{binary}' is not on PATH to start a throwaway one. Install PostgreSQL "
                "(Debian: apt-get install postgresql; then add /usr/lib/postgresql/*/bin to PATH) "
                "or set DATABASE_URL=postgresql://user@host:port/dbname."
            )
    owner = "postgres"
    tmp = tempfile.mkdtemp(prefix="tecken-pg-")
    prefix = _drop_privileges_prefix(owner)
    if prefix:
        shutil.chown(tmp, user=owner)
    datadir = os.path.join(tmp, "data")
    port = free_port()
    subprocess.run(
        [*prefix, "initdb", "-D", datadir, "-U", "test", "--auth=trust", "-E", "UTF8", "--no-sync"],
        check=True,
        capture_output=True,
    )
    opts = (
        f"-p {port} -c listen_addresses=127.0.0.1 -k {tmp} -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off"
    )
    subprocess.run(
        [
            *prefix,
            "pg_ctl",
            "-D",
            datadir,
            "-l",
            os.path.join(tmp, "pg.log"),
            "-w",
            "-o",
            opts,
            "start",
        ],
        check=True,
        capture_output=True,
    )
    return ThrowawayPostgres(f"postgresql://test@127.0.0.1:{port}/postgres", datadir, prefix)


@dataclass
class ThrowawayRedis:
    url: str
    port: int
    process: subprocess.Popen
    tmpdir: str

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def pause(self) -> None:
        """Stop the process (SIGSTOP): connections hang until resume()."""
        self.process.send_signal(19)

    def resume(self) -> None:
        self.process.send_signal(18)


def start_redis() -> ThrowawayRedis:
    binary = shutil.which("redis-server")
    if not binary:
        raise MissingServer(
            "No Redis answers on 127.0.0.1:6379, REDIS_URL is not set, and 'redis-server' is "
            "not on PATH to start a throwaway one. Install Redis (Debian: apt-get install "
            "redis-server) or set REDIS_URL=redis://host:port/0."
        )
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="tecken-redis-")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            tmp,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port("127.0.0.1", port, 10)
    return ThrowawayRedis(f"redis://127.0.0.1:{port}/0", port, proc, tmp)


@dataclass
class MotoServer:
    endpoint_url: str
    server: Any

    def stop(self) -> None:
        self.server.stop()


def use_moto_credentials() -> None:
    """Default AWS credentials and region (moto accepts any) unless set."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(key, value)


def start_moto() -> MotoServer:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    wait_for_port("127.0.0.1", port)
    return MotoServer(f"http://127.0.0.1:{port}", server)


@dataclass
class GCSEmulator:
    endpoint_url: str
    server: Any

    def stop(self) -> None:
        self.server.stop()


def start_gcs_emulator() -> GCSEmulator:
    """gcp-storage-emulator (a GCS JSON API server) on a free loopback port."""
    import logging

    from gcp_storage_emulator.server import create_server

    logging.getLogger("gcp_storage_emulator").setLevel(logging.ERROR)
    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    wait_for_port("127.0.0.1", port)
    return GCSEmulator(f"http://127.0.0.1:{port}", server)


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def wsgi_server(app: Any, port: int = 0) -> Iterator[str]:
    """Serve a WSGI app on 127.0.0.1 in a thread; yields its base URL."""
    server = make_server(
        "127.0.0.1", port, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def make_run(
    target: str, cwd: Path, env: dict[str, str], log: Path, timeout: float = 90
) -> Iterator[Path]:
    """Run ``make <target>`` (``run``, ``run-eliot``, ...) in ``cwd`` with
    ``env`` until it prints that Tecken is running; yields the log file and
    stops the whole process group afterwards."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["make", "-s", target],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + timeout
        while "Tecken is running" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"make {target} did not come up:\n" + log.read_text(errors="replace")[-3000:]
                )
            time.sleep(0.3)
        yield log
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def make_run_env(data: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The environment for ``make run`` on free loopback ports with its data
    under ``data`` (other test runs may hold the default ports and ./var);
    everything else stays deploy/local-dev.env's. Returns (env, urls), the
    urls keyed ``SYMBOLS``, ``ELIOT`` and ``COLLECTOR``."""
    ports = {name: free_port() for name in ("SYMBOLS", "ELIOT", "COLLECTOR")}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    env = {
        **os.environ,
        **{f"{name}_GUNICORN_BIND": f"127.0.0.1:{port}" for name, port in ports.items()},
        "SYMBOLS_PUBLIC_URL": urls["SYMBOLS"],
        "ELIOT_SYMBOL_URLS": urls["SYMBOLS"] + "/",
        "SYMBOLS_DATABASE_URL": f"sqlite:///{data}/symbols.db",
        "SYMBOLS_STORAGE_URL": f"file://{data}/storage/v1",
        "SYMBOLS_TRY_STORAGE_URL": f"file://{data}/storage/try/v1",
        "ELIOT_SYMBOLS_CACHE_DIR": str(data / "eliot"),
        "COLLECTOR_CRASHSTORAGE_ROOT": str(data / "crashes"),
        "COLLECTOR_CRASHSTORAGE_FALLBACK_ROOT": str(data / "fallback"),
    }
    return env, urls
