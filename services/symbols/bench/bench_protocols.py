# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Side-by-side benchmark of the symsrv and debuginfod routes against the
Tecken download route, found (302) and missing (404), on one symbols server
under gunicorn (warm caches), with bench_download's load generator and
servers.

Each run prepares ``--keys`` stored ``.pd_`` objects whose identity rows
(a symsrv key and a debuginfod build id each) are recorded with
:func:`tecken_symbols.identities.record`, starts the symbols service and the
bare-Falcon baseline, warms every worker, then drives six path sets (Tecken
302/404, symsrv 302/404, debuginfod 302/404) and the baseline from a second
process in alternating rounds. It prints requests/s per set, and over the runs
min/median/max of requests/s and of the ratio of each new route to the Tecken
route with the same answer.

    uv run --locked python services/symbols/bench/bench_protocols.py
"""

from __future__ import annotations

import argparse
import http.client
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import bench_download as bd

from tecken_symbols import identities
from tecken_symbols.db import Database

SETS = ("tecken_302", "tecken_404", "symsrv_302", "symsrv_404", "debuginfod_302", "debuginfod_404")


def prepare(workdir: Path, keys: int, cache_url: str) -> tuple[dict, dict[str, list[str]]]:
    env, _ = bd.prepare(workdir, 0, cache_url)
    storage = workdir / "storage" / "v1"
    db = Database(env["SYMBOLS_DATABASE_URL"])
    db.migrate()
    paths: dict[str, list[str]] = {name: [] for name in SETS}
    with db.transaction() as tx:
        for i in range(keys):
            debug_id = f"{i:032X}1"
            build_id = f"{i:040x}"
            key = f"bench{i}.pdb/{debug_id}/bench{i}.pd_"
            target = storage / key
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(b"MSCF" + bytes(60))
            identities.record(
                tx,
                key,
                False,
                "0" * 32,
                [
                    identities.Identity(
                        identities.symstore_key(f"bench{i}.pdb", debug_id, f"bench{i}.pd_"),
                        identities.IDENTITY,
                        f"bench{i}.pd_",
                        identities.DEBUGINFO,
                        64,
                    ),
                    identities.Identity(
                        identities.debuginfod_key(build_id, identities.DEBUGINFO),
                        identities.IDENTITY,
                        f"bench{i}.pd_",
                        identities.DEBUGINFO,
                        64,
                    ),
                ],
            )
            missing_build_id = f"{i + keys:040x}"
            paths["tecken_302"].append(f"/{key}")
            paths["tecken_404"].append(f"/missing{i}.pdb/{debug_id}/missing{i}.pd_")
            paths["symsrv_302"].append(f"/symsrv/{key}")
            paths["symsrv_404"].append(f"/symsrv/missing{i}.pdb/{debug_id}/missing{i}.pd_")
            paths["debuginfod_302"].append(f"/buildid/{build_id}/debuginfo")
            paths["debuginfod_404"].append(f"/buildid/{missing_build_id}/debuginfo")
    db.close()
    return env, paths


def one_run(n: int, args: argparse.Namespace) -> dict[str, float]:
    workdir = Path(tempfile.mkdtemp(prefix="tecken-bench-protocols-"))
    procs = []
    try:
        env, paths = prepare(workdir, args.keys, args.cache_url)
        sym_port, base_port = bd.free_port(), bd.free_port()
        procs.append(
            bd.start_gunicorn(
                "tecken_symbols.wsgi:application", sym_port, env, workdir, args.workers
            )
        )
        procs.append(
            bd.start_gunicorn("baseline_app:application", base_port, {}, workdir, args.workers)
        )
        bd.wait_ready(sym_port, "/__lbheartbeat__")
        bd.wait_ready(base_port, "/a/B/c.sym")
        for _ in range(args.workers * 3):
            for name in SETS:
                for path in paths[name]:
                    conn = http.client.HTTPConnection("127.0.0.1", sym_port, timeout=10)
                    conn.request("GET", path)
                    status = conn.getresponse()
                    status.read()
                    conn.close()
                    if status.status != int(name[-3:]):
                        raise RuntimeError(f"{path}: {status.status}, not {name[-3:]}")
        per_round = max(1, args.requests // args.rounds)
        seconds = args.seconds / args.rounds
        targets = [("baseline", base_port, ["/a/B/c.sym"])] + [
            (name, sym_port, paths[name]) for name in SETS
        ]
        parts: dict[str, list[dict]] = {name: [] for name, _, _ in targets}
        for i in range(args.rounds):
            for name, port, some in targets if i % 2 == 0 else list(reversed(targets)):
                parts[name].append(
                    bd.load_from_second_process(port, some, args, per_round, seconds)
                )
        rps = {}
        for name, _, _ in targets:
            r = bd.combine(parts[name])
            rps[name] = r["rps"]
            bd.log(
                f"run {n}: {name:15s} {r['requests']:6d} req {r['rps']:8.1f} req/s  "
                f"p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms  statuses {r['statuses']} "
                f"errors {r['errors']}"
            )
        return rps
    finally:
        for proc in procs:
            bd.stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=4000, help="per path set per run")
    parser.add_argument("--seconds", type=float, default=12, help="time limit per set per run")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--keys", type=int, default=100, help="found keys (and as many missing)")
    parser.add_argument("--rounds", type=int, default=4, help="alternations per run")
    parser.add_argument("--cache-url", default="memory://", help="SYMBOLS_CACHE_URL to use")
    args = parser.parse_args()
    bd.log(
        f"{args.runs} runs; per path set: {args.requests} requests / {args.seconds}s max, "
        f"{args.concurrency} client threads in a second process, {args.workers} gunicorn "
        f"workers, {args.rounds} alternating rounds, warm cache ({args.cache_url})"
    )
    runs = [one_run(n + 1, args) for n in range(args.runs)]

    def mmm(values: list[float], fmt: str = ".1f") -> str:
        return (
            f"min {min(values):{fmt}}  median {statistics.median(values):{fmt}}  "
            f"max {max(values):{fmt}}"
        )

    for name in ("baseline", *SETS):
        bd.log(f"{name:15s} req/s: {mmm([r[name] for r in runs])}")
    for new in ("symsrv", "debuginfod"):
        for status in ("302", "404"):
            ratios = [r[f"{new}_{status}"] / r[f"tecken_{status}"] for r in runs]
            bd.log(f"ratio {new}/tecken {status}: {mmm(ratios, '.3f')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
