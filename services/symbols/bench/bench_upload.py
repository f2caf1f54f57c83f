# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Upload benchmark: a zip of synthetic .sym files POSTed to /upload/ of the
symbols service under gunicorn (a separate process, on 127.0.0.1), next to a
same-run baseline: the same unzip + gzip + md5 + storage writes done directly
through the storage library, no HTTP, with the same number of worker threads
as the service stores members with (``--workers``, passed to the service as
SYMBOLS_UPLOAD_FILE_UPLOAD_MAX_WORKERS). The ratio therefore measures what HTTP,
validation, dedupe lookups and records cost, not the parallelism.

    uv run --locked python services/symbols/bench/bench_upload.py [--files 10 --size-mb 8]

Each of ``--runs`` runs does ``--reps`` uploads and ``--reps`` baseline passes,
each into emptied storage (so nothing is skipped as already stored). It prints
MB/s (uncompressed member bytes per second), p50/p99 latency per upload, the
service worker's peak RSS, and the service/baseline throughput ratio with
min/median/max over the runs. Bounded: a fixed number of requests, each with
a timeout."""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from tecken_shared.storage import storage_from_url
from tecken_shared.testing import SYNTHETIC_SYM_TOOL
from tecken_shared.testing.servers import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[3]
TOOL = Path(os.environ.get("TECKEN_SYNTHETIC_SYM", "") or SYNTHETIC_SYM_TOOL)


def make_zip(workdir: Path, files: int, size_mb: float) -> tuple[Path, int]:
    """A zip of ``files`` synthetic .sym files (cached between invocations)."""
    archive = workdir / f"symbols-{files}x{size_mb}.zip"
    if archive.exists():
        with zipfile.ZipFile(archive) as zf:
            return archive, sum(i.file_size for i in zf.infolist())
    src = workdir / "src"
    shutil.rmtree(src, ignore_errors=True)
    for i in range(files):
        subprocess.run(
            [
                sys.executable,
                str(TOOL),
                "--size-mb",
                str(size_mb),
                "--seed",
                str(i + 1),
                "--debug-filename",
                f"bench{i}.pdb",
                "--out",
                str(src),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    tmp = archive.with_suffix(".tmp")
    total = 0
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(src.rglob("*.sym")):
            zf.write(path, path.relative_to(src).as_posix())
            total += path.stat().st_size
    tmp.rename(archive)
    shutil.rmtree(src)
    return archive, total


def baseline_pass(archive: Path, storage_url: str, level: int, workers: int) -> float:
    """Unzip + md5 + gzip + put of every member on ``workers`` threads (one
    ZipFile handle per thread), as the service stores them."""
    storage = storage_from_url(storage_url)
    local = threading.local()
    handles: list[zipfile.ZipFile] = []

    def store(info: zipfile.ZipInfo) -> None:
        zf = getattr(local, "zf", None)
        if zf is None:
            zf = local.zf = zipfile.ZipFile(archive)
            handles.append(zf)
        with zf.open(info) as member, tempfile.SpooledTemporaryFile(8_000_000) as spool:
            comp = zlib.compressobj(level, zlib.DEFLATED, 31)
            digest = hashlib.md5()
            while data := member.read(1024 * 1024):
                digest.update(data)
                spool.write(comp.compress(data))
            spool.write(comp.flush())
            spool.seek(0)
            storage.put(
                info.filename,
                spool,  # type: ignore[arg-type]
                content_type="text/plain",
                content_encoding="gzip",
                cache_control="no-transform",
                metadata={
                    "original_size": str(info.file_size),
                    "original_md5_hash": digest.hexdigest(),
                },
            )

    with zipfile.ZipFile(archive) as zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
    start = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="baseline") as pool:
            list(pool.map(store, infos))
    finally:
        for zf in handles:
            zf.close()
    return time.perf_counter() - start


def upload_once(url: str, token: str, archive: Path, timeout: float) -> float:
    from tecken_symbols.upload_client import MultipartBody

    with archive.open("rb") as f:
        body = MultipartBody(f, archive.stat().st_size, archive.name, {})
        start = time.perf_counter()
        resp = requests.post(
            f"{url}/upload/",
            data=body,
            headers={
                "Auth-Token": token,
                "Content-Type": body.content_type,
                "Content-Length": str(len(body)),
            },
            timeout=timeout,
        )
        elapsed = time.perf_counter() - start
    if resp.status_code != 201:
        raise SystemExit(f"upload failed: {resp.status_code} {resp.text[:500]}")
    if resp.json()["upload"]["skipped_keys"]:
        raise SystemExit("files were skipped: storage was not emptied")
    return elapsed


def worker_pids(master: int) -> list[int]:
    try:
        out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout
    except FileNotFoundError:
        return []
    return [int(p) for p in out.split()]


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def make_token(db_url: str) -> str:
    from tecken_symbols import accounts, tokens
    from tecken_symbols.db import Database

    db = Database(db_url)
    db.migrate()
    accounts.create_user(db, "bench@example.com")
    accounts.grant_permission(db, "bench@example.com", "upload_symbols")
    key, _ = tokens.create_token(db, "bench@example.com", ["upload_symbols"])
    db.close()
    return key


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--size-mb", type=float, default=8.0, help="size of each .sym")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--reps", type=int, default=3, help="uploads (and baseline passes) per run")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="threads storing members, in the service (SYMBOLS_UPLOAD_FILE_UPLOAD_MAX_WORKERS) "
        "and in the baseline alike; 0 means the CPU count (the service's default)",
    )
    parser.add_argument("--gzip-level", type=int, default=6)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument(
        "--workdir", default=os.path.join(tempfile.gettempdir(), "tecken-bench-upload")
    )
    args = parser.parse_args()

    workers = args.workers if args.workers > 0 else (os.cpu_count() or 2)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    archive, total = make_zip(workdir, args.files, args.size_mb)
    mb = total / 1e6
    print(
        f"archive: {archive.stat().st_size / 1e6:.1f} MB zip, {args.files} .sym, {mb:.1f} MB uncompressed, "
        f"{workers} storing threads in service and baseline"
    )

    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=workdir))
    service_store = run_dir / "service-storage"
    baseline_store = run_dir / "baseline-storage"
    db_url = f"sqlite:///{run_dir}/symbols.db"
    token = make_token(db_url)
    port = free_port()
    env = {
        **os.environ,
        "TECKEN_ENV_FILE": str(run_dir / "none.env"),
        "SYMBOLS_DATABASE_URL": db_url,
        "SYMBOLS_STORAGE_URL": f"file://{service_store}/v1",
        "SYMBOLS_TRY_STORAGE_URL": f"file://{service_store}/try/v1",
        "SYMBOLS_UPLOAD_TEMPDIR": str(run_dir / "tmp"),
        "SYMBOLS_UPLOAD_GZIP_LEVEL": str(args.gzip_level),
        "SYMBOLS_UPLOAD_FILE_UPLOAD_MAX_WORKERS": str(workers),
        "SYMBOLS_METRICS_BACKEND": "none",
        "SYMBOLS_LOGGING_LEVEL": "WARNING",
        "SYMBOLS_GUNICORN_BIND": f"127.0.0.1:{port}",
        "SYMBOLS_GUNICORN_WORKERS": "1",
        "SYMBOLS_GUNICORN_ACCESSLOG": "/dev/null",
        "SYMBOLS_GUNICORN_LOGLEVEL": "warning",
        "SYMBOLS_GUNICORN_TIMEOUT": str(int(args.timeout)),
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(ROOT / "deploy" / "gunicorn-symbols.conf.py"),
            "tecken_symbols.wsgi:application",
        ],
        env=env,
        cwd=str(ROOT),
    )
    ratios = []
    try:
        wait_for_port("127.0.0.1", port, 30)
        url = f"http://127.0.0.1:{port}"
        for run in range(1, args.runs + 1):
            service_times, baseline_times = [], []
            for _ in range(args.reps):
                shutil.rmtree(service_store, ignore_errors=True)
                service_times.append(upload_once(url, token, archive, args.timeout))
                shutil.rmtree(baseline_store, ignore_errors=True)
                baseline_times.append(
                    baseline_pass(archive, f"file://{baseline_store}/v1", args.gzip_level, workers)
                )
            s_rate = mb * len(service_times) / sum(service_times)
            b_rate = mb * len(baseline_times) / sum(baseline_times)
            ratio = s_rate / b_rate
            ratios.append(ratio)
            rss = max((peak_rss_mb(p) for p in worker_pids(server.pid)), default=0.0)
            print(
                f"run {run}: service {s_rate:6.1f} MB/s (p50 {pct(service_times, 0.5):.2f}s "
                f"p99 {pct(service_times, 0.99):.2f}s, worker peak RSS {rss:.0f} MB) | "
                f"baseline {b_rate:6.1f} MB/s (p50 {pct(baseline_times, 0.5):.2f}s "
                f"p99 {pct(baseline_times, 0.99):.2f}s) | ratio {ratio:.2f}"
            )
        print(
            f"service/baseline throughput ratio over {len(ratios)} runs: "
            f"min {min(ratios):.2f} median {statistics.median(ratios):.2f} max {max(ratios):.2f}"
        )
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(run_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
