# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Benchmark of warm-cache symbol downloads (302s and 404s) under gunicorn
(deploy/gunicorn-symbols.conf.py settings), next to a same-run baseline: a
bare Falcon app answering a fixed 302 under the same gunicorn settings.

Each run starts both servers on 127.0.0.1 (embedded set-up: SQLite,
filesystem storage, in-process cache), warms the symbols cache with every key
once (with ``memory://`` and filesystem storage only hits are cached: a
missing file costs one stat; ``--cache-url redis://...`` caches both), then
drives each server from a second process (``--load``) with
``--concurrency`` threads, bounded by ``--requests`` and ``--seconds``, in
``--rounds`` that alternate between the two servers. It
prints requests/s, p50 and p99 for both and the ratio of the service's
requests/s to the baseline's. Three runs; min/median/max of the ratio.

    uv run --locked python services/symbols/bench/bench_download.py
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
GUNICORN_CONF = REPO / "deploy" / "gunicorn-symbols.conf.py"


def log(msg: str) -> None:
    print(msg, flush=True)


# -- load generator (runs in its own process) ----------------------------------


def run_load(port: int, paths: list[str], requests: int, seconds: float, concurrency: int) -> dict:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    counter = iter(range(requests))
    deadline = time.monotonic() + seconds
    errors = [0]

    def worker() -> None:
        local_lat, local_status = [], {}
        while time.monotonic() < deadline:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            path = paths[i % len(paths)]
            started = time.perf_counter()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("GET", path)
                resp = conn.getresponse()
                resp.read()
                conn.close()
            except OSError:
                errors[0] += 1
                continue
            local_lat.append(time.perf_counter() - started)
            local_status[resp.status] = local_status.get(resp.status, 0) + 1
        with lock:
            latencies.extend(local_lat)
            for k, v in local_status.items():
                statuses[k] = statuses.get(k, 0) + v

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else 0
        )

    return {
        "requests": len(latencies),
        "errors": errors[0],
        "seconds": elapsed,
        "rps": len(latencies) / elapsed if elapsed else 0,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "statuses": statuses,
        "latencies_ms": [round(x * 1000, 4) for x in latencies],
    }


def combine(parts: list[dict]) -> dict:
    """One figure from several rounds against the same server."""
    latencies = sorted(x for p in parts for x in p["latencies_ms"])
    seconds = sum(p["seconds"] for p in parts)
    statuses: dict[str, int] = {}
    for p in parts:
        for k, v in p["statuses"].items():
            statuses[str(k)] = statuses.get(str(k), 0) + v

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else 0

    return {
        "requests": len(latencies),
        "errors": sum(p["errors"] for p in parts),
        "seconds": seconds,
        "rps": len(latencies) / seconds if seconds else 0,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "statuses": statuses,
    }


def load_from_second_process(
    port: int, paths: list[str], args: argparse.Namespace, requests: int, seconds: float
) -> dict:
    spec = json.dumps({"port": port, "paths": paths})
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--load",
            "--requests",
            str(requests),
            "--seconds",
            str(seconds),
            "--concurrency",
            str(args.concurrency),
        ],
        input=spec,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


# -- servers -------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port: int, path: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", path)
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing answers on 127.0.0.1:{port}")


def start_gunicorn(app: str, port: int, env: dict, cwd: Path, workers: int) -> subprocess.Popen:
    full_env = {
        **os.environ,
        **env,
        "SYMBOLS_GUNICORN_BIND": f"127.0.0.1:{port}",
        "SYMBOLS_GUNICORN_WORKERS": str(workers),
        "SYMBOLS_GUNICORN_ACCESSLOG": "/dev/null",
        "SYMBOLS_GUNICORN_LOGLEVEL": "warning",
        "PYTHONPATH": str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), app],
        env=full_env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def prepare(workdir: Path, keys: int, cache_url: str) -> tuple[dict, list[str]]:
    storage = workdir / "storage" / "v1"
    paths = []
    for i in range(keys):
        debug_id = f"{i:032X}1"
        key = f"bench{i}.pdb/{debug_id}/bench{i}.sym"
        target = storage / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"MODULE windows x86_64 " + debug_id.encode() + b" bench.pdb\n")
        paths.append("/" + key)  # found: 302
        paths.append(f"/missing{i}.pdb/{debug_id}/missing{i}.sym")  # not found: 404
    env = {
        "SYMBOLS_DATABASE_URL": f"sqlite:///{workdir}/symbols.db",
        "SYMBOLS_STORAGE_URL": f"file://{storage}",
        "SYMBOLS_TRY_STORAGE_URL": f"file://{workdir}/storage/try/v1",
        "SYMBOLS_PUBLIC_URL": "http://127.0.0.1",
        "SYMBOLS_CACHE_URL": cache_url,
        "SYMBOLS_CACHE_PREFIX": f"bench-{os.getpid()}-{time.time()}:",
        "SYMBOLS_CACHE_NEGATIVE_TTL": "600",
        "SYMBOLS_METRICS_BACKEND": "none",
        "SYMBOLS_LOGGING_LEVEL": "WARNING",
        "SYMBOLS_LOCAL_DEV_ENV": "false",
        "SYMBOLS_VERSION_FILE": "",
    }
    return env, paths


def one_run(n: int, args: argparse.Namespace) -> float:
    workdir = Path(tempfile.mkdtemp(prefix="tecken-bench-symbols-"))
    procs = []
    try:
        env, paths = prepare(workdir, args.keys, args.cache_url)
        sym_port, base_port = free_port(), free_port()
        procs.append(
            start_gunicorn("tecken_symbols.wsgi:application", sym_port, env, workdir, args.workers)
        )
        procs.append(
            start_gunicorn("baseline_app:application", base_port, {}, workdir, args.workers)
        )
        wait_ready(sym_port, "/__lbheartbeat__")
        wait_ready(base_port, "/a/B/c.sym")
        # Warm the cache of every worker: each path several times.
        for _ in range(args.workers * 3):
            for path in paths:
                conn = http.client.HTTPConnection("127.0.0.1", sym_port, timeout=10)
                conn.request("GET", path)
                conn.getresponse().read()
                conn.close()
        # Alternate between the two servers in rounds, so that load from
        # other processes on the machine falls on both alike.
        per_round = max(1, args.requests // args.rounds)
        seconds = args.seconds / args.rounds
        base_parts, sym_parts = [], []
        for i in range(args.rounds):
            order = [(base_port, base_parts), (sym_port, sym_parts)]
            for port, parts in order if i % 2 == 0 else reversed(order):
                parts.append(load_from_second_process(port, paths, args, per_round, seconds))
        base, sym = combine(base_parts), combine(sym_parts)
        ratio = sym["rps"] / base["rps"] if base["rps"] else 0
        for name, r in (("baseline (bare Falcon 302)", base), ("symbols download", sym)):
            log(
                f"run {n}: {name:28s} {r['requests']:6d} req in {r['seconds']:5.2f}s "
                f"{r['rps']:8.1f} req/s  p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms  "
                f"statuses {r['statuses']} errors {r['errors']}"
            )
        log(f"run {n}: ratio symbols/baseline requests/s = {ratio:.3f}")
        return ratio
    finally:
        for proc in procs:
            stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=10000, help="per server per run")
    parser.add_argument("--seconds", type=float, default=30, help="time limit per server per run")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (both servers)")
    parser.add_argument("--keys", type=int, default=100, help="found keys (and as many missing)")
    parser.add_argument(
        "--rounds", type=int, default=6, help="alternations between the servers per run"
    )
    parser.add_argument("--cache-url", default="memory://", help="SYMBOLS_CACHE_URL to use")
    parser.add_argument("--load", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        spec = json.loads(sys.stdin.read())
        result = run_load(
            spec["port"], spec["paths"], args.requests, args.seconds, args.concurrency
        )
        print(json.dumps(result))
        return 0
    log(
        f"{args.runs} runs; per server: {args.requests} requests / {args.seconds}s max, "
        f"{args.concurrency} client threads in a second process, {args.workers} gunicorn workers, "
        f"{args.rounds} alternating rounds; "
        f"half 302 (found), half 404 (missing), warm cache ({args.cache_url})"
    )
    ratios = [one_run(n + 1, args) for n in range(args.runs)]
    log(
        f"ratio symbols/baseline: min {min(ratios):.3f}  median {statistics.median(ratios):.3f}  "
        f"max {max(ratios):.3f}  (target >= 0.70)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
