# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""v2 upload benchmark: the same files uploaded through the service
(``tecken-put``, the baseline) and straight to the storage
(``s3-presigned-put`` plus the completion call that verifies and records
them), against two symbols services under gunicorn (one worker each, S3
storage on a moto server on 127.0.0.1). The client and moto run in this
process, the services in their own.

    uv run --locked python services/symbols/bench/bench_v2.py [--files 8 --size-mb 4]

Each of ``--runs`` runs uploads ``--reps`` new sets of ``--files`` files
(``--kind sym``: .sym gzipped by the client, as v2 clients do; ``pd_``:
uncompressed binaries) with each protocol, and
prints per protocol the wall time per upload (declare, PUTs, completion)
and the CPU seconds the service worker spent, then the direct/baseline
ratios with min/median/max over the runs. Bounded: a fixed number of
requests, each with a timeout."""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_download import free_port, start_gunicorn, stop, wait_ready  # noqa: E402
from bench_upload import make_token, worker_pids  # noqa: E402

from tecken_shared.testing.servers import start_moto, use_moto_credentials  # noqa: E402

DEBUG_ID = "8A07C88A3DA44E20A3490D88791183060"


def make_files(count: int, size_mb: float, tag: str, kind: str) -> list[tuple[str, bytes, bytes]]:
    """``count`` files of about ``size_mb`` MB: (key, bytes, body as sent):
    .sym text gzipped by the client, or .pd_ bytes sent as they are."""
    out = []
    if kind == "pd_":
        for i in range(count):
            data = os.urandom(int(size_mb * 1e6))
            out.append((f"bench{i}.pdb/{DEBUG_ID}/bench{i}.pd_", data, data))
        return out
    line_count = int(size_mb * 1e6 / 40)
    for i in range(count):
        name = f"bench{i}"
        lines = [f"MODULE Linux x86_64 {DEBUG_ID} {name}", f"INFO CODE_ID {tag}{i:04X}"]
        lines += [f"FUNC {n:x} 10 0 function_{tag}_{n}" for n in range(line_count)]
        data = ("\n".join(lines) + "\n").encode()
        out.append((f"{name}/{DEBUG_ID}/{name}.sym", data, gzip.compress(data, 6)))
    return out


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` so far."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def upload(url: str, token: str, files: list, timeout: float) -> float:
    """One v2 upload of ``files`` by a client as the protocol says; seconds."""
    h = {"Auth-Token": token}
    start = time.perf_counter()
    declared = [
        {"key": k, "size": len(d), "md5_hash": hashlib.md5(d).hexdigest()} for k, d, _ in files
    ]
    resp = requests.post(f"{url}/upload/v2/", json={"files": declared}, headers=h, timeout=timeout)
    resp.raise_for_status()
    body = resp.json()
    direct = body["upload_protocol"] != "tecken-put"

    def send(pair: tuple) -> None:
        (_, _, gz), item = pair
        action = item["action"]
        assert action["type"] == "upload", action
        headers = action.get("headers", {}) if direct else h
        requests.put(action["url"], gz, headers=headers, timeout=timeout).raise_for_status()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(send, zip(files, body["files"], strict=True)))
    if direct:
        done = requests.post(f"{url}/upload/v2/complete/{body['id']}", headers=h, timeout=timeout)
        done.raise_for_status()
        assert done.json()["upload_completed"], done.json()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--size-mb", type=float, default=4.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument(
        "--kind",
        choices=("sym", "pd_"),
        default="sym",
        help="sym: gzipped .sym files (read back and checked on completion); pd_: "
        "uncompressed binaries (checked from the storage's size and md5)",
    )
    args = parser.parse_args()

    use_moto_credentials()
    moto = start_moto()
    bucket = "tecken-bench-v2"
    boto3.client("s3", endpoint_url=moto.endpoint_url).create_bucket(Bucket=bucket)
    workdir = Path(tempfile.mkdtemp(prefix="tecken-bench-v2-"))
    servers = {}
    try:
        for protocol in ("tecken-put", "auto"):
            db_url = f"sqlite:///{workdir}/{protocol}.db"
            token = make_token(db_url)
            q = f"endpoint_url={moto.endpoint_url}&region=us-east-1"
            port = free_port()
            env = {
                "SYMBOLS_PUBLIC_URL": f"http://127.0.0.1:{port}",
                "TECKEN_ENV_FILE": str(workdir / "none.env"),
                "SYMBOLS_DATABASE_URL": db_url,
                "SYMBOLS_STORAGE_URL": f"s3://{bucket}/{protocol}/v1?{q}",
                "SYMBOLS_TRY_STORAGE_URL": f"s3://{bucket}/{protocol}/try/v1?{q}",
                "SYMBOLS_UPLOAD_V2_PROTOCOL": protocol,
                "SYMBOLS_UPLOAD_TEMPDIR": str(workdir / "tmp"),
                "SYMBOLS_METRICS_BACKEND": "none",
                "SYMBOLS_LOGGING_LEVEL": "WARNING",
            }
            proc = start_gunicorn("tecken_symbols.wsgi:application", port, env, workdir, 1)
            wait_ready(port, "/__lbheartbeat__")
            servers[protocol] = (f"http://127.0.0.1:{port}", token, proc)
        mb = args.files * args.size_mb
        print(
            f"{args.files} .{args.kind} of {args.size_mb} MB per upload ({mb:.0f} MB), S3 on moto"
        )
        wall_ratios, cpu_ratios = [], []
        for run in range(1, args.runs + 1):
            result = {}
            for protocol, (url, token, proc) in servers.items():
                pids = worker_pids(proc.pid)
                walls, cpus = [], []
                for _ in range(args.reps):
                    files = make_files(
                        args.files, args.size_mb, uuid.uuid4().hex[:8].upper(), args.kind
                    )
                    before = cpu_seconds(pids)
                    walls.append(upload(url, token, files, args.timeout))
                    cpus.append(cpu_seconds(pids) - before)
                result[protocol] = (statistics.median(walls), statistics.median(cpus))
            (b_wall, b_cpu), (d_wall, d_cpu) = result["tecken-put"], result["auto"]
            wall_ratios.append(d_wall / b_wall)
            cpu_ratios.append(d_cpu / b_cpu if b_cpu else float("nan"))
            print(
                f"run {run}: tecken-put {b_wall:.2f}s wall, {b_cpu:.2f}s service CPU | "
                f"s3-presigned-put + complete {d_wall:.2f}s wall, {d_cpu:.2f}s service CPU | "
                f"ratios wall {wall_ratios[-1]:.2f} CPU {cpu_ratios[-1]:.2f}"
            )
        for name, ratios in (("wall", wall_ratios), ("service CPU", cpu_ratios)):
            print(
                f"direct/tecken-put {name} ratio over {len(ratios)} runs: min {min(ratios):.2f} "
                f"median {statistics.median(ratios):.2f} max {max(ratios):.2f}"
            )
    finally:
        for _, _, proc in servers.values():
            stop(proc)
        moto.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
