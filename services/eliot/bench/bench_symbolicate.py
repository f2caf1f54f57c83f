# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Benchmark of /symbolicate/v5 against gunicorn (deploy/gunicorn-eliot.conf.py).

Each run starts gunicorn on 127.0.0.1 with a fresh cache, then measures from
this (second) process:

* cold: one request for a ~100 MB synthetic module, next to symbolic's raw
  parse of the same file in-process (Archive.open + make_symcache + dump);
* warm: a 40-frame request over 5 small modules and a 40-frame request that
  includes the big module, with 1 and 4 concurrent clients, bounded by a
  request count and a time limit: requests/s, frames/s, p50 and p99;
* baseline, in the same run: raw ``SymCache.lookup`` calls per second on the
  same symcache files, opened in-process with ``SymCache.open``.

Ratios are service frames/s over raw lookups/s (how much of symbolic's speed
the HTTP service keeps), the big request's p50 over the small one's, and cold
time over raw parse time. Three runs; min/median/max of each ratio.

    uv run --locked python services/eliot/bench/bench_symbolicate.py
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import symbolic

from tecken_eliot.naming import cache_stem
from tecken_eliot.testing import (
    CPPFILT,
    PUBONLY,
    QIPCAP,
    SHOWSSE,
    SSLTUNNEL,
    SymbolServer,
    build_symbol_tree,
)
from tecken_shared.breakpad import sym_filename
from tecken_shared.testing import SYNTHETIC_SYM_TOOL
from tecken_shared.testing.servers import free_port, wait_for_port, wsgi_server

REPO = Path(__file__).resolve().parents[3]
SMALL_MODULES = [SSLTUNNEL, CPPFILT, QIPCAP, SHOWSSE, PUBONLY]


def log(msg: str) -> None:
    print(msg, flush=True)


# -- inputs --------------------------------------------------------------------


def ensure_synthetic(workdir: Path, size_mb: float, tool: Path) -> dict:
    meta_path = workdir / f"synth-{size_mb:g}.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if Path(meta["path"]).exists():
            return meta
    log(f"generating a {size_mb:g} MB synthetic sym file with {tool} ...")
    out = subprocess.run(
        [
            sys.executable,
            str(tool),
            "--size-mb",
            str(size_mb),
            "--seed",
            "1",
            "--debug-filename",
            "synth.pdb",
            "--out",
            str(workdir / "symbols"),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    meta = json.loads(out.strip().splitlines()[-1])
    meta_path.write_text(json.dumps(meta))
    return meta


def addresses(sym_file: Path, count: int, rng: random.Random) -> list[int]:
    """``count`` addresses inside FUNC (else PUBLIC) records of a small sym file."""
    funcs, publics = [], []
    for line in sym_file.read_text().splitlines():
        parts = line.split()
        if parts and parts[0] == "FUNC":
            if parts[1] == "m":
                parts.pop(1)
            funcs.append((int(parts[1], 16), max(1, int(parts[2], 16))))
        elif parts and parts[0] == "PUBLIC":
            if parts[1] == "m":
                parts.pop(1)
            publics.append((int(parts[1], 16), 16))
    ranges = funcs or publics
    return [start + rng.randrange(size) for start, size in rng.choices(ranges, k=count)]


def build_payloads(symbols: Path, synth: dict) -> tuple[dict, dict]:
    rng = random.Random(42)
    offsets = {
        m: addresses(symbols / m[0] / m[1] / sym_filename(m[0]), 8, rng) for m in SMALL_MODULES
    }

    def payload(modules: list[tuple[str, str]], per_module: dict) -> dict:
        frames = []
        for index, module in enumerate(modules):
            frames += [[index, off] for off in per_module[module]]
        rng.shuffle(frames)
        return {"jobs": [{"memoryMap": [list(m) for m in modules], "stacks": [frames]}]}

    synth_module = (synth["debug_filename"], synth["debug_id"])
    synth_offsets = [p["module_offset"] for p in synth["probes"]][:8]
    while len(synth_offsets) < 8:
        synth_offsets.append(rng.randrange(synth["max_address"]))
    small = payload(SMALL_MODULES, offsets)
    large = payload(SMALL_MODULES[:4] + [synth_module], {**offsets, synth_module: synth_offsets})
    return small, large


# -- gunicorn ------------------------------------------------------------------


class Gunicorn:
    def __init__(self, cache_dir: Path, symbol_url: str, workers: int | None) -> None:
        self.port = free_port()
        env = dict(
            os.environ,
            ELIOT_GUNICORN_BIND=f"127.0.0.1:{self.port}",
            ELIOT_SYMBOLS_CACHE_DIR=str(cache_dir),
            ELIOT_SYMBOL_URLS=symbol_url,
            ELIOT_METRICS_BACKEND="none",
            ELIOT_CACHE_MANAGER_MAX_AGE="0",
            ELIOT_GUNICORN_ACCESSLOG="-",
            TECKEN_ENV_FILE=os.devnull,
        )
        if workers:
            env["ELIOT_GUNICORN_WORKERS"] = str(workers)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                str(REPO / "deploy/gunicorn-eliot.conf.py"),
                "--no-control-socket",
                "tecken_eliot.wsgi:application",
            ],
            env=env,
            cwd=str(REPO),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port("127.0.0.1", self.port, 30)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def post(port: int, body: bytes, timeout: float = 300) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/symbolicate/v5", body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def load(port: int, body: bytes, clients: int, max_requests: int, max_seconds: float) -> dict:
    """``clients`` threads sending ``body`` until ``max_requests`` in total or
    ``max_seconds`` have passed."""
    latencies: list[float] = []
    lock = threading.Lock()
    errors = []
    deadline = time.perf_counter() + max_seconds
    remaining = [max_requests]

    def client() -> None:
        while time.perf_counter() < deadline:
            with lock:
                if remaining[0] <= 0:
                    return
                remaining[0] -= 1
            start = time.perf_counter()
            status, _ = post(port, body)
            elapsed = time.perf_counter() - start
            with lock:
                if status != 200:
                    errors.append(status)
                latencies.append(elapsed)

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    latencies.sort()
    n = len(latencies)
    return {
        "requests": n,
        "errors": len(errors),
        "rps": n / wall,
        "p50": latencies[n // 2] * 1000,
        "p99": latencies[min(n - 1, int(n * 0.99))] * 1000,
    }


# -- baselines -----------------------------------------------------------------


def raw_parse(sym_path: Path, debug_id: str) -> float:
    start = time.perf_counter()
    archive = symbolic.Archive.open(str(sym_path))
    symcache = archive.get_object(debug_id=symbolic.normalize_debug_id(debug_id)).make_symcache()
    with tempfile.TemporaryFile() as fp:
        symcache.dump_into(fp)
    return time.perf_counter() - start


def raw_lookups(cache_dir: Path, payload: dict, seconds: float) -> float:
    """symbolic lookups/s for the payload's frames on the service's symcache
    files, opened in-process (memory-mapped)."""
    job = payload["jobs"][0]
    caches = [
        symbolic.SymCache.open(str(cache_dir / "cache" / (cache_stem(*m) + ".symc")))
        for m in job["memoryMap"]
    ]
    frames = [(caches[i], off) for i, off in job["stacks"][0]]
    count = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for symcache, offset in frames:
            symcache.lookup(offset)
        count += len(frames)
    return count / (time.perf_counter() - start)


# -- one run -------------------------------------------------------------------


def one_run(args, run: int, symbols_url: str, synth: dict, small: dict, large: dict) -> dict:
    cache_dir = Path(args.workdir) / f"cache-{run}"
    shutil.rmtree(cache_dir, ignore_errors=True)
    server = Gunicorn(cache_dir, symbols_url, args.workers)
    result: dict = {}
    try:
        synth_path = Path(synth["path"])
        raw = raw_parse(synth_path, synth["debug_id"])
        synth_only = {
            "jobs": [
                {
                    "memoryMap": [[synth["debug_filename"], synth["debug_id"]]],
                    "stacks": [[[0, synth["probes"][0]["module_offset"]]]],
                }
            ]
        }
        start = time.perf_counter()
        status, body = post(server.port, json.dumps(synth_only).encode())
        cold = time.perf_counter() - start
        assert status == 200, body
        frame = json.loads(body)["results"][0]["stacks"][0][0]
        assert frame.get("function") == synth["probes"][0]["function"], frame
        size_mb = synth_path.stat().st_size / 1e6
        result["cold"] = {"service_s": cold, "raw_parse_s": raw, "raw_mb_s": size_mb / raw}
        log(
            f"  cold {size_mb:.0f} MB module: service {cold:.2f}s, symbolic parse {raw:.2f}s "
            f"({size_mb / raw:.1f} MB/s), ratio {cold / raw:.2f}"
        )
        bodies = {"small": json.dumps(small).encode(), "large": json.dumps(large).encode()}
        for body in bodies.values():  # every worker opens every symcache
            for _ in range(10 * max(1, args.workers or 2)):
                status, text = post(server.port, body)
                assert status == 200, text
        payloads = {"small": small, "large": large}
        baselines = {
            name: raw_lookups(cache_dir, payload, args.baseline_seconds)
            for name, payload in payloads.items()
        }
        for clients in args.clients:
            for name, payload in payloads.items():  # small and large back to back
                frames = len(payload["jobs"][0]["stacks"][0])
                stats = load(server.port, bodies[name], clients, args.requests, args.seconds)
                fps = stats["rps"] * frames
                ratio = fps / baselines[name]
                result[f"{name}-{clients}"] = {
                    **stats,
                    "fps": fps,
                    "raw_lookups": baselines[name],
                    "ratio": ratio,
                }
                log(
                    f"  {name:5s} x{clients}: {stats['requests']} req, {stats['rps']:.0f} req/s, "
                    f"{fps:.0f} frames/s, p50 {stats['p50']:.2f} ms, p99 {stats['p99']:.2f} ms"
                    f" | raw symbolic {baselines[name]:.0f} lookups/s | ratio {ratio:.3f}"
                    + (f" | errors {stats['errors']}" if stats["errors"] else "")
                )
    finally:
        server.stop()
        shutil.rmtree(cache_dir, ignore_errors=True)
    return result


def summary(runs: list[dict], clients: list[int]) -> None:
    def mmm(values: list[float]) -> str:
        return f"{min(values):.3f} / {statistics.median(values):.3f} / {max(values):.3f}"

    log(f"\nsummary over {len(runs)} runs (min / median / max)")
    for name in ("small", "large"):
        for c in clients:
            key = f"{name}-{c}"
            log(
                f"  {key:8s} service frames/s / raw lookups/s: {mmm([r[key]['ratio'] for r in runs])}"
                f"   req/s: {mmm([r[key]['rps'] for r in runs])}"
                f"   p50 ms: {mmm([r[key]['p50'] for r in runs])}"
                f"   p99 ms: {mmm([r[key]['p99'] for r in runs])}"
            )
    for c in clients:
        ratios = [r[f"large-{c}"]["p50"] / r[f"small-{c}"]["p50"] for r in runs]
        log(f"  large p50 / small p50, {c} client(s): {mmm(ratios)}   (target <= 1.5)")
    log(
        f"  cold / raw parse: {mmm([r['cold']['service_s'] / r['cold']['raw_parse_s'] for r in runs])}"
        "   (target <= 1.3)"
    )
    log(f"  raw parse MB/s: {mmm([r['cold']['raw_mb_s'] for r in runs])}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=2000, help="per measurement, at most")
    parser.add_argument("--seconds", type=float, default=8.0, help="per measurement, at most")
    parser.add_argument("--baseline-seconds", type=float, default=2.0)
    parser.add_argument("--clients", type=lambda v: [int(x) for x in v.split(",")], default=[1, 4])
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="gunicorn workers (default: deploy/gunicorn-eliot.conf.py's)",
    )
    parser.add_argument("--size-mb", type=float, default=100.0)
    parser.add_argument(
        "--workdir", default=os.path.join(tempfile.gettempdir(), "eliot-bench-data")
    )
    parser.add_argument("--synth-tool", default=str(SYNTHETIC_SYM_TOOL))
    args = parser.parse_args()

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    symbols = workdir / "symbols"
    build_symbol_tree(symbols)
    synth = ensure_synthetic(workdir, args.size_mb, Path(args.synth_tool))
    small, large = build_payloads(symbols, synth)
    symbol_server = SymbolServer(symbols)
    runs = []
    with wsgi_server(symbol_server) as url:
        for run in range(1, args.runs + 1):
            log(f"run {run}/{args.runs}")
            runs.append(one_run(args, run, url + "/", synth, small, large))
    summary(runs, args.clients)
    return 0


if __name__ == "__main__":
    sys.exit(main())
