# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Group commit: crashes saved at the same time by several threads share
fsync rounds, every save returns only with its own crash complete, and a
failed fsync fails only the saves it concerns."""

from __future__ import annotations

import errno
import hashlib
import os
import threading
from pathlib import Path

import pytest
from collector_helpers import crash_files

from tecken_collector.crashid import create_crash_id
from tecken_collector.crashstorage import FSCrashStorage, SyncGroup, load_crash

DUMP = os.urandom(64 * 1024)


def test_concurrent_saves_share_rounds_and_all_complete(tmp_path: Path) -> None:
    storage = FSCrashStorage(tmp_path)
    rounds: list[int] = []
    storage.sync_group.on_round = rounds.append
    saved: list[str] = []
    lock = threading.Lock()

    def saver() -> None:
        for _ in range(25):
            crash_id = create_crash_id(0)
            raw = {"metadata": {"dump_checksums": {"d": hashlib.sha256(DUMP).hexdigest()}}}
            storage.save(crash_id, raw, {"d": DUMP})
            with lock:
                saved.append(crash_id)

    threads = [threading.Thread(target=saver) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(saved) == 200
    for crash_id in saved:
        stored = load_crash(tmp_path, crash_id)
        assert stored.dumps["d"].read_bytes() == DUMP
    assert len([p for p in crash_files(tmp_path) if "/raw_crash/" in p]) == 200
    # Two rounds per save (its files, then its raw crash's directory), shared:
    # every request is in exactly one round, and some rounds served several.
    assert sum(rounds) == 2 * 200
    assert len(rounds) < 2 * 200


def test_a_failed_fsync_fails_only_its_owner(tmp_path: Path) -> None:
    group = SyncGroup()
    good = os.open(tmp_path / "good", os.O_WRONLY | os.O_CREAT)
    bad = 1 << 20  # never open (above any descriptor limit here): EBADF
    errors: dict[str, BaseException | None] = {}
    start = threading.Barrier(3)

    def sync(name: str, fds: list[int], dirs: list[Path]) -> None:
        start.wait()
        try:
            group.sync(fds, dirs)
        except OSError as exc:
            errors[name] = exc
        else:
            errors[name] = None

    try:
        threads = [
            threading.Thread(target=sync, args=("good", [good], [tmp_path])),
            threading.Thread(target=sync, args=("bad", [bad], [tmp_path])),
            threading.Thread(target=sync, args=("gone", [], [tmp_path / "missing"])),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        os.close(good)
    assert errors["good"] is None
    assert isinstance(errors["bad"], OSError) and errors["bad"].errno == errno.EBADF
    assert isinstance(errors["gone"], OSError) and errors["gone"].errno == errno.ENOENT
    # The group is still usable after failures.
    group.sync([], [tmp_path])


def test_nothing_to_sync_returns_at_once() -> None:
    SyncGroup().sync([], [])


def test_a_failed_directory_fsync_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        SyncGroup().sync([], [tmp_path / "missing", tmp_path])
