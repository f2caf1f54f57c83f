# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Real storage failures: read-only, full and missing roots (small tmpfs
mounts), fallback taking over, both roots failing, and processes SIGKILLed in
the middle of writing crashes."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from collector_helpers import ANNOTATIONS, Gunicorn, crash_files, crash_id_of, read_raw_crash

from tecken_collector.crashstorage import CrashSaveError, FSCrashStorage
from tecken_collector.multipart import encode_multipart

DUMP = os.urandom(300 * 1024)


def submit(app, dumps=None):
    data, ctype = encode_multipart(ANNOTATIONS, dumps or {"upload_file_minidump": DUMP})
    return app.post("/submit", data, headers={"Content-Type": ctype}, expect_errors=True)


def all_files(root: Path) -> list[str]:
    """Every file including dot/temp files."""
    return sorted(str(Path(d, f).relative_to(root)) for d, _, files in os.walk(root) for f in files)


def assert_complete(root: Path, crash_id: str) -> None:
    raw = read_raw_crash(root, crash_id)
    day = root / ("20" + crash_id[-6:])
    names = json.loads((day / "dump_names" / f"{crash_id}.json").read_bytes())
    assert sorted(names) == sorted(raw["metadata"]["dump_checksums"])
    for name in names:
        data = (day / name / crash_id).read_bytes()
        assert hashlib.sha256(data).hexdigest() == raw["metadata"]["dump_checksums"][name]


def test_primary_read_only_falls_back(make_app, tmpfs, roots):
    primary = tmpfs("mnt-primary")
    primary.remount("ro")
    app = make_app(crashstorage_root=str(primary.path))
    resp = submit(app)
    assert resp.status_int == 200
    crash_id = crash_id_of(resp.text)
    assert_complete(roots[1], crash_id)
    assert all_files(primary.path) == []


def test_primary_full_falls_back_and_leaves_nothing(make_app, tmpfs, roots):
    # Room for the first dump but not for the second: a failure half-way.
    primary = tmpfs("mnt-primary", "400k")
    app = make_app(crashstorage_root=str(primary.path))
    resp = submit(app, {"upload_file_minidump": DUMP, "second": DUMP})
    assert resp.status_int == 200
    crash_id = crash_id_of(resp.text)
    assert_complete(roots[1], crash_id)
    assert crash_files(primary.path) == []
    assert [f for f in all_files(primary.path) if not f.endswith("/")] == []


def test_primary_filled_completely(make_app, tmpfs, roots):
    primary = tmpfs("mnt-primary", "1m")
    primary.fill()
    app = make_app(crashstorage_root=str(primary.path))
    crash_id = crash_id_of(submit(app).text)
    assert_complete(roots[1], crash_id)
    assert all_files(primary.path) == [".filler"]


def test_primary_missing_mount_falls_back(make_app, roots, tmp_path):
    app = make_app(crashstorage_root=str(tmp_path / "not-mounted"))
    crash_id = crash_id_of(submit(app).text)
    assert_complete(roots[1], crash_id)
    assert not (tmp_path / "not-mounted").exists()


def test_both_fail_500_and_nothing_visible(make_app, tmpfs):
    primary = tmpfs("mnt-primary")
    primary.remount("ro")
    fallback = tmpfs("mnt-fallback", "400k")
    app = make_app(
        crashstorage_root=str(primary.path), crashstorage_fallback_root=str(fallback.path)
    )
    resp = submit(app, {"upload_file_minidump": DUMP, "second": DUMP})
    assert resp.status_int == 500
    assert resp.body == b""
    assert all_files(primary.path) == []
    assert all_files(fallback.path) == []


def test_no_fallback_configured_500(make_app, tmpfs):
    primary = tmpfs("mnt-primary")
    primary.remount("ro")
    app = make_app(crashstorage_root=str(primary.path), crashstorage_fallback_root="")
    resp = submit(app)
    assert resp.status_int == 500 and resp.body == b""


def test_recovers_when_primary_comes_back(make_app, tmpfs, roots):
    primary = tmpfs("mnt-primary")
    primary.remount("ro")
    app = make_app(crashstorage_root=str(primary.path))
    first = crash_id_of(submit(app).text)
    assert_complete(roots[1], first)
    primary.remount("rw")
    second = crash_id_of(submit(app).text)
    assert_complete(primary.path, second)


def test_storage_raises_when_all_roots_fail(tmpfs):
    primary = tmpfs("mnt-primary")
    primary.remount("ro")
    storage = FSCrashStorage(primary.path, None)
    with pytest.raises(CrashSaveError, match="EROFS"):
        storage.save("de1bb258-cbbf-4589-a673-34f800160918", {"a": 1}, {"d": b"x"})


# --- processes killed mid-write ------------------------------------------------------------

SAVER = r"""
import os, sys
from tecken_collector.crashid import create_crash_id
from tecken_collector.crashstorage import FSCrashStorage
storage = FSCrashStorage(sys.argv[1])
dump = os.urandom(300 * 1024)
import hashlib
while True:
    crash_id = create_crash_id(0)
    raw = {"ProductName": "Firefox", "metadata": {"dump_checksums": {
        "upload_file_minidump": hashlib.sha256(dump).hexdigest(),
        "extra_dump": hashlib.sha256(dump[:1000]).hexdigest()}}}
    storage.save(crash_id, raw, {"upload_file_minidump": dump, "extra_dump": dump[:1000]})
    print(crash_id, flush=True)
"""


def test_saver_killed_mid_write_leaves_no_partial_crash(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    acked: list[str] = []
    for _ in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", SAVER, str(root)], stdout=subprocess.PIPE, text=True
        )
        # Wait until it is saving steadily, then kill at a random moment.
        first = proc.stdout.readline().strip()
        assert first
        acked.append(first)
        time.sleep(random.uniform(0.05, 0.25))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        acked += out.split()
    assert len(acked) >= 3
    for crash_id in acked:
        assert_complete(root, crash_id)
    visible = [Path(p).stem for p in crash_files(root) if "/raw_crash/" in p]
    assert set(acked) <= set(visible)
    for crash_id in visible:
        assert_complete(root, crash_id)


def test_server_killed_mid_request_every_acknowledged_crash_complete(make_env, roots):
    # Clients start once a worker answers (not when the master listens: under
    # load the workers take seconds to import the app, longer than a client's
    # timeout), and wait long for answers: a client that gives up stops sending.
    server = Gunicorn(make_env(throttler_rules="accept_all"), workers=2)
    acked: list[str] = []
    stop = threading.Event()

    def client() -> None:
        session = requests.Session()
        data, ctype = encode_multipart(
            ANNOTATIONS, {"upload_file_minidump": DUMP, "memory_report": DUMP[:5000]}
        )
        while not stop.is_set():
            try:
                resp = session.post(
                    f"{server.url}/submit", data=data, headers={"Content-Type": ctype}, timeout=60
                )
            except requests.RequestException:
                return
            if resp.status_code == 200:
                acked.append(crash_id_of(resp.text))

    threads = [threading.Thread(target=client) for _ in range(3)]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while len(acked) < 10 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(random.uniform(0, 0.05))
    finally:
        stop.set()
        server.kill()
    for t in threads:
        t.join(10)
    assert len(acked) >= 10
    primary = roots[0]
    for crash_id in acked:
        assert_complete(primary, crash_id)
    for path in crash_files(primary):
        if "/raw_crash/" in path:
            assert_complete(primary, Path(path).stem)


def test_heartbeat_reports_full_or_read_only_roots(make_app, tmpfs, tmp_path):
    primary = tmpfs("mnt-primary", "1m")
    # The write probe alone (the free-space threshold is tested below).
    room = {"crashstorage_min_free_space": "0", "crashstorage_min_free_inodes": "0"}
    app = make_app(crashstorage_root=str(primary.path), **room)
    assert app.get("/__heartbeat__").json["errors"] == []
    primary.fill()
    resp = app.get("/__heartbeat__", expect_errors=True)
    assert resp.status_int == 503
    assert "primary crash storage root" in resp.json["errors"][0]["msg"]
    assert "No space left" in resp.json["errors"][0]["msg"]

    fallback = tmpfs("mnt-fallback")
    fallback.remount("ro")
    app = make_app(crashstorage_fallback_root=str(fallback.path), **room)
    resp = app.get("/__heartbeat__", expect_errors=True)
    assert resp.status_int == 503
    assert resp.json["errors"][0]["msg"].startswith("fallback crash storage root")
    assert "Read-only" in resp.json["errors"][0]["msg"]


def test_heartbeat_fails_when_roots_are_too_full_for_a_crash(make_app, tmpfs):
    """RT-20: the 2-byte write probe succeeds on a nearly full root, which
    cannot take a crash any more: the free-space threshold fails the check."""
    primary = tmpfs("mnt-primary", "4m")
    fallback = tmpfs("mnt-fallback", "4m")
    app = make_app(
        crashstorage_root=str(primary.path),
        crashstorage_fallback_root=str(fallback.path),
        crashstorage_min_free_space="2MiB",
    )
    assert app.get("/__heartbeat__").json["errors"] == []
    for fs in (primary, fallback):
        (fs.path / "filler").write_bytes(b"x" * (3 * 1024 * 1024))
    resp = app.get("/__heartbeat__", expect_errors=True)
    assert resp.status_int == 503
    messages = resp.json["errors"][0]["msg"]
    assert "primary crash storage root" in messages
    assert "fallback crash storage root" in messages
    assert "COLLECTOR_CRASHSTORAGE_MIN_FREE_SPACE" in messages
