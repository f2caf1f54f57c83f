# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The three services as they are deployed: gunicorn with the shipped
``deploy/gunicorn-<service>.conf.py``, on a free port of 127.0.0.1, with the
embedded defaults (SQLite, filesystem storage, in-process cache) in a
directory of their own. For the tests that talk to a real server (slow
clients, schemathesis)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tecken_shared.testing.servers import free_port, wait_for_port

REPO = Path(__file__).resolve().parents[4]
SERVICES = ("symbols", "eliot", "collector")
WSGI = {
    "symbols": "tecken_symbols.wsgi:application",
    "eliot": "tecken_eliot.wsgi:application",
    "collector": "tecken_collector.wsgi:application",
}
#: Where each service keeps its OpenAPI description (served at /__openapi__.json).
OPENAPI = {
    "symbols": REPO / "services/symbols/tecken_symbols/openapi.yaml",
    "eliot": REPO / "services/eliot/tecken_eliot/openapi.yaml",
    "collector": REPO / "services/collector/tecken_collector/openapi.yaml",
}


@dataclass
class RunningService:
    name: str
    url: str
    host: str
    port: int
    workdir: Path
    proc: subprocess.Popen


def service_env(
    name: str, workdir: Path, port: int, workers: int, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment of ``name`` with its embedded defaults under ``workdir``
    (the caller's own ``<SERVICE>_*`` variables are dropped; ``extra`` wins)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SYMBOLS_", "ELIOT_", "COLLECTOR_"))
    }
    prefix = name.upper()
    env.update(
        {
            "LOCAL_DEV_ENV": "true",
            "LOGGING_LEVEL": "WARNING",
            f"{prefix}_GUNICORN_BIND": f"127.0.0.1:{port}",
            f"{prefix}_GUNICORN_WORKERS": str(workers),
            f"{prefix}_GUNICORN_ACCESSLOG": "",
        }
    )
    if name == "symbols":
        env.update(
            {
                "SYMBOLS_DATABASE_URL": f"sqlite:///{workdir}/symbols.db",
                "SYMBOLS_STORAGE_URL": f"file://{workdir}/storage/v1",
                "SYMBOLS_TRY_STORAGE_URL": f"file://{workdir}/storage/try/v1",
                "SYMBOLS_PUBLIC_URL": f"http://127.0.0.1:{port}",
                "SYMBOLS_CACHE_URL": "memory://",
                "SYMBOLS_UPLOAD_TEMPDIR": str(workdir / "uploads"),
            }
        )
    elif name == "eliot":
        env.update(
            {
                "ELIOT_SYMBOLS_CACHE_DIR": str(workdir / "cache"),
                # Nothing listens there: every module is "not found" quickly.
                "ELIOT_SYMBOL_URLS": "http://127.0.0.1:9/",
            }
        )
    else:
        env.update(
            {
                "COLLECTOR_CRASHSTORAGE_ROOT": str(workdir / "crashes"),
                "COLLECTOR_CRASHSTORAGE_FALLBACK_ROOT": str(workdir / "fallback"),
                "COLLECTOR_CRASHSTORAGE_CREATE_ROOTS": "true",
                "COLLECTOR_THROTTLER_RULES": "accept_all",
            }
        )
    env.update(extra or {})
    return env


@contextmanager
def running_service(
    name: str, workdir: Path, workers: int = 2, extra_env: dict[str, str] | None = None
) -> Iterator[RunningService]:
    """``name`` under gunicorn with its shipped conf until the block ends."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = service_env(name, workdir, port, workers, extra_env)
    if name == "symbols":
        (workdir / "uploads").mkdir(exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "tecken_symbols.cli", "migrate"],
            env=env,
            cwd=workdir,
            check=True,
            capture_output=True,
        )
    log = open(workdir / f"{name}-gunicorn.log", "wb")  # noqa: SIM115
    commands = [
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(REPO / "deploy" / f"gunicorn-{name}.conf.py"),
            "--no-control-socket",
            WSGI[name],
        ]
    ]
    if name == "eliot":  # its heartbeat checks that the cache manager runs
        commands.append([sys.executable, "-m", "tecken_eliot.cache_manager"])
    procs = [
        subprocess.Popen(
            command,
            env=env,
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for command in commands
    ]
    try:
        wait_for_port("127.0.0.1", port, 30)
        if name == "eliot":
            _wait_healthy(port, 30)
        yield RunningService(name, f"http://127.0.0.1:{port}", "127.0.0.1", port, workdir, procs[0])
    finally:
        for proc in procs:
            _stop(proc)
        log.close()


def _wait_healthy(port: int, timeout: float) -> None:
    """Wait until ``/__heartbeat__`` answers 200 (or ``timeout`` passes)."""
    import http.client
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", "/__heartbeat__")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.2)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the process group of ``proc``, SIGKILL if it lingers."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
