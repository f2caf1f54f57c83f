# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Two eliot nodes sharing a symcache tier: what a new node's first request
for a big module costs when another node already built it.

Each run starts two eliot processes under gunicorn on 127.0.0.1 (node A and
node B, each with an empty disk cache of its own) sharing a ``file://`` tier,
and a static symbol server holding one synthetic module (~100 MB ``.sym`` by
default). From this (second) process it times node A's cold request (download
and parse), waits until A has added the symcache to the tier, then times node
B's first request. Each node is timed once its worker answers
``/__lbheartbeat__`` (gunicorn binds the port before the worker has loaded the
app; a load balancer sends nothing before that either). The ratio B/A is what
the tier saves (< 0.1 is the target); three runs, min/median/max, with where
node B's time went (the ``Debug`` block: server time, placing the file in the
disk cache; the rest of the server time is the tier read: storage, zstd, the
cache file). Then the size trade-off of the tier's compression: each zstd
level's size, compression and decompression time for this symcache.

    uv run --locked python services/eliot/bench/bench_shared_tier.py [--size-mb 100]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import zstandard

from tecken_eliot.testing import SymbolServer
from tecken_shared.breakpad import symbol_key
from tecken_shared.testing.make_synthetic_sym import generate
from tecken_shared.testing.servers import free_port, wait_for_http, wait_for_port, wsgi_server

REPO = Path(__file__).resolve().parents[3]
NAME, DEBUG_ID = "bigmodule.pdb", "0123456789ABCDEF0123456789ABCDEF1"


def start_node(symbols_url: str, cache: Path, tier: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = dict(
        os.environ,
        ELIOT_GUNICORN_BIND=f"127.0.0.1:{port}",
        ELIOT_GUNICORN_WORKERS="1",
        ELIOT_SYMBOL_URLS=symbols_url,
        ELIOT_SYMBOLS_CACHE_DIR=str(cache),
        ELIOT_SHARED_CACHE_URL=tier,
        ELIOT_METRICS_BACKEND="none",
        ELIOT_GUNICORN_ACCESSLOG="",
        TECKEN_ENV_FILE=str(cache / "none.env"),
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(REPO / "deploy/gunicorn-eliot.conf.py"),
            "tecken_eliot.wsgi:application",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port("127.0.0.1", port, timeout=60)
    wait_for_http(f"http://127.0.0.1:{port}/__lbheartbeat__", timeout=120)
    return proc, f"http://127.0.0.1:{port}"


def symbolicate(base: str, offset: int) -> tuple[float, dict]:
    """Seconds the request took, and its ``Debug`` block."""
    body = json.dumps(
        {"jobs": [{"memoryMap": [[NAME, DEBUG_ID]], "stacks": [[[0, offset]]]}]}
    ).encode()
    request = urllib.request.Request(
        f"{base}/symbolicate/v5", body, {"Content-Type": "application/json", "Debug": "1"}
    )
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as resp:
        answer = json.load(resp)
    elapsed = time.perf_counter() - start
    assert answer["results"][0]["found_modules"][f"{NAME}/{DEBUG_ID}"] is True, answer
    return elapsed, answer["debug"]


def mmm(values: list[float]) -> str:
    return f"{min(values):.3f} / {statistics.median(values):.3f} / {max(values):.3f}"


def compression_levels(symcache: Path, levels: list[int], runs: int) -> None:
    """Size, compression and decompression time (min of ``runs``) of each level."""
    raw = symcache.read_bytes()
    print(f"symcache: {len(raw) / 1e6:.1f} MB; zstd level: size, compress s, decompress s")
    for level in levels:
        packs, unpacks = [], []
        for _ in range(runs):
            start = time.perf_counter()
            packed = zstandard.ZstdCompressor(level=level, write_checksum=True).compress(raw)
            packs.append(time.perf_counter() - start)
            start = time.perf_counter()
            zstandard.ZstdDecompressor().decompress(packed)
            unpacks.append(time.perf_counter() - start)
        print(
            f"  level {level}: {len(packed) / 1e6:.1f} MB ({len(packed) / len(raw):.0%}), "
            f"{min(packs):.2f} s, {min(unpacks):.3f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--levels", default="1,3,6", help="zstd levels to compare (empty: skip the comparison)"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-tier-"))
    try:
        sym = work / "symbols" / symbol_key(NAME, DEBUG_ID)
        sym.parent.mkdir(parents=True)
        with open(sym, "w") as fp:
            info = generate(fp, args.size_mb * 1_000_000, 1, NAME, DEBUG_ID, "windows", "x86_64")
        offset = info["probes"][0]["module_offset"]
        print(f"module: {sym.stat().st_size / 1e6:.0f} MB .sym, {info['functions']} functions")
        server = SymbolServer(work / "symbols")
        cold, second, ratios = [], [], []
        with wsgi_server(server) as url:
            for run in range(args.runs):
                tier = f"file://{work}/tier{run}"
                caches = [work / f"a{run}", work / f"b{run}"]
                for cache in caches:
                    cache.mkdir()
                node_a, base_a = start_node(url + "/", caches[0], tier)
                try:
                    elapsed, debug_a = symbolicate(base_a, offset)
                    cold.append(elapsed)
                    deadline = time.monotonic() + 300
                    while not list((work / f"tier{run}").rglob("*.symc.zst")):
                        assert time.monotonic() < deadline, "node A never filled the tier"
                        time.sleep(0.1)
                    time.sleep(0.5)  # the put is atomic; give the rename a moment
                finally:
                    node_a.terminate()
                    node_a.wait()
                node_b, base_b = start_node(url + "/", caches[1], tier)
                try:
                    elapsed, debug_b = symbolicate(base_b, offset)
                    second.append(elapsed)
                finally:
                    node_b.terminate()
                    node_b.wait()
                assert debug_b["downloads"]["count"] == 0, "node B downloaded the sym file"
                ratios.append(second[-1] / cold[-1])
                print(
                    f"run {run + 1}: node A cold {cold[-1]:.2f} s "
                    f"(download {debug_a['downloads']['time']:.2f}, "
                    f"parse {debug_a['parse_sym']['time']:.2f}); "
                    f"node B from the tier {second[-1]:.3f} s "
                    f"(server {debug_b['time']:.3f}, of which placing in the disk cache "
                    f"{debug_b['save_symcache']['time']:.3f}); ratio {ratios[-1]:.3f}",
                    flush=True,
                )

        print(f"node A cold (s), min/median/max: {mmm(cold)}")
        print(f"node B first request (s), min/median/max: {mmm(second)}")
        print(f"ratio B/A, min/median/max: {mmm(ratios)}", flush=True)
        if args.levels:
            (symcache,) = (work / "a0" / "cache").rglob("*.symc")
            levels = [int(level) for level in args.levels.split(",")]
            compression_levels(symcache, levels, args.runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
