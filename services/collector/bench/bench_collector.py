# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Collector benchmark.

Submits a realistic crash (about 50 annotations, some of them large, plus a
300 KB minidump) to the collector running under gunicorn with
``deploy/gunicorn-collector.conf.py`` on 127.0.0.1, from separate client
processes, plain and gzip'd, at 1 and 4 concurrent clients. Each measurement
is bounded by a crash count and a time limit. Next to it, in the same run:

* ``disk``: the baseline the target is measured against. The same files a
  crash produces (dump, dump names, raw crash) written to the same disk, each
  with write + fsync, same concurrency, no HTTP; measured right before and
  right after the collector, the mean of both.
* ``http``: a bare Falcon app under the same gunicorn settings that reads the
  body and stores nothing (the cost of HTTP alone).

Prints crashes/s, p50 and p99 latency and the collector's peak RSS per
worker, and the ratio collector/disk for each run; then, per row (1 and 4
clients, plain and gzip), min/median/max over the runs of the collector's
crashes/s, p50 and p99, of both baselines' crashes/s and of the ratios (the
machine may be shared: the ratios to the same-run baselines are what
compare). Usage::

    uv run python services/collector/bench/bench_collector.py [--runs 3] [--count 300] [--seconds 15]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import http.client
import json
import multiprocessing as mp
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tecken_shared.testing import FIXTURES_DIR

REPO = Path(__file__).resolve().parents[3]
CONF = REPO / "deploy" / "gunicorn-collector.conf.py"
FIXTURE = FIXTURES_DIR / "collector" / "minidump_300k.dmp"


# --- the crash ---------------------------------------------------------------------------


def realistic_crash() -> tuple[dict[str, str], bytes]:
    annotations = {
        "ProductName": "Firefox",
        "Version": "140.0a1",
        "ReleaseChannel": "nightly",
        "BuildID": "20991231000000",
        "ProductID": "{ec8030f7-c20a-464f-9b0e-13a3a9e97384}",
        "Vendor": "Mozilla",
        "CrashTime": "1763900000",
        "StartupTime": "1763890000",
        "InstallTime": "1760000000",
        "UptimeTS": "10000.123",
        "ProcessType": "content",
        "Throttleable": "1",
        "AvailablePageFile": "12345678901",
        "AvailablePhysicalMemory": "8123456789",
        "AvailableVirtualMemory": "140737488355328",
        "TotalPhysicalMemory": "17179869184",
        "TotalVirtualMemory": "140737488355328",
        "SystemMemoryUsePercentage": "63",
        "MozCrashReason": "MOZ_CRASH(benchmark)",
        "AsyncShutdownTimeout": json.dumps({"phase": "profile-before-change", "conditions": []}),
        "Notes": "FP(D00-L1000-W0000000f-T010) DWrite? DWrite+ D2D1.1+ " * 5,
        "URL": "",
        "useragent_locale": "en-US",
        "Add-ons": ",".join(f"addon{i}%40example.com:1.{i}" for i in range(40)),
        "ModuleSignatureInfo": json.dumps({"Mozilla": [f"lib{i}.dll" for i in range(60)]}),
        "TelemetryEnvironment": json.dumps(
            {
                "build": {"applicationName": "Firefox", "version": "140.0a1"},
                "settings": {f"pref{i}": "x" * 40 for i in range(200)},
                "system": {"os": {"name": "Windows_NT", "version": "10.0"}},
                "addons": {f"addon{i}": {"version": "1.0", "name": "n" * 30} for i in range(60)},
            }
        ),
    }
    i = 0
    while len(annotations) < 50:
        annotations[f"Annotation{i}"] = f"value {i} " * 8
        i += 1
    dump = FIXTURE.read_bytes() if FIXTURE.exists() else os.urandom(300 * 1024)
    return annotations, dump


def build_body(annotations: dict[str, str], dump: bytes) -> tuple[bytes, str]:
    sys.path.insert(0, str(REPO / "services" / "collector"))
    from tecken_collector.multipart import encode_multipart

    return encode_multipart(annotations, {"upload_file_minidump": dump})


# --- servers -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(app: str, env_extra: dict[str, str], port: int, cwd: Path) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(env_extra)
    env["COLLECTOR_GUNICORN_BIND"] = f"127.0.0.1:{port}"
    env["COLLECTOR_GUNICORN_ACCESSLOG"] = "/dev/null"
    env["COLLECTOR_GUNICORN_LOGLEVEL"] = "warning"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(CONF), "--no-control-socket", app],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        raise RuntimeError(f"gunicorn ({app}) did not start")
    # Wait until the workers answer (they import the app after the master binds).
    for _ in range(200):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/__lbheartbeat__")
            conn.getresponse().read()
            break
        except OSError:
            time.sleep(0.05)
    return proc


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def peak_rss_mb(proc: subprocess.Popen) -> float:
    """Largest VmHWM (peak RSS) among the gunicorn master and its workers."""
    pids = [proc.pid]
    try:
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        pids += [int(p) for p in children]
    except OSError:
        pass
    peak = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            pass
    return peak / 1024


# --- load --------------------------------------------------------------------------------


WARMUP = 10  # requests per client before timing starts (first-request costs, caches)


def client_worker(port, body, headers, count, deadline, out):
    latencies = []
    failures = accepted = 0
    began = None
    for n in range(WARMUP + count):
        if time.time() > deadline:
            break
        if n == WARMUP:
            began = time.time()
        start = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("POST", "/submit", body=body, headers=headers)
        resp = conn.getresponse()
        text = resp.read()
        conn.close()
        if resp.status != 200 or not text.startswith(b"CrashID="):
            failures += 1
            continue
        accepted += 1
        if n >= WARMUP:
            latencies.append(time.perf_counter() - start)
    out.put((latencies, failures, began, time.time(), accepted))


def disk_worker(directory, files, count, deadline, out):
    latencies = []
    began = None
    for n in range(WARMUP + count):
        if time.time() > deadline:
            break
        if n == WARMUP:
            began = time.time()
        start = time.perf_counter()
        for index, data in enumerate(files):
            path = os.path.join(directory, f"{os.getpid()}-{n}-{index}")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
        if n >= WARMUP:
            latencies.append(time.perf_counter() - start)
    out.put((latencies, 0, began, time.time(), len(latencies)))


def run_clients(target, args_for, concurrency, count, seconds):
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    deadline = time.time() + seconds
    per_client = max(1, count // concurrency)
    procs = [
        ctx.Process(target=target, args=(*args_for(i), per_client, deadline, out))
        for i in range(concurrency)
    ]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    # The timed window: from the first client's end of warm-up to the last finish.
    starts = [r[2] for r in results if r[2] is not None]
    elapsed = (max(r[3] for r in results) - min(starts)) if starts else 0.0
    for p in procs:
        p.join()
    latencies = sorted(x for r in results for x in r[0])
    failures = sum(r[1] for r in results)
    return {
        "accepted": sum(r[4] for r in results),
        "n": len(latencies),
        "failures": failures,
        "rate": len(latencies) / elapsed if elapsed else 0.0,
        "p50": 1000 * latencies[len(latencies) // 2] if latencies else float("nan"),
        "p99": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        if latencies
        else float("nan"),
    }


def mean_of(a: dict, b: dict) -> dict:
    """Two measurements of the same thing as one (means; counts added)."""
    merged = {key: (a[key] + b[key]) / 2 for key in ("rate", "p50", "p99")}
    merged.update({key: a[key] + b[key] for key in ("accepted", "n", "failures")})
    return merged


def measure(
    work: Path, body: bytes, ctype: str, files: list[bytes], count: int, seconds: float
) -> list[dict]:
    rows = []
    gz = gzip.compress(body)
    crashes = work / "crashes"
    for concurrency in (1, 4):
        for mode, payload, headers in (
            ("plain", body, {"Content-Type": ctype}),
            ("gzip", gz, {"Content-Type": ctype, "Content-Encoding": "gzip"}),
        ):
            # The baseline right before and right after the collector (their
            # mean), so both see the same machine even as its load drifts.
            disk_dir = work / "disk"

            def anchor(d: Path = disk_dir, c: int = concurrency) -> dict:
                d.mkdir()
                try:
                    return run_clients(disk_worker, lambda i: (str(d), files), c, count, seconds)
                finally:
                    shutil.rmtree(d)

            disk_before = anchor()
            # HTTP alone: the bare Falcon app under the same gunicorn settings.
            port = free_port()
            bare = start_gunicorn("bare_app:application", {}, port, Path(__file__).parent)
            try:
                http_only = run_clients(
                    client_worker,
                    lambda i, p=port, b=payload, h=headers: (p, b, h),
                    concurrency,
                    count,
                    seconds,
                )
            finally:
                stop(bare)
            crashes.mkdir()
            port = free_port()
            env = {
                "COLLECTOR_CRASHSTORAGE_ROOT": str(crashes),
                "COLLECTOR_THROTTLER_RULES": "accept_all",
                "COLLECTOR_METRICS_BACKEND": "none",
                "COLLECTOR_LOGGING_LEVEL": "WARNING",
                "COLLECTOR_LOG_FORMAT": "text",
                "COLLECTOR_SPOOL_DIR": str(work),
            }
            server = start_gunicorn("tecken_collector.wsgi:application", env, port, REPO)
            try:
                collector = run_clients(
                    client_worker,
                    lambda i, p=port, b=payload, h=headers: (p, b, h),
                    concurrency,
                    count,
                    seconds,
                )
                rss = peak_rss_mb(server)
            finally:
                stop(server)
            stored = sum(1 for _ in crashes.glob("*/raw_crash/*.json"))
            assert stored == collector["accepted"], (stored, collector["accepted"])
            shutil.rmtree(crashes)
            disk = mean_of(disk_before, anchor())
            rows.append(
                {
                    "clients": concurrency,
                    "mode": mode,
                    "collector": collector,
                    "disk": disk,
                    "http": http_only,
                    "rss_mb": rss,
                    "ratio": collector["rate"] / disk["rate"] if disk["rate"] else float("nan"),
                    "http_ratio": collector["rate"] / http_only["rate"]
                    if http_only["rate"]
                    else float("nan"),
                }
            )
    return rows


def fmt(m: dict) -> str:
    return f"{m['rate']:7.1f}/s p50 {m['p50']:6.1f}ms p99 {m['p99']:6.1f}ms (n={m['n']})"


def spread(values: list[float], precision: int) -> str:
    """min / median / max of ``values``."""
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{low:.{precision}f} / {mid:.{precision}f} / {high:.{precision}f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--count", type=int, default=300, help="timed crashes per measurement (after warm-up)"
    )
    parser.add_argument("--seconds", type=float, default=15, help="time limit per measurement")
    parser.add_argument(
        "--dir", default="/var/tmp", help="directory on the disk to measure (default /var/tmp)"
    )
    args = parser.parse_args()

    annotations, dump = realistic_crash()
    body, ctype = build_body(annotations, dump)
    raw = json.dumps(
        dict(annotations, metadata={"dump_checksums": {"x": hashlib.sha256(dump).hexdigest()}}),
        sort_keys=True,
    ).encode()
    files = [dump, b'["upload_file_minidump"]', raw]
    print(
        f"crash: {len(annotations)} annotations, dump {len(dump)} B, body {len(body)} B "
        f"({len(gzip.compress(body))} B gzip'd); gunicorn {CONF.name} "
        f"(workers={os.environ.get('COLLECTOR_GUNICORN_WORKERS', '2')}); disk {args.dir}"
    )
    runs: dict[tuple[int, str], list[dict]] = {}
    for run in range(1, args.runs + 1):
        work = Path(tempfile.mkdtemp(prefix="tecken-collector-bench-", dir=args.dir))
        try:
            rows = measure(work, body, ctype, files, args.count, args.seconds)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(f"\nrun {run}")
        for row in rows:
            runs.setdefault((row["clients"], row["mode"]), []).append(row)
            print(f"  {row['clients']} client(s) {row['mode']:5}")
            print(f"    collector {fmt(row['collector'])} peak RSS {row['rss_mb']:.0f} MB")
            print(f"    disk+fsync {fmt(row['disk'])}")
            print(f"    bare http  {fmt(row['http'])}")
            print(
                f"    ratio collector/disk {row['ratio']:.2f}, "
                f"collector/bare http {row['http_ratio']:.2f}"
            )
    print(f"\nsummary over {args.runs} run(s): min / median / max")
    for (clients, mode), rows in runs.items():
        print(f"  {clients} client(s) {mode}")
        for label, values, unit in (
            ("collector crashes/s", [r["collector"]["rate"] for r in rows], ""),
            ("collector p50", [r["collector"]["p50"] for r in rows], " ms"),
            ("collector p99", [r["collector"]["p99"] for r in rows], " ms"),
            ("disk anchor crashes/s", [r["disk"]["rate"] for r in rows], ""),
            ("bare http crashes/s", [r["http"]["rate"] for r in rows], ""),
            ("ratio collector/disk", [r["ratio"] for r in rows], ""),
            ("ratio collector/bare http", [r["http_ratio"] for r in rows], ""),
        ):
            precision = 2 if label.startswith("ratio") else 1
            print(f"    {label:26} {spread(values, precision)}{unit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
