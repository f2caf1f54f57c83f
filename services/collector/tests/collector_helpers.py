# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Helpers shared by the collector tests (importable: the tests directory is on
sys.path, see conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from tecken_shared.testing import FIXTURES_DIR

FIXTURES = FIXTURES_DIR / "collector"
HERE = Path(__file__).parent


def fixture_dump() -> bytes:
    path = FIXTURES / "minidump_300k.dmp"
    if path.exists():
        return path.read_bytes()
    return bytes(range(256)) * 1200


ANNOTATIONS = {
    "ProductName": "Firefox",
    "Version": "140.0",
    "ReleaseChannel": "nightly",
    "BuildID": "20991231235959",
    "CrashTime": "1763900000",
}


def crash_files(root: Path) -> list[str]:
    """Every visible (non-dot) file under root, relative, sorted."""
    found = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if not name.startswith("."):
                found.append(str(Path(dirpath, name).relative_to(root)))
    return sorted(found)


def read_raw_crash(root: Path, crash_id: str) -> dict[str, Any]:
    path = root / ("20" + crash_id[-6:]) / "raw_crash" / f"{crash_id}.json"
    return json.loads(path.read_bytes())


def crash_id_of(text: str) -> str:
    assert text.startswith("CrashID=bp-") and text.endswith("\n"), text
    return text[len("CrashID=bp-") : -1]


class Tmpfs:
    """A small tmpfs mounted at ``path`` (needs root)."""

    def __init__(self, path: Path, size: str) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
            check=True,
            capture_output=True,
        )

    def remount(self, options: str) -> None:
        subprocess.run(
            ["mount", "-o", f"remount,{options}", str(self.path)], check=True, capture_output=True
        )

    def fill(self) -> None:
        """Fill the filesystem completely (ENOSPC on the next write)."""
        with open(self.path / ".filler", "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass

    def umount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)


REPO = Path(__file__).resolve().parents[3]


class Gunicorn:
    """The collector under gunicorn with deploy/gunicorn-collector.conf.py on a
    free port of 127.0.0.1 (its own process group, so it can be SIGKILLed)."""

    def __init__(self, env: dict[str, str], workers: int = 1) -> None:
        import sys

        from tecken_shared.testing.servers import free_port, wait_for_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = dict(os.environ, **env)
        full_env["COLLECTOR_GUNICORN_BIND"] = f"127.0.0.1:{self.port}"
        full_env["COLLECTOR_GUNICORN_WORKERS"] = str(workers)
        full_env["COLLECTOR_GUNICORN_ACCESSLOG"] = "/dev/null"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                str(REPO / "deploy" / "gunicorn-collector.conf.py"),
                "--no-control-socket",
                "tecken_collector.wsgi:application",
            ],
            env=full_env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for_port("127.0.0.1", self.port, 20)
        self.wait_for_worker(60)

    def wait_for_worker(self, timeout: float) -> None:
        """Wait until a worker answers: the master listens as soon as it starts,
        the workers only once they imported the app (seconds on a busy machine)."""
        import time

        import requests

        deadline = time.monotonic() + timeout
        while True:
            try:
                if requests.get(f"{self.url}/__lbheartbeat__", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise TimeoutError(f"no collector worker answered on {self.url}")
            time.sleep(0.1)

    def kill(self) -> None:
        import signal

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def sqs_messages(endpoint: str, queue: str) -> list[str]:
    """Receive and delete every message waiting in an SQS queue (by name)."""
    import boto3

    client = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
    url = client.get_queue_url(QueueName=queue)["QueueUrl"]
    bodies = []
    while True:
        resp = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        if not resp.get("Messages"):
            return bodies
        for msg in resp["Messages"]:
            bodies.append(msg["Body"])
            client.delete_message(QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"])
