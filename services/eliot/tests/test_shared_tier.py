# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Two eliot nodes (two apps with their own disk caches) sharing a symcache
tier: the second answers a module the first built without downloading or
parsing its sym file."""

from __future__ import annotations

import json
import zlib

import pytest
import webtest

from tecken_eliot.naming import cache_stem
from tecken_eliot.symfile import normalize_debug_id
from tecken_eliot.testing import SSLTUNNEL

JOB = {"memoryMap": [list(SSLTUNNEL)], "stacks": [[[0, 0x50D4]]]}


def frame(app: webtest.TestApp) -> dict:
    answer = app.post_json("/symbolicate/v5", {"jobs": [JOB]}, headers={"Debug": "1"}).json
    return answer


@pytest.mark.parametrize("backend", ["file", "s3"])
def test_a_second_node_answers_from_the_tier(make_node, symbol_server, tmp_path, backend, request):
    tier = (
        f"file://{tmp_path}/tier"
        if backend == "file"
        else request.getfixturevalue("s3_storage_url").replace("/prefix?", "/tier?")
    )
    node_a = make_node("a", ELIOT_SHARED_CACHE_URL=tier)
    cold = frame(node_a)
    assert symbol_server.downloads(*SSLTUNNEL) == 1
    assert node_a.app.store.tier.drain()

    node_b = make_node("b", ELIOT_SHARED_CACHE_URL=tier)
    warm = frame(node_b)
    assert warm["results"] == cold["results"]
    assert symbol_server.downloads(*SSLTUNNEL) == 1  # node B never fetched the sym file
    assert warm["debug"]["downloads"]["count"] == 0
    assert warm["debug"]["parse_sym"]["time_per_module"] == {}
    # Node B built nothing, so it stores nothing new: the first write won.
    assert node_b.app.store.tier.drain()


def test_a_corrupt_tier_object_is_not_used(make_node, symbol_server, tmp_path):
    tier = f"file://{tmp_path}/tier"
    node_a = make_node("a", ELIOT_SHARED_CACHE_URL=tier)
    cold = frame(node_a)
    assert node_a.app.store.tier.drain()
    (stored,) = (tmp_path / "tier").rglob("*.symc.zst")
    stored.write_bytes(b"\x28\xb5\x2f\xfd not a symcache")
    node_b = make_node("b", ELIOT_SHARED_CACHE_URL=tier)
    assert frame(node_b)["results"] == cold["results"]
    assert symbol_server.downloads(*SSLTUNNEL) == 2  # rebuilt from the sym file


def test_without_a_tier_nothing_changes(make_node, symbol_server):
    app = make_node("a")
    assert app.app.store.tier is None
    frame(app)
    assert symbol_server.downloads(*SSLTUNNEL) == 1


def test_a_flipped_bit_in_a_tier_object_is_caught(make_node, symbol_server, tmp_path):
    """zstd checks each frame's content checksum: damage that still
    decompresses is not taken for a symcache."""
    tier = f"file://{tmp_path}/tier"
    node_a = make_node("a", ELIOT_SHARED_CACHE_URL=tier)
    cold = frame(node_a)
    assert node_a.app.store.tier.drain()
    (stored,) = (tmp_path / "tier").rglob("*.symc.zst")
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0x01
    stored.write_bytes(bytes(data))
    node_b = make_node("b", ELIOT_SHARED_CACHE_URL=tier)
    assert frame(node_b)["results"] == cold["results"]
    assert symbol_server.downloads(*SSLTUNNEL) == 2  # rebuilt from the sym file


def test_node_b_records_the_checksum_of_what_it_wrote(make_node, symbol_server, tmp_path):
    """The CRC-32 computed while decompressing is the cache file's: the entry
    verifies when the next worker opens it."""
    tier = f"file://{tmp_path}/tier"
    node_a = make_node("a", ELIOT_SHARED_CACHE_URL=tier)
    frame(node_a)
    assert node_a.app.store.tier.drain()
    node_b = make_node("b", ELIOT_SHARED_CACHE_URL=tier, ELIOT_VERIFY_CACHE_CHECKSUMS="true")
    frame(node_b)
    disk = node_b.app.store.disk
    stem = cache_stem(*SSLTUNNEL)
    meta = json.loads(disk.path(stem, ".meta").read_text())
    assert meta["crc32"] == zlib.crc32(disk.path(stem, ".symc").read_bytes())
    assert disk.open_entry(stem, normalize_debug_id(SSLTUNNEL[1])) is not None


def test_an_object_without_a_recorded_checksum_is_used(make_node, symbol_server, tmp_path):
    """A tier object stored without its CRC-32 (an older node wrote it):
    node B computes the CRC-32 while it decompresses."""
    tier = f"file://{tmp_path}/tier"
    node_a = make_node("a", ELIOT_SHARED_CACHE_URL=tier)
    cold = frame(node_a)
    tier_a = node_a.app.store.tier
    assert tier_a.drain()
    stem = cache_stem(*SSLTUNNEL)
    key = tier_a.key(stem)
    data = tier_a.storage.get(key)
    meta = tier_a.storage.metadata(key).metadata
    assert {"crc32", "size"} <= meta.keys()
    old = {"filename": meta["filename"], "debug_id": meta["debug_id"]}
    tier_a.storage.put(key, data, metadata=old)
    node_b = make_node("b", ELIOT_SHARED_CACHE_URL=tier)
    assert frame(node_b)["results"] == cold["results"]
    assert symbol_server.downloads(*SSLTUNNEL) == 1
    disk = node_b.app.store.disk
    meta_b = json.loads(disk.path(stem, ".meta").read_text())
    assert meta_b["crc32"] == zlib.crc32(disk.path(stem, ".symc").read_bytes())


# -- negative results shared through Redis (ELIOT_SHARED_NEGATIVE_CACHE_URL) ----


MISSING = ("missing.pdb", "ABCDEF0123456789ABCDEF0123456789A")


def test_negative_results_are_shared_with_their_ttl(
    make_node, symbol_server, tmp_path, redis_url, redis_prefix
):
    import os
    import time

    from tecken_eliot.naming import cache_stem

    shared = {
        "ELIOT_SHARED_NEGATIVE_CACHE_URL": redis_url,
        "ELIOT_SHARED_NEGATIVE_CACHE_PREFIX": redis_prefix,
    }
    a = make_node("a", **shared)
    assert missing_found(a) == [False]
    assert symbol_server.downloads(*MISSING) == 1
    # Node B has never seen the module: Redis tells it, no download.
    b = make_node("b", **shared)
    assert missing_found(b) == [False]
    assert symbol_server.downloads(*MISSING) == 1
    # B keeps it on its disk with A's creation time, so it expires when A's does.
    entry = tmp_path / "b" / "cache" / (cache_stem(*MISSING) + ".missing")
    assert abs(entry.stat().st_mtime - time.time()) < 60
    old = time.time() - 3601
    os.utime(entry, (old, old))
    # Expired on B's disk; Redis still holds A's entry (its TTL is Redis's),
    # so B takes it again rather than download.
    assert missing_found(b) == [False]
    assert symbol_server.downloads(*MISSING) == 1
    # Without the option a node decides alone.
    assert missing_found(make_node("c")) == [False]
    assert symbol_server.downloads(*MISSING) == 2


def test_shared_negative_entries_expire_in_redis(make_node, symbol_server, redis_url, redis_prefix):
    import time

    shared = {
        "ELIOT_SHARED_NEGATIVE_CACHE_URL": redis_url,
        "ELIOT_SHARED_NEGATIVE_CACHE_PREFIX": redis_prefix,
        "ELIOT_MISSING_SYMBOLS_TTL": "1s",
    }
    assert missing_found(make_node("a", **shared)) == [False]
    time.sleep(1.2)
    assert missing_found(make_node("b", **shared)) == [False]
    assert symbol_server.downloads(*MISSING) == 2


def missing_found(app: webtest.TestApp) -> list[bool]:
    body = {"jobs": [{"memoryMap": [list(MISSING)], "stacks": [[[0, 0x1000]]]}]}
    resp = app.post_json("/symbolicate/v5", body, status=200).json
    return list(resp["results"][0]["found_modules"].values())
