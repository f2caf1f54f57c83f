# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Upload benchmark: zips of synthetic .sym files POSTed to /upload/ of the
symbols service under gunicorn (one worker, a separate process, on
127.0.0.1), next to a same-run baseline: the same unzip + md5 + gzip +
storage writes done directly through the storage library and the service's
own gzip writer (:func:`tecken_symbols.upload.store.gzip_writer`), no HTTP,
with as many threads as the service stores members with (``--workers``,
SYMBOLS_UPLOAD_FILE_UPLOAD_MAX_WORKERS). The ratio therefore measures what
HTTP, the content check, dedupe lookups and records cost.

    uv run --locked python services/symbols/bench/bench_upload.py [--sizes 20x9.5,1x100,1x500]

For each archive shape of ``--sizes`` (FILESxMB: files of MB each) two
services start, one with the content check (SYMBOLS_UPLOAD_VALIDATE_CONTENT)
on and one with it off; each of ``--runs`` runs uploads the archive to both
and does one baseline pass, in alternating order, each into emptied storage
(nothing is skipped as already stored), after one untimed warm-up upload. Rows: MB/s (uncompressed member bytes per second) of each,
the ratio of the service (check on) to the baseline, what the check costs
(1 - on/off) and each worker's peak RSS for that shape; then min/median/max
over the runs. Bounded: a fixed number of requests, each with a timeout."""

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
    ZipFile handle per thread), with the service's gzip writer."""
    from tecken_symbols.upload.store import gzip_writer

    storage = storage_from_url(storage_url)
    local = threading.local()
    handles: list[zipfile.ZipFile] = []

    def store(info: zipfile.ZipInfo) -> None:
        zf = getattr(local, "zf", None)
        if zf is None:
            zf = local.zf = zipfile.ZipFile(archive)
            handles.append(zf)
        with zf.open(info) as member, tempfile.SpooledTemporaryFile(8_000_000) as spool:
            digest = hashlib.md5()
            gz = gzip_writer(spool, level, info.file_size, workers)  # type: ignore[arg-type]
            try:
                while data := member.read(1024 * 1024):
                    digest.update(data)
                    gz.write(data)
            finally:
                gz.close()
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


def start_service(run_dir: Path, name: str, env: dict, args: argparse.Namespace) -> tuple:
    """A symbols service (one gunicorn worker) storing under run_dir/name."""
    port = free_port()
    store = run_dir / f"{name}-storage"
    full = {
        **env,
        "SYMBOLS_STORAGE_URL": f"file://{store}/v1",
        "SYMBOLS_TRY_STORAGE_URL": f"file://{store}/try/v1",
        "SYMBOLS_UPLOAD_TEMPDIR": str(run_dir / f"{name}-tmp"),
        "SYMBOLS_GUNICORN_BIND": f"127.0.0.1:{port}",
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
        env=full,
        cwd=str(ROOT),
    )
    wait_for_port("127.0.0.1", port, 60)
    return server, f"http://127.0.0.1:{port}", store


def stop(server: subprocess.Popen) -> None:
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(15)
    except subprocess.TimeoutExpired:
        server.kill()


def summary(values: list[float]) -> str:
    return f"min {min(values):.2f} median {statistics.median(values):.2f} max {max(values):.2f}"


def bench_shape(
    files: int, size_mb: float, args: argparse.Namespace, workdir: Path, workers: int
) -> None:
    archive, total = make_zip(workdir, files, size_mb)
    mb = total / 1e6
    print(
        f"== {files} x {size_mb} MB .sym: {archive.stat().st_size / 1e6:.1f} MB zip, "
        f"{mb:.1f} MB uncompressed, {workers} storing threads in service and baseline",
        flush=True,
    )
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=workdir))
    db_url = f"sqlite:///{run_dir}/symbols.db"
    token = make_token(db_url)
    env = {
        **os.environ,
        "TECKEN_ENV_FILE": str(run_dir / "none.env"),
        "SYMBOLS_DATABASE_URL": db_url,
        "SYMBOLS_UPLOAD_GZIP_LEVEL": str(args.gzip_level),
        "SYMBOLS_UPLOAD_FILE_UPLOAD_MAX_WORKERS": str(workers),
        "SYMBOLS_METRICS_BACKEND": "none",
        "SYMBOLS_LOGGING_LEVEL": "WARNING",
        "SYMBOLS_GUNICORN_WORKERS": "1",
        "SYMBOLS_GUNICORN_ACCESSLOG": "/dev/null",
        "SYMBOLS_GUNICORN_LOGLEVEL": "warning",
        "SYMBOLS_GUNICORN_TIMEOUT": str(int(args.timeout)),
    }
    servers = {}
    try:
        for name, check in (("on", "true"), ("off", "false")):
            servers[name] = start_service(
                run_dir, name, {**env, "SYMBOLS_UPLOAD_VALIDATE_CONTENT": check}, args
            )
        baseline_store = run_dir / "baseline-storage"
        for _, url, _ in servers.values():  # warm-up (imports, first connections): not timed
            upload_once(url, token, archive, args.timeout)
        ratios, costs = [], []
        for run in range(1, args.runs + 1):
            times = {}
            order = ["on", "off", "base"]
            for name in order if run % 2 else reversed(order):  # alternate the order
                if name == "base":
                    shutil.rmtree(baseline_store, ignore_errors=True)
                    times[name] = baseline_pass(
                        archive, f"file://{baseline_store}/v1", args.gzip_level, workers
                    )
                    continue
                _, url, store = servers[name]
                shutil.rmtree(store, ignore_errors=True)
                times[name] = upload_once(url, token, archive, args.timeout)
            rate = {k: mb / v for k, v in times.items()}
            ratio = rate["on"] / rate["base"]
            cost = 1 - rate["on"] / rate["off"]
            ratios.append(ratio)
            costs.append(cost)
            rss = {
                name: max((peak_rss_mb(p) for p in worker_pids(server.pid)), default=0.0)
                for name, (server, _, _) in servers.items()
            }
            print(
                f"run {run}: service {rate['on']:6.1f} MB/s (check off {rate['off']:6.1f}) | "
                f"baseline {rate['base']:6.1f} MB/s | ratio {ratio:.2f} | check costs "
                f"{cost * 100:5.1f}% | worker peak RSS {rss['on']:.0f} / {rss['off']:.0f} MB",
                flush=True,
            )
        print(
            f"{files} x {size_mb} MB: service/baseline {summary(ratios)}; "
            f"check cost {summary([c * 100 for c in costs])} %",
            flush=True,
        )
    finally:
        for server, _, _ in servers.values():
            stop(server)
        shutil.rmtree(run_dir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default="20x9.5,1x100,1x500",
        help="archive shapes, comma-separated FILESxMB (files of MB each)",
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="threads storing members, in the service (SYMBOLS_UPLOAD_FILE_UPLOAD_MAX_WORKERS) "
        "and in the baseline alike; 0 means the CPU count (the service's default)",
    )
    parser.add_argument("--gzip-level", type=int, default=6)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument(
        "--workdir", default=os.path.join(tempfile.gettempdir(), "tecken-bench-upload")
    )
    args = parser.parse_args()
    workers = args.workers if args.workers > 0 else (os.cpu_count() or 2)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    for shape in args.sizes.split(","):
        files, _, size = shape.strip().partition("x")
        bench_shape(int(files), float(size), args, workdir, workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
