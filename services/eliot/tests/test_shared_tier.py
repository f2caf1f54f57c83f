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
