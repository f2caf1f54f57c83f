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
B's first request. The ratio B/A is what the tier saves (< 0.1 is the target);
three runs, min/median/max.

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

from tecken_eliot.testing import SymbolServer
from tecken_shared.breakpad import symbol_key
from tecken_shared.testing.make_synthetic_sym import generate
from tecken_shared.testing.servers import free_port, wait_for_port, wsgi_server

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
    return proc, f"http://127.0.0.1:{port}"


def symbolicate(base: str, offset: int) -> float:
    body = json.dumps(
        {"jobs": [{"memoryMap": [[NAME, DEBUG_ID]], "stacks": [[[0, offset]]]}]}
    ).encode()
    request = urllib.request.Request(
        f"{base}/symbolicate/v5", body, {"Content-Type": "application/json"}
    )
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as resp:
        answer = json.load(resp)
    elapsed = time.perf_counter() - start
    assert answer["results"][0]["found_modules"][f"{NAME}/{DEBUG_ID}"] is True, answer
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
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
                    cold.append(symbolicate(base_a, offset))
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
                    second.append(symbolicate(base_b, offset))
                finally:
                    node_b.terminate()
                    node_b.wait()
                ratios.append(second[-1] / cold[-1])
                print(
                    f"run {run + 1}: node A cold {cold[-1]:.2f} s, node B from the tier "
                    f"{second[-1]:.3f} s, ratio {ratios[-1]:.3f}",
                    flush=True,
                )

        def mmm(values: list[float]) -> str:
            return f"{min(values):.3f} / {statistics.median(values):.3f} / {max(values):.3f}"

        print(f"node A cold (s), min/median/max: {mmm(cold)}")
        print(f"node B first request (s), min/median/max: {mmm(second)}")
        print(f"ratio B/A, min/median/max: {mmm(ratios)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
