# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The disk cache and the symbol-server client under faults: corrupt and
truncated entries, negative caching, server errors, size limits, eviction,
and single flight across threads and processes."""

import multiprocessing
import os
import threading
import time

import pytest
import webtest

from tecken_eliot.app import create_app
from tecken_eliot.naming import cache_stem, encode_component, symbol_url
from tecken_eliot.testing import BROKEN, CPPFILT, QIPCAP, SHOWSSE, SSLTUNNEL
from tecken_shared.config import build_config_manager

MISSING = ("missing.pdb", "ABCDEF0123456789ABCDEF0123456789A")


def v5(app, *modules, offset=0x1010):
    payload = {
        "jobs": [
            {
                "memoryMap": [list(m) for m in modules],
                "stacks": [[[i, offset] for i in range(len(modules))]],
            }
        ]
    }
    return app.post_json("/symbolicate/v5", payload).json["results"][0]


def found(result):
    return list(result["found_modules"].values())


def symc(cache_dir, module):
    return cache_dir / "cache" / (cache_stem(*module) + ".symc")


def test_cache_files_layout(app, symbol_server, cache_dir):
    v5(app, CPPFILT)
    path = symc(cache_dir, CPPFILT)
    assert path == cache_dir / "cache" / "c%2B%2Bfilt" / "B2E65520F14FB5332E38A5A5189839AD0.symc"
    assert path.with_suffix(".meta").exists()
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert list((cache_dir / "tmp").iterdir()) == []


def test_symbol_url_rule():
    assert symbol_url("http://h/x", "xul.pdb", "AB1") == "http://h/x/xul.pdb/AB1/xul.sym"
    assert symbol_url("http://h/", "libxul.so", "AB1") == "http://h/libxul.so/AB1/libxul.so.sym"
    assert symbol_url("http://h", "a.PDB", "AB1") == "http://h/a.PDB/AB1/a.PDB.sym"


def test_keys_are_injective():
    assert encode_component("a b") != encode_component("a_b")
    assert encode_component("a%20b") != encode_component("a b")
    assert encode_component(".hidden") == "%2Ehidden"
    assert encode_component("..") == "%2E."
    assert cache_stem("x", "abc") == cache_stem("x", "ABC")
    long = "a" * 400
    assert len(encode_component(long)) < 255
    assert encode_component(long) != encode_component(long + "b")


def test_second_worker_reads_the_disk_cache(make_app, symbol_server, metricsmock):
    assert found(v5(make_app(), SSLTUNNEL)) == [True]
    assert found(v5(make_app(), SSLTUNNEL)) == [True]
    assert symbol_server.downloads(*SSLTUNNEL) == 1
    metricsmock.assert_histogram("eliot.diskcache.get", tags=["result:hit"])


@pytest.mark.parametrize("damage", ["garbage", "truncate", "no_meta", "bad_meta", "flip_byte"])
def test_corrupt_cache_file_is_rebuilt(make_app, symbol_server, cache_dir, metricsmock, damage):
    expected = v5(make_app(), SSLTUNNEL, offset=0x50D4)
    path = symc(cache_dir, SSLTUNNEL)
    data = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"\x00garbage" * 100)
    elif damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "no_meta":
        path.with_suffix(".meta").unlink()
    elif damage == "bad_meta":
        path.with_suffix(".meta").write_text("{not json")
    else:
        path.write_bytes(data[:1000] + bytes([data[1000] ^ 0xFF]) + data[1001:])
    # A fresh worker (no open symcaches) meets the damaged file.
    result = v5(make_app(), SSLTUNNEL, offset=0x50D4)
    assert result == expected
    assert symbol_server.downloads(*SSLTUNNEL) == 2
    metricsmock.assert_histogram("eliot.diskcache.get", tags=["result:error"])
    assert path.read_bytes() == data  # rebuilt


def test_worker_reopens_after_eviction(make_app, symbol_server, cache_dir):
    app = make_app()
    expected = v5(app, SSLTUNNEL, offset=0x50D4)
    path = symc(cache_dir, SSLTUNNEL)
    # Replaced by another worker: the new file is opened, not downloaded.
    os.replace(path, path.with_suffix(".old"))
    os.link(path.with_suffix(".old"), path.with_suffix(".new"))
    os.replace(path.with_suffix(".new"), path)
    assert v5(app, SSLTUNNEL, offset=0x50D4) == expected
    assert symbol_server.downloads(*SSLTUNNEL) == 1
    # Evicted: fetched again.
    path.unlink()
    path.with_suffix(".old").unlink()
    assert v5(app, SSLTUNNEL, offset=0x50D4) == expected
    assert symbol_server.downloads(*SSLTUNNEL) == 2
    assert path.exists()


def test_missing_is_negatively_cached(make_app, symbol_server, cache_dir):
    app = make_app()
    assert found(v5(app, MISSING)) == [False]
    assert found(v5(app, MISSING)) == [False]
    assert found(v5(make_app(), MISSING)) == [False]
    assert symbol_server.downloads(*MISSING) == 1
    negative = cache_dir / "cache" / (cache_stem(*MISSING) + ".missing")
    assert negative.exists()
    # Expired: asked again.
    old = time.time() - 3601
    os.utime(negative, (old, old))
    assert found(v5(app, MISSING)) == [False]
    assert symbol_server.downloads(*MISSING) == 2


def test_missing_ttl_zero_turns_negative_cache_off(make_app, symbol_server):
    app = make_app(ELIOT_MISSING_SYMBOLS_TTL="0")
    v5(app, MISSING)
    v5(app, MISSING)
    assert symbol_server.downloads(*MISSING) == 2


def test_malformed_has_its_own_lifetime(make_app, symbol_server, cache_dir):
    app = make_app(ELIOT_MISSING_SYMBOLS_TTL="10s", ELIOT_MALFORMED_SYMBOLS_TTL="1h")
    assert found(v5(app, BROKEN)) == [False]
    negative = cache_dir / "cache" / (cache_stem(*BROKEN) + ".malformed")
    old = time.time() - 60
    os.utime(negative, (old, old))  # older than the missing TTL, younger than malformed's
    assert found(v5(app, BROKEN)) == [False]
    assert symbol_server.downloads(*BROKEN) == 1
    old = time.time() - 3601
    os.utime(negative, (old, old))
    v5(app, BROKEN)
    assert symbol_server.downloads(*BROKEN) == 2


@pytest.mark.parametrize("status,tries", [(500, 2), (502, 2), (503, 2), (429, 2), (403, 1)])
def test_server_error_is_not_cached_and_is_visible(make_app, symbol_server, status, tries):
    symbol_server.faults["/qipcap64.pdb/"] = str(status)
    app = make_app()
    result = v5(app, QIPCAP)
    assert found(result) == [False]
    assert f"HTTP {status}" in result["module_errors"]["/".join(QIPCAP)]
    assert symbol_server.downloads(*QIPCAP) == tries  # ELIOT_DOWNLOAD_RETRIES=1
    # Not remembered as missing: once the server is back, it is found.
    symbol_server.faults.clear()
    result = v5(app, QIPCAP)
    assert found(result) == [True]
    assert "module_errors" not in result


def test_timeout_is_an_error(make_app, symbol_server):
    symbol_server.faults["/qipcap64.pdb/"] = "slow:1.0"
    app = make_app(ELIOT_DOWNLOAD_TIMEOUT="0.2", ELIOT_DOWNLOAD_RETRIES="0")
    result = v5(app, QIPCAP)
    assert found(result) == [False]
    assert "Timeout" in result["module_errors"]["/".join(QIPCAP)]


def test_unreachable_symbol_server(make_app, symbol_server):
    from tecken_shared.testing.servers import free_port

    app = make_app(ELIOT_SYMBOL_URLS=f"http://127.0.0.1:{free_port()}/", ELIOT_DOWNLOAD_RETRIES="0")
    result = v5(app, QIPCAP)
    assert found(result) == [False]
    assert "ConnectionError" in result["module_errors"]["/".join(QIPCAP)]


def test_sources_tried_in_order(make_app, symbol_server, tmp_path):
    from tecken_eliot.testing import SymbolServer
    from tecken_shared.testing.servers import wsgi_server

    empty = SymbolServer(tmp_path / "empty")
    with wsgi_server(empty) as first:
        app = make_app(ELIOT_SYMBOL_URLS=f"{first},{symbol_server.url}")
        assert found(v5(app, QIPCAP)) == [True]
        assert empty.hits  # asked first, said 404
        empty.faults["/"] = "500"
        assert found(v5(app, SHOWSSE)) == [True]  # an error, then found elsewhere


def test_download_size_limit(make_app, symbol_server, cache_dir):
    app = make_app(ELIOT_MAX_DOWNLOAD_SIZE="10kb")
    assert found(v5(app, SSLTUNNEL)) == [False]
    assert (cache_dir / "cache" / (cache_stem(*SSLTUNNEL) + ".malformed")).exists()
    assert found(v5(app, QIPCAP)) == [False]  # 12.6 kB
    assert list((cache_dir / "tmp").iterdir()) == []


def test_write_evicts_first_to_stay_under_the_limit(
    make_app, symbol_server, cache_dir, metricsmock
):
    app = make_app(ELIOT_SYMBOLS_CACHE_MAX_SIZE="100kb")
    v5(app, SSLTUNNEL)  # about 61 kB of symcache
    old = time.time() - 100
    os.utime(symc(cache_dir, SSLTUNNEL), (old, old))
    v5(app, CPPFILT)
    v5(app, QIPCAP)
    v5(app, SHOWSSE)
    total = sum(p.stat().st_size for p in (cache_dir / "cache").rglob("*") if p.is_file())
    assert total <= 100_000
    assert not symc(cache_dir, SSLTUNNEL).exists()  # least recently used went first
    assert symc(cache_dir, SHOWSSE).exists()
    metricsmock.assert_incr("eliot.diskcache.evict", tags=["process:webapp"])


def test_entry_bigger_than_the_cache_does_not_wipe_it(make_app, symbol_server, cache_dir):
    app = make_app(ELIOT_SYMBOLS_CACHE_MAX_SIZE="40kb")
    v5(app, QIPCAP)
    assert symc(cache_dir, QIPCAP).exists()
    result = v5(app, SSLTUNNEL, offset=0x50D4)  # bigger than the whole cache
    assert found(result) == [True]
    assert result["stacks"][0][0]["function"].endswith("~vector[abi:dn210000]()")
    assert not symc(cache_dir, SSLTUNNEL).exists()
    assert symc(cache_dir, QIPCAP).exists()
    # Held by this worker: no new download.
    v5(app, SSLTUNNEL, offset=0x50D4)
    assert symbol_server.downloads(*SSLTUNNEL) == 1


def test_distinct_modules_are_fetched_in_parallel(app, symbol_server):
    symbol_server.delay = 0.2
    result = v5(app, SSLTUNNEL, CPPFILT, QIPCAP, SHOWSSE)
    assert found(result) == [True] * 4
    assert symbol_server.max_inflight >= 2


def test_concurrent_cold_requests_in_threads_download_once(make_app, symbol_server):
    symbol_server.delay = 0.3
    apps = [make_app() for _ in range(6)]  # six "workers", each with its own store
    results = [None] * len(apps)

    def run(i):
        results[i] = v5(apps[i], SSLTUNNEL, offset=0x50D4)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(apps))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert all(r == results[0] for r in results)
    assert found(results[0]) == [True]
    assert symbol_server.downloads(*SSLTUNNEL) == 1


def _worker(env, none_env, queue):  # runs in a forked process
    app = webtest.TestApp(create_app(build_config_manager(env, none_env)))
    result = v5(app, SSLTUNNEL, offset=0x50D4)
    queue.put(result["stacks"][0][0].get("function"))


def test_concurrent_cold_requests_in_processes_download_once(symbol_server, cache_dir, tmp_path):
    symbol_server.delay = 0.3
    env = {
        "ELIOT_SYMBOL_URLS": symbol_server.url,
        "ELIOT_SYMBOLS_CACHE_DIR": str(cache_dir),
        "ELIOT_METRICS_BACKEND": "none",
    }
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(env, str(tmp_path / "none.env"), queue)) for _ in range(4)
    ]
    for p in procs:
        p.start()
    functions = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert len(set(functions)) == 1 and functions[0].endswith("~vector[abi:dn210000]()")
    assert symbol_server.downloads(*SSLTUNNEL) == 1


def test_redirects_and_gzip_encoding(app, symbol_server):
    """The symbols service answers 302 to storage, which serves gzip."""
    symbol_server.redirect = True
    symbol_server.gzip = True
    result = v5(app, SSLTUNNEL, offset=0x50D4)
    assert found(result) == [True]
    assert result["stacks"][0][0]["function"].endswith("~vector[abi:dn210000]()")
    assert symbol_server.hits["/_storage/" + "/".join(SSLTUNNEL) + "/ssltunnel.sym"] == 1


def test_size_limit_applies_to_decoded_bytes(make_app, symbol_server):
    symbol_server.gzip = True  # 68 kB of text compresses to much less than 20 kB
    app = make_app(ELIOT_MAX_DOWNLOAD_SIZE="20kb")
    assert found(v5(app, SSLTUNNEL)) == [False]


def test_write_trusts_a_fresh_manager_heartbeat_only_with_headroom(cache_dir):
    import json as _json

    from tecken_eliot.diskcache import DiskCache

    disk = DiskCache(cache_dir, max_size=20_000)
    stem = cache_stem("a", "ABCDEF0123456789ABCDEF0123456789A")
    disk.path(stem, ".symc").parent.mkdir(parents=True)
    disk.path(stem, ".symc").write_bytes(b"x" * 9000)  # 16 KiB with its directory
    beat = cache_dir / "cache-manager.json"
    # The manager (wrongly, or not yet aware) says the cache is nearly empty.
    beat.write_text(_json.dumps({"time": time.time(), "usage": 100}))
    assert disk.make_room(5000) == 0
    # Stale heartbeat: scan and evict.
    beat.write_text(_json.dumps({"time": time.time() - 60, "usage": 100}))
    assert disk.make_room(5000) == 1
    assert not disk.path(stem, ".symc").exists()
    # Near the limit by the manager's count: scan too.
    disk.path(stem, ".symc").parent.mkdir(parents=True)  # removed with its last entry
    disk.path(stem, ".symc").write_bytes(b"x" * 9000)
    beat.write_text(_json.dumps({"time": time.time(), "usage": 15000}))
    assert disk.make_room(5000) == 1


def test_entry_evicted_right_after_its_write_is_still_served(make_app, symbol_server):
    # The cache manager (or another worker making room) may evict a fresh
    # entry between its rename into place and the worker opening it.
    app = make_app()
    disk = app.app.store.disk
    write_entry = disk.write_entry

    def write_then_evicted(stem, *args):
        path = write_entry(stem, *args)
        disk.evict(stem)
        return path

    disk.write_entry = write_then_evicted
    result = v5(app, SSLTUNNEL, offset=0x50D4)
    assert found(result) == [True]
    assert result["stacks"][0][0]["function"]
    assert symbol_server.downloads(*SSLTUNNEL) == 1
