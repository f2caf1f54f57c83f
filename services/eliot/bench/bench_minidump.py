# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Latency of POST /minidump against the raw stackwalker, in one run.

Builds the real-client crasher (realclients/crasher), has crashpad_handler
dump it, and makes .sym files for its binaries with dump_syms. Then, with the
same pinned minidump-stackwalk:

* raw: ``minidump-stackwalk --json --symbols-path <tree> dump`` on local
  files, timed around the process;
* cold: ``POST /minidump`` to eliot with an empty symbol tree, so every
  module's symbols are fetched over HTTP first (a loopback symbol server
  over the dump_syms tree that answers 302 then the file, as the symbols
  service does; 404 for the system libraries);
* warm: the same request again, the tree filled (and the misses remembered).

The three are interleaved, so that load from other processes weighs on all
of them alike (raw is measured twice as often).

eliot runs in-process under a threaded WSGI server on 127.0.0.1; requests
come from this process with ``requests``. Prints min/median/max in ms.

    uv run --locked python services/eliot/bench/bench_minidump.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import requests

from tecken_eliot.app import create_app
from tecken_eliot.testing import SymbolServer
from tecken_shared.breakpad import read_header, symbol_key
from tecken_shared.config import build_config_manager
from tecken_shared.testing import realclients
from tecken_shared.testing.servers import wsgi_server


def make_symbols(build: realclients.Build, tree: Path) -> None:
    tool = realclients.dump_syms()
    for binary in (build.crasher, build.crashlib, build.noid):
        tmp = tree / f"{binary.name}.tmp"
        tmp.write_bytes(subprocess.run([tool, str(binary)], capture_output=True, check=True).stdout)
        header = read_header(tmp)
        dest = tree / symbol_key(header.debug_filename or "", header.debug_id or "")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(dest)


def summary(name: str, values: list[float]) -> str:
    return (
        f"{name:6} min {min(values):7.1f}  median {statistics.median(values):7.1f}  "
        f"max {max(values):7.1f} ms  (n={len(values)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    stackwalker = realclients.stackwalker()
    with tempfile.TemporaryDirectory(prefix="bench-minidump-") as tmp_name:
        tmp = Path(tmp_name)
        build, dump = realclients.crashpad_dump(tmp / "crash")
        tree = tmp / "symbols"
        tree.mkdir()
        make_symbols(build, tree)
        data = dump.read_bytes()

        def walk_raw() -> float:
            started = time.perf_counter()
            subprocess.run(
                [stackwalker, "--json", "--symbols-path", str(tree), str(dump)],
                capture_output=True,
                check=True,
            )
            return (time.perf_counter() - started) * 1000

        server = SymbolServer(tree)
        server.redirect = True
        with wsgi_server(server) as symbols_url:
            walk_tree = tmp / "eliot" / "breakpad"
            env = {
                "ELIOT_SYMBOL_URLS": symbols_url + "/",
                "ELIOT_SYMBOLS_CACHE_DIR": str(tmp / "eliot"),
                "ELIOT_STACKWALKER_PATH": stackwalker,
                "ELIOT_METRICS_BACKEND": "none",
                "LOGGING_LEVEL": "WARNING",
            }
            app = create_app(build_config_manager(env, str(tmp / "none.env")))
            with wsgi_server(app) as eliot_url, requests.Session() as session:

                def post() -> float:
                    started = time.perf_counter()
                    resp = session.post(
                        f"{eliot_url}/minidump",
                        files={"upload_file_minidump": ("crash.dmp", data)},
                        timeout=60,
                    )
                    elapsed = (time.perf_counter() - started) * 1000
                    resp.raise_for_status()
                    frame = resp.json()["threads"][0]["frames"][0]
                    assert frame["function"] == "crash_here", frame
                    return elapsed

                # Interleaved (raw, cold, raw, warm...), so that load from
                # other processes weighs on all three alike.
                raw, cold, warm = [], [], []
                for _ in range(args.runs):
                    raw.append(walk_raw())
                    shutil.rmtree(walk_tree, ignore_errors=True)
                    walk_tree.mkdir(parents=True)
                    (walk_tree / ".locks").mkdir()
                    cold.append(post())
                    raw.append(walk_raw())
                    warm.append(post())

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"Crashpad dump: {len(data):,} bytes; 3 modules with symbols, 3 without; load {load}")
    print(summary("raw", raw))
    print(summary("cold", cold))
    print(summary("warm", warm))
    print(
        f"warm median / raw median: {statistics.median(warm) / statistics.median(raw):.2f}; "
        f"cold median / raw median: {statistics.median(cold) / statistics.median(raw):.2f}"
    )


if __name__ == "__main__":
    main()
