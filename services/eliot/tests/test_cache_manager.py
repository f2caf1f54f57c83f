# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The cache-manager process: LRU eviction under a real size limit, at
start-up and live (inotify), oversized entries, heartbeats, and being killed."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from tecken_eliot.cache_manager import CacheManager
from tecken_eliot.diskcache import DIRECTORY_CHARGE, DiskCache
from tecken_eliot.naming import cache_stem
from tecken_eliot.testing import CPPFILT, QIPCAP, SHOWSSE, SSLTUNNEL


def used(*sizes):
    """What entries of these sizes take on disk: whole 4 KiB blocks, plus
    their directories' charge."""
    return sum(-(-size // 4096) * 4096 + DIRECTORY_CHARGE for size in sizes)


#: Room for two 4000-byte entries, not three.
LIMIT = used(4000, 4000)


def put(disk, name, size, age):
    """A fake entry of ``size`` bytes last used ``age`` seconds ago."""
    stem = cache_stem(name, "ABCDEF0123456789ABCDEF0123456789A")
    path = disk.path(stem, ".symc")
    tmp = disk.tmp_file(".symc")  # written the way workers write: renamed into place
    tmp.write_bytes(b"x" * size)
    when = time.time() - age
    os.utime(tmp, (when, when))
    # As workers place files: the manager may remove an empty module directory
    # between its creation and the rename, and _place creates it again.
    disk._place(tmp, path)
    return path


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@pytest.fixture
def running_manager(cache_dir):
    managers = []

    def start(max_size, **kw):
        manager = CacheManager(DiskCache(cache_dir, max_size=max_size), poll_ms=50, **kw)
        manager.start()
        thread = threading.Thread(
            target=lambda: [manager.step() for _ in iter(manager.stop_event.is_set, True)],
            daemon=True,
        )
        thread.start()
        managers.append((manager, thread))
        return manager

    yield start
    for manager, thread in managers:
        manager.stop_event.set()
        thread.join(5)
        manager.close()


def test_evicts_at_startup_oldest_first(cache_dir, metricsmock):
    disk = DiskCache(cache_dir, max_size=LIMIT)
    old = put(disk, "old", 4000, 300)
    mid = put(disk, "mid", 4000, 200)
    new = put(disk, "new", 4000, 100)
    manager = CacheManager(disk, poll_ms=10)
    manager.start()
    manager.close()
    assert not old.exists() and mid.exists() and new.exists()
    assert manager.total == used(4000, 4000)
    metricsmock.assert_incr("eliot.diskcache.evict")
    metricsmock.assert_gauge("eliot.diskcache.usage", value=used(4000, 4000))
    beat = json.loads((cache_dir / "cache-manager.json").read_text())
    assert beat["usage"] == used(4000, 4000) and beat["pid"] == os.getpid()


def test_oversized_entry_does_not_wipe_the_cache(cache_dir, running_manager):
    manager = running_manager(LIMIT)
    disk = manager.disk
    a = put(disk, "a", 3000, 10)
    b = put(disk, "b", 3000, 5)
    assert wait_for(lambda: manager.total == used(3000, 3000))
    huge = put(disk, "huge", 20_000, 0)
    assert wait_for(lambda: not huge.exists())
    assert a.exists() and b.exists()
    assert wait_for(lambda: manager.total == used(3000, 3000))


def test_oversized_entry_found_at_startup_does_not_wipe_the_cache(cache_dir):
    # The same rule when the manager finds the entry by scanning (start-up, or
    # a file that landed before its directory was watched) rather than by an event.
    disk = DiskCache(cache_dir, max_size=LIMIT)
    a = put(disk, "a", 3000, 10)
    b = put(disk, "b", 3000, 5)
    huge = put(disk, "huge", 20_000, 0)
    manager = CacheManager(disk, poll_ms=10)
    manager.start()
    manager.close()
    assert not huge.exists()
    assert a.exists() and b.exists()
    assert manager.total == used(3000, 3000)


def test_live_eviction_follows_use(cache_dir, running_manager):
    manager = running_manager(LIMIT)
    disk = manager.disk
    a = put(disk, "a", 4000, 30)
    b = put(disk, "b", 4000, 20)
    assert wait_for(lambda: manager.total == used(4000, 4000))
    disk.touch(a)  # a worker used a: b is now the least recently used
    assert wait_for(lambda: list(manager.lru)[-1].startswith("a/"))
    c = put(disk, "c", 4000, 0)
    assert wait_for(lambda: not b.exists())
    assert a.exists() and c.exists()
    assert manager.total <= LIMIT


def test_file_written_in_place_into_a_new_directory(cache_dir, running_manager):
    manager = running_manager(LIMIT)
    a = put(manager.disk, "a", 3000, 10)
    assert wait_for(lambda: manager.total == used(3000))
    huge = manager.disk.cache_dir / "newdir" / "huge.symc"
    huge.parent.mkdir()
    with open(huge, "wb") as fp:
        for _ in range(20):
            fp.write(b"x" * 1000)
            fp.flush()
    assert wait_for(lambda: not huge.exists())
    assert a.exists()
    assert wait_for(lambda: manager.total == used(3000))


def test_untracked_modify_and_deletes_do_not_break_the_loop(cache_dir, running_manager):
    manager = running_manager(LIMIT)
    disk = manager.disk
    a = put(disk, "a", 1000, 0)
    assert wait_for(lambda: manager.total == used(1000))
    a.unlink()
    assert wait_for(lambda: manager.total == 0)
    stray = disk.cache_dir / "stray.txt"
    stray.write_text("hello")
    with open(stray, "a") as fp:
        fp.write(" world")
    assert wait_for(lambda: manager.total == 4096)  # a stray file: one block, no directory
    stray.unlink()
    assert wait_for(lambda: manager.total == 0)
    put(disk, "b", 2000, 0)
    assert wait_for(lambda: manager.total == used(2000))


def test_symbolication_under_a_real_size_limit(make_app, symbol_server, cache_dir, running_manager):
    manager = running_manager(90_000)
    app = make_app(ELIOT_SYMBOLS_CACHE_MAX_SIZE="10gb")  # only the manager enforces it here
    modules = [SSLTUNNEL, CPPFILT, QIPCAP, SHOWSSE]
    for module in modules:
        payload = {"memoryMap": [list(module)], "stacks": [[[0, 0x1010]]]}
        assert app.post_json("/symbolicate/v5", payload).json["results"][0]["found_modules"] == {
            "/".join(module): True
        }

    def on_disk():
        return sum(size for size, _used in manager.disk.scan().values())

    assert wait_for(lambda: on_disk() <= 90_000 and manager.total == on_disk())
    # Something was evicted and the newest survived. Which older entry went
    # depends on when the workers' use marks reach the manager: LRU order
    # itself is tested with plain files in test_live_eviction_follows_use.
    assert sum(disk_has(cache_dir, module) for module in modules) < len(modules)
    assert disk_has(cache_dir, SHOWSSE)


def disk_has(cache_dir, module):
    return (cache_dir / "cache" / (cache_stem(*module) + ".symc")).exists()


def test_heartbeat_and_killed_manager(make_app, cache_dir, tmp_path):
    env = dict(
        os.environ,
        ELIOT_SYMBOLS_CACHE_DIR=str(cache_dir),
        ELIOT_CACHE_MANAGER_HEARTBEAT_INTERVAL="0.2",
        ELIOT_METRICS_BACKEND="none",
        TECKEN_ENV_FILE=str(tmp_path / "none.env"),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "tecken_eliot.cache_manager"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        app = make_app(ELIOT_CACHE_MANAGER_MAX_AGE="1")
        assert wait_for(lambda: app.get("/__heartbeat__", expect_errors=True).status_int == 200, 20)
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        assert wait_for(lambda: app.get("/__heartbeat__", expect_errors=True).status_int == 500, 10)
        body = app.get("/__heartbeat__", expect_errors=True).json
        assert body["checks"] == {"cache_dir": "ok", "cache_manager": "error"}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_manager_stops_cleanly_on_sigterm(cache_dir, tmp_path):
    env = dict(
        os.environ,
        ELIOT_SYMBOLS_CACHE_DIR=str(cache_dir),
        ELIOT_METRICS_BACKEND="none",
        TECKEN_ENV_FILE=str(tmp_path / "none.env"),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "tecken_eliot.cache_manager"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_for(lambda: (cache_dir / "cache-manager.json").exists(), 20)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_cache_dir_deleted_while_running_is_watched_again(cache_dir, running_manager):
    # The docs say deleting the whole cache/ directory while running is safe:
    # the manager must go on seeing (and evicting) what lands in a new one.
    # The entries land in new directories, often before these are watched, so
    # this also covers entries that settle while another one is being written.
    import shutil

    manager = running_manager(LIMIT)
    disk = manager.disk
    put(disk, "a", 3000, 10)
    assert wait_for(lambda: manager.total == used(3000))
    shutil.rmtree(disk.cache_dir)
    assert wait_for(lambda: manager.total == 0 and disk.cache_dir.is_dir())
    old = put(disk, "old", 6000, 10)
    new = put(disk, "new", 6000, 0)
    assert wait_for(lambda: not old.exists())
    assert new.exists()
    assert wait_for(lambda: manager.total == used(6000))


def real_disk_usage(cache_dir):
    """What ``du`` would say of cache/: every file's and directory's blocks."""
    total = 0
    for dirpath, dirnames, filenames in os.walk(cache_dir / "cache"):
        for name in dirnames + filenames:
            total += os.stat(os.path.join(dirpath, name)).st_blocks * 512
    return total


def test_negative_entries_and_their_directories_count_and_go(make_app, symbol_server, cache_dir):
    # RT-09: a flood of missing modules, each in its own directory.
    app = make_app()
    modules = [[f"flood{i}.pdb", "0123456789ABCDEF0123456789ABCDEF0"] for i in range(40)]
    payload = {"memoryMap": modules, "stacks": [[[i, 1] for i in range(len(modules))]]}
    app.post_json("/symbolicate/v5", payload)
    disk = DiskCache(cache_dir, max_size=LIMIT, missing_ttl=3600)
    manager = CacheManager(disk, poll_ms=10)
    manager.start()
    manager.close()
    # Counted at least as large as what they really take, and kept under the limit.
    assert real_disk_usage(cache_dir) <= manager.total <= LIMIT
    # Evicted entries take their directories with them.
    assert len(list((cache_dir / "cache").iterdir())) == len(manager.lru) == 2


def test_the_manager_purges_expired_negative_entries(make_app, symbol_server, cache_dir):
    app = make_app()
    modules = [[f"gone{i}.pdb", "0123456789ABCDEF0123456789ABCDEF0"] for i in range(5)]
    payload = {"memoryMap": modules, "stacks": [[[i, 1] for i in range(len(modules))]]}
    app.post_json("/symbolicate/v5", payload)
    old = time.time() - 7200
    for path in (cache_dir / "cache").rglob("*.missing"):
        os.utime(path, (old, old))
    manager = CacheManager(DiskCache(cache_dir, missing_ttl=3600), poll_ms=10)
    manager.start()
    manager.close()
    assert list((cache_dir / "cache").iterdir()) == []
    assert manager.total == 0
