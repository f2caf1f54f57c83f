# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Benchmark of /symbolicate/v5 against gunicorn (deploy/gunicorn-eliot.conf.py).

Each run starts gunicorn on 127.0.0.1 (one worker unless --workers) with a
fresh cache, then measures from this (second) process, each row next to its
baseline measured in the same run: symbolic's raw ``SymCache.lookup`` calls
per second on the same symcache files, opened in-process, for the same
frames (no memo). The ratio is service frames/s over raw lookups/s: how much
of symbolic's own speed the HTTP service keeps (above 1 when memoised
frames are cheaper than a lookup).

* cold: one request for a ~100 MB synthetic module, next to symbolic's raw
  parse of the same file (Archive.open + make_symcache + dump);
* small / large: 40 frames over 5 small modules, and 40 frames including the
  big module, with 1 and 4 concurrent clients;
* distinct: 4,000 frames of one 20 MB module, every request with addresses
  never asked before (nothing to memoise: the bound is symbolic's lookup);
* modules100: 100 modules x 40 distinct frames per request (fresh addresses);
* modules350: 350 modules x 3 frames (a request over 300 modules: the
  worker's open symcaches must hold them all, not thrash);
* batch-N: N stacks of 20 frames drawn from 50 distinct stacks over the 100
  modules (real crash stacks repeat), N = 1, 10, 100 and 1,000 (10 jobs of
  100 stacks, as Eliot tells clients to batch): the cost per frame falls
  as batches grow.

Three runs; min/median/max of each figure.

    uv run --locked python services/eliot/bench/bench_symbolicate.py

Run it from an older checkout (copy this file there) to compare versions.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
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
from tecken_shared.testing import SYNTHETIC_SYM_TOOL, make_synthetic_sym
from tecken_shared.testing.servers import free_port, wait_for_port, wsgi_server

REPO = Path(__file__).resolve().parents[3]
SMALL_MODULES = [SSLTUNNEL, CPPFILT, QIPCAP, SHOWSSE, PUBONLY]


def log(msg: str) -> None:
    print(msg, flush=True)


# -- inputs --------------------------------------------------------------------


def ensure_synthetic(workdir: Path, size_mb: float, tool: Path, name: str = "synth.pdb") -> dict:
    meta_path = workdir / f"{name}-{size_mb:g}.json"
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
            name,
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


def ensure_modules(workdir: Path, count: int, size_mb: float) -> list[dict]:
    """``count`` small synthetic modules (``mod<i>.pdb``) in workdir/symbols,
    with the function ranges frames are drawn from."""
    meta_path = workdir / f"modules-{count}-{size_mb:g}.json"
    if meta_path.exists():
        return json.loads(meta_path.read_text())
    log(f"generating {count} synthetic modules of {size_mb:g} MB ...")
    modules = []
    for i in range(count):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            make_synthetic_sym.main(
                [
                    "--size-mb",
                    str(size_mb),
                    "--seed",
                    str(1000 + i),
                    "--debug-filename",
                    f"mod{i}.pdb",
                    "--out",
                    str(workdir / "symbols"),
                ]
            )
        meta = json.loads(out.getvalue().strip().splitlines()[-1])
        modules.append({"module": [meta["debug_filename"], meta["debug_id"]], "path": meta["path"]})
    meta_path.write_text(json.dumps(modules))
    return modules


def func_ranges(sym_file: Path) -> list[tuple[int, int]]:
    """(start, size) of each FUNC record."""
    ranges = []
    with open(sym_file) as fp:
        for line in fp:
            if line.startswith("FUNC "):
                parts = line.split()
                if parts[1] == "m":
                    parts.pop(1)
                ranges.append((int(parts[1], 16), max(1, int(parts[2], 16))))
    return ranges


def draw(ranges: list[tuple[int, int]], count: int, rng: random.Random) -> list[int]:
    return [start + rng.randrange(size) for start, size in rng.choices(ranges, k=count)]


def body_of(memory_map: list, stacks: list, jobs: int = 1) -> bytes:
    job = {"memoryMap": memory_map, "stacks": stacks}
    return json.dumps({"jobs": [job] * jobs}).encode()


class Row:
    """One measured row: request bodies for the service and the frames
    (module index, offset) its raw-symbolic baseline looks up."""

    def __init__(
        self,
        name: str,
        memory_map: list,
        bodies: list[bytes],
        frames: list[tuple[int, int]],
        frames_per_request: int,
        clients: int = 1,
        warm: bytes | None = None,
    ) -> None:
        self.name = name
        self.memory_map = memory_map
        self.bodies = bodies
        self.frames = frames
        self.frames_per_request = frames_per_request
        self.clients = clients
        #: fresh rows: a body apart that opens the modules; each of
        #: ``bodies`` is then sent once at most (nothing memoised helps)
        self.warm = warm


def fresh_rows(args, mid: dict, modules: list[dict], rng: random.Random) -> list[Row]:
    """Rows whose every request asks for addresses never asked before."""
    rows = []
    mid_ranges = func_ranges(Path(mid["path"]))
    n = args.fresh_requests
    offsets = draw(mid_ranges, 4000 * (2 * n + 1), rng)
    mid_map = [[mid["debug_filename"], mid["debug_id"]]]
    bodies = [
        body_of(mid_map, [[[0, o] for o in offsets[4000 * (i + 1) : 4000 * (i + 2)]]])
        for i in range(n)
    ]
    # The baseline looks up as many fresh addresses, each once.
    baseline = [(0, o) for o in offsets[4000 * (n + 1) :]]
    warm = body_of(mid_map, [[[0, o] for o in offsets[:4000]]])
    rows.append(Row("distinct", mid_map, bodies, baseline, 4000, warm=warm))
    ranges = [func_ranges(Path(m["path"])) for m in modules]
    for count, per_module in ((100, 40), (350, 3)):
        memory_map = [m["module"] for m in modules[:count]]

        def frames(count: int = count, per_module: int = per_module) -> list[list[int]]:
            out = [[i, o] for i in range(count) for o in draw(ranges[i], per_module, rng)]
            rng.shuffle(out)
            return out

        warm = body_of(memory_map, [frames()])
        bodies = [body_of(memory_map, [frames()]) for _ in range(n)]
        baseline = [tuple(f) for _ in range(n) for f in frames()]
        rows.append(
            Row(f"modules{count}", memory_map, bodies, baseline, count * per_module, warm=warm)
        )
    return rows


def batch_rows(modules: list[dict], rng: random.Random) -> list[Row]:
    """N stacks of 20 frames drawn from 50 distinct stacks over 100 modules."""
    memory_map = [m["module"] for m in modules[:100]]
    ranges = [func_ranges(Path(m["path"])) for m in modules[:100]]
    distinct = []
    for _ in range(50):
        stack = []
        for _ in range(20):
            i = rng.randrange(len(memory_map))
            stack.append([i, draw(ranges[i], 1, rng)[0]])
        distinct.append(stack)
    rows = []
    for stacks, jobs in ((1, 1), (10, 1), (100, 1), (100, 10)):
        chosen = [[rng.choice(distinct) for _ in range(stacks)] for _ in range(jobs)]
        payload = {"jobs": [{"memoryMap": memory_map, "stacks": s} for s in chosen]}
        frames = [tuple(f) for s in chosen for stack in s for f in stack]
        rows.append(
            Row(
                f"batch-{stacks * jobs}",
                memory_map,
                [json.dumps(payload).encode()],
                frames,
                len(frames),
            )
        )
    return rows


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
    def __init__(
        self, cache_dir: Path, symbol_url: str, workers: int | None, extra: list[str]
    ) -> None:
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
        env.update(item.split("=", 1) for item in extra)
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

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the workers: what a
        request costs the service however busy the machine is."""
        total = 0
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return 0.0
        for pid in children.split():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / os.sysconf("SC_CLK_TCK")

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


def load(
    port: int, bodies: list[bytes], clients: int, max_requests: int, max_seconds: float
) -> dict:
    """``clients`` threads sending ``bodies`` (in turn, each at most once
    when there are enough) until ``max_requests`` in total or ``max_seconds``
    have passed."""
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
                body = bodies[remaining[0] % len(bodies)]
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


def raw_lookups(
    cache_dir: Path,
    memory_map: list,
    frames: list[tuple[int, int]],
    seconds: float,
    once: bool = False,
) -> tuple[float, float]:
    """symbolic lookups/s for ``frames`` on the service's symcache files,
    opened in-process (memory-mapped), every frame looked up (no memo), for
    ``seconds`` (``once``: each frame once, as fresh as the service's); and
    the CPU seconds of one lookup."""
    caches = {
        i: symbolic.SymCache.open(str(cache_dir / "cache" / (cache_stem(*memory_map[i]) + ".symc")))
        for i in {i for i, _off in frames}
    }
    resolved = [(caches[i], off) for i, off in frames]
    count = 0
    start = time.perf_counter()
    cpu = time.process_time()
    while time.perf_counter() - start < seconds:
        for symcache, offset in resolved:
            symcache.lookup(offset)
        count += len(resolved)
        if once:
            break
    return count / (time.perf_counter() - start), (time.process_time() - cpu) / count


# -- one run -------------------------------------------------------------------


def measure(args, server: Gunicorn, cache_dir: Path, row: Row, result: dict) -> None:
    """Warm the row's modules in every worker, then its baseline and its load."""
    warm = row.warm or row.bodies[0]
    for _ in range(2 * max(1, args.workers or 2)):
        for _attempt in range(10):  # a busy machine may not fetch them all at once
            status, text = post(server.port, warm)
            assert status == 200, text
            if not any("module_errors" in r for r in json.loads(text)["results"]):
                break
    raw, raw_cpu = raw_lookups(
        cache_dir, row.memory_map, row.frames, args.baseline_seconds, once=row.warm is not None
    )
    cpu = server.cpu_seconds()
    requests = args.requests if row.warm is None else min(args.requests, len(row.bodies))
    stats = load(server.port, row.bodies, row.clients, requests, args.seconds)
    cpu_frame = (server.cpu_seconds() - cpu) / (stats["requests"] * row.frames_per_request)
    fps = stats["rps"] * row.frames_per_request
    key = f"{row.name}-{row.clients}"
    result[key] = {
        **stats,
        "fps": fps,
        "us_per_frame": 1e6 / fps,
        "raw_lookups": raw,
        "ratio": fps / raw,
        "cpu_us_per_frame": cpu_frame * 1e6,
        "raw_cpu_us": raw_cpu * 1e6,
        "cpu_ratio": raw_cpu / cpu_frame if cpu_frame else 0.0,
    }
    log(
        f"  {key:14s} {stats['requests']:4d} req, {stats['rps']:7.1f} req/s, "
        f"{fps:8.0f} frames/s ({1e6 / fps:6.2f} us/frame), p50 {stats['p50']:7.2f} ms"
        f" | raw symbolic {raw:6.0f} lookups/s ({1e6 / raw:5.2f} us) | ratio {fps / raw:.3f}"
        f" | CPU us/frame: worker {cpu_frame * 1e6:6.2f}, raw lookup {raw_cpu * 1e6:5.2f},"
        f" ratio {result[key]['cpu_ratio']:.3f}"
        + (f" | errors {stats['errors']}" if stats["errors"] else "")
    )


def one_run(args, run: int, symbols_url: str, synth: dict, rows: list[Row]) -> dict:
    cache_dir = Path(args.workdir) / f"cache-{run}"
    shutil.rmtree(cache_dir, ignore_errors=True)
    server = Gunicorn(cache_dir, symbols_url, args.workers, args.env)
    result: dict = {}
    try:
        if args.rows and "cold" not in args.rows.split(","):
            for row in rows:
                measure(args, server, cache_dir, row, result)
            return result
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
        for row in rows:
            measure(args, server, cache_dir, row, result)
    finally:
        server.stop()
        shutil.rmtree(cache_dir, ignore_errors=True)
    return result


def summary(runs: list[dict]) -> None:
    def mmm(values: list[float], fmt: str = ".3f") -> str:
        return f"{min(values):{fmt}} / {statistics.median(values):{fmt}} / {max(values):{fmt}}"

    log(f"\nsummary over {len(runs)} runs (min / median / max)")
    for key in [k for k in runs[0] if k != "cold"]:
        log(
            f"  {key:14s} frames/s / raw lookups/s: {mmm([r[key]['ratio'] for r in runs])}"
            f"   req/s: {mmm([r[key]['rps'] for r in runs], '.1f')}"
            f"   us/frame: {mmm([r[key]['us_per_frame'] for r in runs], '.2f')}"
            f"   p50 ms: {mmm([r[key]['p50'] for r in runs], '.2f')}"
        )
        log(
            f"  {'':14s} CPU: raw lookup / worker per frame: "
            f"{mmm([r[key]['cpu_ratio'] for r in runs])}"
            f"   worker us/frame: {mmm([r[key]['cpu_us_per_frame'] for r in runs], '.2f')}"
        )
    for c in (1, 4):
        if f"large-{c}" in runs[0] and f"small-{c}" in runs[0]:
            ratios = [r[f"large-{c}"]["p50"] / r[f"small-{c}"]["p50"] for r in runs]
            log(f"  large p50 / small p50, {c} client(s): {mmm(ratios)}   (target <= 1.5)")
    if "cold" not in runs[0]:
        return
    log(
        f"  cold / raw parse: {mmm([r['cold']['service_s'] / r['cold']['raw_parse_s'] for r in runs])}"
        "   (target <= 1.3)"
    )
    log(f"  raw parse MB/s: {mmm([r['cold']['raw_mb_s'] for r in runs])}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=1000, help="per measurement, at most")
    parser.add_argument("--seconds", type=float, default=6.0, help="per measurement, at most")
    parser.add_argument("--baseline-seconds", type=float, default=2.0)
    parser.add_argument("--fresh-requests", type=int, default=40, help="bodies of fresh rows")
    parser.add_argument(
        "--rows", default="", help="comma-separated row names to run, cold included (default: all)"
    )
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers")
    parser.add_argument(
        "--env", action="append", default=[], help="NAME=VALUE for gunicorn (repeatable)"
    )
    parser.add_argument("--size-mb", type=float, default=100.0)
    parser.add_argument("--mid-mb", type=float, default=20.0)
    parser.add_argument("--module-mb", type=float, default=0.1)
    parser.add_argument(
        "--workdir", default=os.path.join(tempfile.gettempdir(), "eliot-bench-data")
    )
    parser.add_argument("--synth-tool", default=str(SYNTHETIC_SYM_TOOL))
    parser.add_argument("--json-out", help="also write every run's figures to this file")
    args = parser.parse_args()

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    symbols = workdir / "symbols"
    build_symbol_tree(symbols)
    synth = ensure_synthetic(workdir, args.size_mb, Path(args.synth_tool))
    mid = ensure_synthetic(workdir, args.mid_mb, Path(args.synth_tool), "mid.pdb")
    modules = ensure_modules(workdir, 350, args.module_mb)
    small, large = build_payloads(symbols, synth)
    rng = random.Random(7)
    rows = []
    for clients in (1, 4):
        for name, payload in (("small", small), ("large", large)):
            job = payload["jobs"][0]
            frames = [tuple(f) for f in job["stacks"][0]]
            body = json.dumps(payload).encode()
            rows.append(Row(name, job["memoryMap"], [body], frames, len(frames), clients))
    rows += fresh_rows(args, mid, modules, rng) + batch_rows(modules, rng)
    if args.rows:
        wanted = args.rows.split(",")
        rows = [r for r in rows if r.name in wanted]
    symbol_server = SymbolServer(symbols)
    runs = []
    with wsgi_server(symbol_server) as url:
        for run in range(1, args.runs + 1):
            log(f"run {run}/{args.runs}")
            runs.append(one_run(args, run, url + "/", synth, rows))
    summary(runs)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(runs, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
