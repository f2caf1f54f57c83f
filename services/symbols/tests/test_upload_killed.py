# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The service process killed (SIGKILL) in the middle of an upload: every file
it recorded is stored whole, nothing half-written is visible, and a retry on
a fresh process completes the upload."""

import gzip
import os
import signal
import subprocess
import sys
import time

import requests

from tecken_shared.testing.servers import free_port, wait_for_port
from tecken_symbols.db import Database
from tecken_symbols.upload.testing import make_token, make_zip, sym_key, sym_text

SERVE = """
import sys
from wsgiref.simple_server import make_server
from tecken_symbols.wsgi import application
make_server("127.0.0.1", int(sys.argv[1]), application).serve_forever()
"""


def start(env, port):
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port("127.0.0.1", port, 30)
    return proc


def test_killed_mid_upload(make_service, tmp_path):
    svc = make_service()  # migrates the database, gives a context for tokens
    token = make_token(svc.ctx, ["upload_symbols"])
    env = {
        **os.environ,
        "TECKEN_ENV_FILE": str(tmp_path / "none.env"),
        "SYMBOLS_DATABASE_URL": svc.ctx.db.url,
        "SYMBOLS_STORAGE_URL": f"file://{tmp_path}/storage/v1",
        "SYMBOLS_TRY_STORAGE_URL": f"file://{tmp_path}/storage/try/v1",
        "SYMBOLS_UPLOAD_TEMPDIR": str(tmp_path / "uploads"),
        "SYMBOLS_UPLOAD_FILE_UPLOAD_MAX_WORKERS": "1",
        "SYMBOLS_UPLOAD_GZIP_LEVEL": "9",
        "SYMBOLS_METRICS_BACKEND": "none",
        "SYMBOLS_LOGGING_LEVEL": "ERROR",
    }
    members = {sym_key(f"m{i:02d}"): sym_text(f"m{i:02d}", funcs=6000) for i in range(40)}
    data = make_zip(members)
    port = free_port()
    proc = start(env, port)
    db = Database(svc.ctx.db.url)
    try:
        import threading

        outcome = {}

        def upload():
            try:
                outcome["resp"] = requests.post(
                    f"http://127.0.0.1:{port}/upload/",
                    files={"s.zip": ("s.zip", data)},
                    headers={"Auth-Token": token},
                    timeout=60,
                )
            except requests.RequestException as exc:
                outcome["error"] = exc

        thread = threading.Thread(target=upload)
        thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if (db.fetchval("SELECT COUNT(*) FROM file_uploads") or 0) >= 3:
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        thread.join(30)
        assert "error" in outcome, "the upload finished before the kill; make it bigger"

        recorded = [r["key"] for r in db.fetchall("SELECT key FROM file_uploads")]
        assert 3 <= len(recorded) < len(members)
        storage_root = tmp_path / "storage" / "v1"
        for key in recorded:
            assert gzip.decompress((storage_root / key).read_bytes()) == members[key]
        visible = {
            os.path.relpath(os.path.join(d, f), storage_root)
            for d, _, files in os.walk(storage_root)
            for f in files
            if not f.startswith(".") and ".tecken-meta" not in d
        }
        for key in visible:  # whatever a download could find is whole
            assert gzip.decompress((storage_root / key).read_bytes()) == members[key]
        upload = db.fetchone("SELECT completed_at FROM uploads")
        assert upload["completed_at"] is None

        proc = start(env, port)
        resp = requests.post(
            f"http://127.0.0.1:{port}/upload/",
            files={"s.zip": ("s.zip", data)},
            headers={"Auth-Token": token},
            timeout=120,
        )
        assert resp.status_code == 201
        assert set(resp.json()["upload"]["skipped_keys"]) >= set(recorded)
        for key, content in members.items():
            assert gzip.decompress((storage_root / key).read_bytes()) == content
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)
        db.close()
