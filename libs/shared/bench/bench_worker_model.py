# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""What the worker model costs: the same service twice under gunicorn with its
shipped conf, once with the conf's worker class (the buffering worker) and
once with another (``sync`` by default), driven in alternating rounds from
separate client processes, so that load from other processes on the machine
falls on both alike. Prints requests/s of each per round and the ratio
shipped/other, then min/median/max of the ratio over the rounds.

* ``download``: symbols GETs of stored files (302, warm cache);
* ``collector``: the collector benchmark's realistic crash (300 KB dump,
  fsync'd before the answer).

::

    uv run --locked python libs/shared/bench/bench_worker_model.py download collector [--rounds 8]
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import multiprocessing as mp
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(service: str, env: dict[str, str], worker_class: str, cwd: Path) -> tuple:
    port = free_port()
    prefix = service.upper()
    full = {
        **os.environ,
        **env,
        f"{prefix}_GUNICORN_BIND": f"127.0.0.1:{port}",
        f"{prefix}_GUNICORN_WORKERS": "2",
        f"{prefix}_GUNICORN_ACCESSLOG": "",
        f"{prefix}_GUNICORN_LOGLEVEL": "warning",
    }
    if worker_class:
        full[f"{prefix}_GUNICORN_WORKER_CLASS"] = worker_class
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(REPO / "deploy" / f"gunicorn-{service}.conf.py"),
            "--no-control-socket",
            f"tecken_{service}.wsgi:application",
        ],
        env=full,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/__lbheartbeat__")
            conn.getresponse().read()
            return proc, port
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{service} ({worker_class or 'shipped'}) did not start")


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def client(port, method, paths, body, headers, expect, seconds, out) -> None:
    done = failures = 0
    deadline = time.monotonic() + seconds
    i = os.getpid()
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request(method, paths[i % len(paths)], body=body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        conn.close()
        i += 1
        if resp.status == expect:
            done += 1
        else:
            failures += 1
    out.put((done, failures))


def load(port: int, workload: dict, seconds: float, concurrency: int) -> float:
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    args = (
        port,
        workload["method"],
        workload["paths"],
        workload["body"],
        workload["headers"],
        workload["expect"],
        seconds,
        out,
    )
    procs = [ctx.Process(target=client, args=args) for _ in range(concurrency)]
    started = time.monotonic()
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    elapsed = time.monotonic() - started
    for p in procs:
        p.join()
    if sum(r[1] for r in results):
        raise RuntimeError(f"{sum(r[1] for r in results)} unexpected answers")
    return sum(r[0] for r in results) / elapsed


def download_setup(work: Path) -> tuple[dict, dict]:
    bench = _load(REPO / "services/symbols/bench/bench_download.py", "bench_download")
    env, paths = bench.prepare(work, 100, "memory://")
    subprocess.run(
        [sys.executable, "-m", "tecken_symbols.cli", "migrate"],
        env={**os.environ, **env},
        cwd=work,
        check=True,
        capture_output=True,
    )
    found = [p for p in paths if not p.startswith("/missing")]
    return env, {"method": "GET", "paths": found, "body": None, "headers": {}, "expect": 302}


def collector_setup(work: Path) -> tuple[dict, dict]:
    bench = _load(REPO / "services/collector/bench/bench_collector.py", "bench_collector")
    annotations, dump = bench.realistic_crash()
    body, ctype = bench.build_body(annotations, dump)
    (work / "crashes").mkdir()
    env = {
        "COLLECTOR_CRASHSTORAGE_ROOT": str(work / "crashes"),
        "COLLECTOR_THROTTLER_RULES": "accept_all",
        "COLLECTOR_METRICS_BACKEND": "none",
        "COLLECTOR_LOGGING_LEVEL": "WARNING",
        "COLLECTOR_LOG_FORMAT": "text",
    }
    workload = {
        "method": "POST",
        "paths": ["/submit"],
        "body": body,
        "headers": {"Content-Type": ctype},
        "expect": 200,
    }
    return env, workload


SETUPS = {"download": ("symbols", download_setup), "collector": ("collector", collector_setup)}


def compare(name: str, other: str, rounds: int, seconds: float, concurrency: int) -> list[float]:
    service, setup = SETUPS[name]
    work = Path(tempfile.mkdtemp(prefix=f"tecken-bench-worker-{name}-"))
    procs = []
    try:
        env, workload = setup(work)
        shipped, shipped_port = start(service, env, "", work)
        procs.append(shipped)
        alt, alt_port = start(service, env, other, work)
        procs.append(alt)
        for port in (shipped_port, alt_port):  # warm-up
            load(port, workload, 1.0, concurrency)
        ratios = []
        for i in range(rounds):
            order = [("shipped", shipped_port), (other, alt_port)]
            rates = {}
            for label, port in order if i % 2 == 0 else reversed(order):
                rates[label] = load(port, workload, seconds, concurrency)
            ratio = rates["shipped"] / rates[other]
            ratios.append(ratio)
            print(
                f"{name} round {i + 1}: shipped {rates['shipped']:7.1f}/s  {other} "
                f"{rates[other]:7.1f}/s  ratio {ratio:.3f}",
                flush=True,
            )
        return ratios
    finally:
        for proc in procs:
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workloads", nargs="*", default=list(SETUPS), choices=list(SETUPS))
    parser.add_argument("--other", default="sync", help="the worker class to compare with")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=3.0, help="per server per round")
    parser.add_argument("--concurrency", type=int, default=4, help="client processes")
    args = parser.parse_args()
    for name in args.workloads:
        ratios = compare(name, args.other, args.rounds, args.seconds, args.concurrency)
        print(
            f"{name}: ratio shipped/{args.other} requests/s: min {min(ratios):.3f}  "
            f"median {statistics.median(ratios):.3f}  max {max(ratios):.3f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
