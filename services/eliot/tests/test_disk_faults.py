# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Real disk faults under the cache (small tmpfs mounts): full, read-only;
and a process killed while holding a module's lock."""

import json
import multiprocessing
import os
import signal
import subprocess
import time

import webtest

from tecken_eliot.app import create_app
from tecken_eliot.diskcache import DiskCache
from tecken_eliot.testing import QIPCAP, SSLTUNNEL
from tecken_shared.config import build_config_manager


def make(symbol_server, cache_dir, tmp_path, **extra):
    env = {
        "ELIOT_SYMBOL_URLS": symbol_server.url,
        "ELIOT_SYMBOLS_CACHE_DIR": str(cache_dir),
        "ELIOT_DOWNLOAD_RETRIES": "0",
        "ELIOT_METRICS_BACKEND": "none",
        **extra,
    }
    return webtest.TestApp(create_app(build_config_manager(env, str(tmp_path / "none.env"))))


def v5(app, module, offset=0x1010):
    payload = {"memoryMap": [list(module)], "stacks": [[[0, offset]]]}
    return app.post_json("/symbolicate/v5", payload).json["results"][0]


def test_full_disk_is_an_error_not_a_500(symbol_server, tmpfs_cache, tmp_path):
    cache_dir = tmpfs_cache("64k")  # the 68 kB ssltunnel.sym does not fit
    app = make(symbol_server, cache_dir, tmp_path)
    result = v5(app, SSLTUNNEL)
    assert result["found_modules"] == {"/".join(SSLTUNNEL): False}
    assert "cache disk error" in result["module_errors"]["/".join(SSLTUNNEL)]
    assert not list((cache_dir / "tmp").iterdir())  # no half-written files left
    # Not remembered: a small module still works, and the big one is tried again.
    assert v5(app, QIPCAP)["found_modules"] == {"/".join(QIPCAP): True}
    v5(app, SSLTUNNEL)
    assert symbol_server.downloads(*SSLTUNNEL) == 2


def remount(path, options):
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True)


def test_read_only_disk(symbol_server, tmpfs_cache, tmp_path):
    cache_dir = tmpfs_cache("4m")
    app = make(symbol_server, cache_dir, tmp_path, ELIOT_CACHE_MANAGER_MAX_AGE="0")
    warm = v5(app, QIPCAP)
    remount(cache_dir, "ro")
    try:
        # What a worker has open keeps working.
        assert v5(app, QIPCAP) == warm
        # A new worker reads what is on disk.
        assert v5(make(symbol_server, cache_dir, tmp_path), QIPCAP) == warm
        # A module that needs writing is an error, reported, not a 500.
        result = v5(app, SSLTUNNEL)
        assert result["found_modules"] == {"/".join(SSLTUNNEL): False}
        assert "cache disk error" in result["module_errors"]["/".join(SSLTUNNEL)]
        resp = app.get("/__heartbeat__", expect_errors=True)
        assert resp.status_int == 500
        assert resp.json["checks"]["cache_dir"] == "error"
    finally:
        remount(cache_dir, "rw")
    assert v5(app, SSLTUNNEL)["found_modules"] == {"/".join(SSLTUNNEL): True}
    assert app.get("/__heartbeat__").status_int == 200


def _hold_lock(root, ready):
    disk = DiskCache(root)
    with disk.lock("ssltunnel/X"):
        ready.set()
        time.sleep(60)


def test_lock_of_a_killed_process_is_released(cache_dir):
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    proc = ctx.Process(target=_hold_lock, args=(str(cache_dir), ready))
    proc.start()
    try:
        assert ready.wait(20)
        disk = DiskCache(cache_dir)
        with disk.lock("ssltunnel/X", timeout=0.2) as got:
            assert got is False  # held by the other process
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
        with disk.lock("ssltunnel/X", timeout=5) as got:
            assert got is True
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join(5)


def test_heartbeat_json_is_written_atomically(cache_dir):
    from tecken_eliot.cache_manager import CacheManager

    manager = CacheManager(DiskCache(cache_dir, max_size=1000), poll_ms=10)
    manager.start()
    manager.close()
    beat = json.loads((cache_dir / "cache-manager.json").read_text())
    assert beat["max_size"] == 1000
    assert not list((cache_dir / "tmp").iterdir())
