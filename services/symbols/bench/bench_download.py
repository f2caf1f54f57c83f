# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Benchmark of symbol downloads under gunicorn
(deploy/gunicorn-symbols.conf.py settings), next to a same-run baseline: a
bare Falcon app answering a fixed 302 under the same gunicorn settings.

Rows, each at ``--clients`` (1 and 4) concurrent clients:

* ``miss`` on every storage backend (``--backends``): ``memory`` (filesystem
  storage, in-process lookup cache), ``redis`` (filesystem storage, Redis
  lookup cache at ``--redis-url``), ``filesystem`` (filesystem storage, the
  cache turned off with ``memory://?max_entries=1``), ``s3`` (a moto server
  on loopback, in-process cache) and ``gcs`` (gcp-storage-emulator on
  loopback, in-process cache). Every request asks for a key never asked
  before (404), as the long tail of real missing symbols does.
* ``hit`` (302) on the ``memory`` backend, keys warmed in every worker.

For each row the service and the baseline are driven from a second process
(``--load``), with the client count as threads, bounded by ``--requests`` and
``--seconds``, in ``--rounds`` short slices that alternate between the two
servers (so that other load on the machine falls on both alike). The
service runs with the options given by ``--env NAME=VALUE`` on top of the
bench's own (SQLite, the storage above). It prints requests/s and p50/p99 of
both and the ratio of the service's requests/s to the baseline's; after
``--runs`` runs, min/median/max of each row's ratio.

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
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
GUNICORN_CONF = REPO / "deploy" / "gunicorn-symbols.conf.py"
BACKENDS = ("memory", "redis", "filesystem", "s3", "gcs")


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
    tag = uuid.uuid4().hex[:12]  # "{n}" in a path: a key never asked before

    def worker() -> None:
        local_lat, local_status = [], {}
        while time.monotonic() < deadline:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            path = paths[i % len(paths)].replace("{n}", f"{tag}{i}")
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


def run_alternating(
    targets: list[dict], requests: int, seconds: float, clients: int, slices: int
) -> list[dict]:
    """Drive each target (``{"port", "paths"}``) in turn for ``slices``
    short slices (the order reversed every other slice), so that load from
    other processes on the machine falls on every target alike."""
    parts: list[list[dict]] = [[] for _ in targets]
    order = list(range(len(targets)))
    for i in range(slices):
        for t in order if i % 2 == 0 else reversed(order):
            target = targets[t]
            parts[t].append(
                run_load(
                    target["port"],
                    target["paths"],
                    max(1, requests // slices),
                    seconds / slices,
                    clients,
                )
            )
    return [combine(p) for p in parts]


def load_from_second_process(
    targets: list[dict], clients: int, args: argparse.Namespace
) -> list[dict]:
    spec = json.dumps({"targets": targets})
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--load",
            "--requests",
            str(args.requests),
            "--seconds",
            str(args.seconds),
            "--concurrency",
            str(clients),
            "--rounds",
            str(args.rounds),
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


def start_gunicorn(
    app: str, port: int, env: dict, cwd: Path, args: argparse.Namespace
) -> subprocess.Popen:
    full_env = {
        **os.environ,
        **env,
        "SYMBOLS_GUNICORN_BIND": f"127.0.0.1:{port}",
        "SYMBOLS_GUNICORN_WORKERS": str(args.workers),
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


def storage_env(backend: str, workdir: Path, args: argparse.Namespace, servers: dict) -> dict:
    """The storage and cache options of ``backend`` (buckets created on the
    loopback servers in ``servers``)."""
    fs = {
        "SYMBOLS_STORAGE_URL": f"file://{workdir}/storage/v1",
        "SYMBOLS_TRY_STORAGE_URL": f"file://{workdir}/storage/try/v1",
    }
    if backend == "memory":
        return {**fs, "SYMBOLS_CACHE_URL": "memory://"}
    if backend == "filesystem":
        return {**fs, "SYMBOLS_CACHE_URL": "memory://?max_entries=1"}
    if backend == "redis":
        return {**fs, "SYMBOLS_CACHE_URL": args.redis_url}
    bucket = f"bench-{uuid.uuid4().hex[:12]}"
    if backend == "s3":
        import boto3

        endpoint = servers["s3"].endpoint_url
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
            Bucket=bucket
        )
        q = f"endpoint_url={endpoint}&region=us-east-1"
        return {
            "SYMBOLS_STORAGE_URL": f"s3://{bucket}/v1?{q}",
            "SYMBOLS_TRY_STORAGE_URL": f"s3://{bucket}/try/v1?{q}",
            "SYMBOLS_CACHE_URL": "memory://",
        }
    if backend == "gcs":
        from tecken_shared.storage.gcs import GCSStorage

        endpoint = servers["gcs"].endpoint_url
        GCSStorage(bucket, endpoint_url=endpoint).create_bucket()
        q = f"endpoint_url={endpoint}"
        return {
            "SYMBOLS_STORAGE_URL": f"gs://{bucket}/v1?{q}",
            "SYMBOLS_TRY_STORAGE_URL": f"gs://{bucket}/try/v1?{q}",
            "SYMBOLS_CACHE_URL": "memory://",
        }
    raise SystemExit(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")


def service_env(workdir: Path, backend_env: dict, extra: dict) -> dict:
    return {
        "TECKEN_ENV_FILE": str(workdir / "none.env"),
        "SYMBOLS_DATABASE_URL": f"sqlite:///{workdir}/symbols.db",
        "SYMBOLS_PUBLIC_URL": "http://127.0.0.1",
        "SYMBOLS_CACHE_PREFIX": f"bench-{uuid.uuid4().hex}:",
        "SYMBOLS_METRICS_BACKEND": "none",
        "SYMBOLS_LOGGING_LEVEL": "WARNING",
        "SYMBOLS_LOCAL_DEV_ENV": "false",
        "SYMBOLS_VERSION_FILE": "",
        **backend_env,
        **extra,
    }


def upload_hits(workdir: Path, env: dict, keys: int) -> list[str]:
    """Store ``keys`` small .sym files through the service's own writer (so
    the database records them, as uploads do); their download paths."""
    from tecken_shared.config import build_config_manager
    from tecken_symbols.context import build_context
    from tecken_symbols.upload.store import FileResult

    ctx = build_context(build_config_manager({**env}, str(workdir / "none.env")))
    try:
        ctx.db.migrate()
        paths = []
        backend = ctx.storages.regular
        for i in range(keys):
            debug_id = f"{i:032X}1"
            key = f"bench{i}.pdb/{debug_id}/bench{i}.sym"
            body = f"MODULE windows x86_64 {debug_id} bench{i}.pdb\n".encode()
            backend.storage.put(key, body, content_type="text/plain")
            result = FileResult(key=key, stored_size=len(body), original_size=len(body))
            ctx.writer.record(None, backend.name, result, False)
            paths.append("/" + key)
        return paths
    finally:
        ctx.close()


def measure(
    sym_port: int, base_port: int, paths: list[str], clients: int, args: argparse.Namespace
) -> tuple[dict, dict]:
    """The baseline's and the service's figures, driven in alternating slices."""
    base, sym = load_from_second_process(
        [{"port": base_port, "paths": paths}, {"port": sym_port, "paths": paths}], clients, args
    )
    return base, sym


def one_backend(
    n: int, backend: str, args: argparse.Namespace, servers: dict, base_port: int
) -> dict[str, float]:
    """Ratios of one run on one backend, keyed by row name."""
    workdir = Path(tempfile.mkdtemp(prefix="tecken-bench-symbols-"))
    proc = None
    ratios = {}
    try:
        env = service_env(workdir, storage_env(backend, workdir, args, servers), args.env)
        hits = upload_hits(workdir, env, args.keys) if backend == "memory" else []
        sym_port = free_port()
        proc = start_gunicorn("tecken_symbols.wsgi:application", sym_port, env, workdir, args)
        wait_ready(sym_port, "/__lbheartbeat__")
        rows = [("miss", [f"/miss{{n}}.pdb/{'A' * 32}1/miss{{n}}.sym"])]
        if hits:
            for _ in range(args.workers * 3):  # warm every worker
                for path in hits:
                    get(sym_port, path)
            rows.append(("hit", hits))
        for what, paths in rows:
            for clients in args.clients:
                base, sym = measure(sym_port, base_port, paths, clients, args)
                row = f"{what:4s} {backend:10s} {clients} client{'s' if clients > 1 else ' '}"
                ratio = sym["rps"] / base["rps"] if base["rps"] else 0
                ratios[row] = ratio
                log(
                    f"run {n}: {row}: symbols {sym['rps']:7.1f} req/s "
                    f"(p50 {sym['p50_ms']:5.2f} p99 {sym['p99_ms']:6.2f} ms {sym['statuses']} "
                    f"errors {sym['errors']}) | bare Falcon {base['rps']:7.1f} req/s "
                    f"(p50 {base['p50_ms']:5.2f} p99 {base['p99_ms']:6.2f} ms) | ratio {ratio:.3f}"
                )
        return ratios
    finally:
        if proc is not None:
            stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)


def get(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path)
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp.status


def start_servers(backends: list[str]) -> dict:
    from tecken_shared.testing.servers import start_gcs_emulator, start_moto, use_moto_credentials

    servers: dict = {}
    if "s3" in backends:
        use_moto_credentials()
        servers["s3"] = start_moto()
    if "gcs" in backends:
        servers["gcs"] = start_gcs_emulator()
    return servers


def parse_env(values: list[str]) -> dict[str, str]:
    env = {}
    for value in values:
        name, sep, val = value.partition("=")
        if not sep:
            raise SystemExit(f"--env takes NAME=VALUE, not {value!r}")
        env[name] = val
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=20000, help="per server per row")
    parser.add_argument("--seconds", type=float, default=6, help="time limit per server per row")
    parser.add_argument("--clients", default="1,4", help="client counts, comma-separated")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (both servers)")
    parser.add_argument("--keys", type=int, default=100, help="found keys (hit row)")
    parser.add_argument(
        "--rounds", type=int, default=16, help="alternating slices per server and row"
    )
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--env", action="append", default=[], help="NAME=VALUE option for the service"
    )
    parser.add_argument("--load", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        spec = json.loads(sys.stdin.read())
        results = run_alternating(
            spec["targets"], args.requests, args.seconds, args.concurrency, args.rounds
        )
        print(json.dumps(results))
        return 0
    args.clients = [int(c) for c in args.clients.split(",") if c.strip()]
    args.env = parse_env(args.env)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    log(
        f"{args.runs} runs; per server and row: {args.requests} requests / {args.seconds}s max "
        f"in {args.rounds} alternating rounds, load from a second process, "
        f"{args.workers} gunicorn workers; backends {', '.join(backends)}; "
        f"clients {args.clients}; service options {args.env or 'defaults'}"
    )
    servers = start_servers(backends)
    workdir = Path(tempfile.mkdtemp(prefix="tecken-bench-baseline-"))
    base_port = free_port()
    base = start_gunicorn("baseline_app:application", base_port, {}, workdir, args)
    results: dict[str, list[float]] = {}
    try:
        wait_ready(base_port, "/a/B/c.sym")
        for n in range(1, args.runs + 1):
            for backend in backends:
                for row, ratio in one_backend(n, backend, args, servers, base_port).items():
                    results.setdefault(row, []).append(ratio)
    finally:
        stop(base)
        shutil.rmtree(workdir, ignore_errors=True)
        for server in servers.values():
            server.stop()
    log(f"ratio symbols/bare Falcon requests/s over {args.runs} runs (target: misses >= 0.90):")
    for row, ratios in results.items():
        log(
            f"  {row}: min {min(ratios):.3f}  median {statistics.median(ratios):.3f}  "
            f"max {max(ratios):.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
