# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Benchmark of what ``ELIOT_SYMBOL_PROTOCOLS`` adds to a miss, against
gunicorn (deploy/gunicorn-eliot.conf.py), measured from this (second)
process: two eliots over the same plain symbol server (an empty tree: every
URL a 404), one with the default protocols (symsrv, debuginfod), one with
``none``. Each request asks for a module never seen before (a cold miss):
a ``.pdb`` module (one more HEAD: symsrv) and an ELF module sent with its
code id (two more: debuginfod's debuginfo and executable). Requests
alternate between the two eliots; the ratio protocols / none per kind.

Three runs of ``--samples`` requests each; min/median/max of each figure.

    uv run --locked python services/eliot/bench/bench_symbol_protocols.py
"""

from __future__ import annotations

import itertools
import statistics
import time
from pathlib import Path

import requests

from tecken_eliot.testing import SymbolServer
from tecken_shared.testing.servers import wsgi_server
from tecken_shared.testing.services import running_service

_ids = itertools.count(1)


def ask(session: requests.Session, url: str, kind: str) -> float:
    """One cold miss: a module never asked for before."""
    n = next(_ids)
    did = f"{n:032X}0"
    if kind == "pdb":
        entry: list = [f"gone{n}.pdb", did]
    else:
        entry = [f"libgone{n}.so", did, {"code_id": f"{n:040x}"}]
    payload = {"jobs": [{"memoryMap": [entry], "stacks": [[[0, 0x1010]]]}]}
    start = time.perf_counter()
    resp = session.post(f"{url}/symbolicate/v5", json=payload, timeout=60)
    elapsed = time.perf_counter() - start
    resp.raise_for_status()
    assert list(resp.json()["results"][0]["found_modules"].values()) == [False]
    return elapsed


def one_run(samples: int, tmp: Path) -> dict[str, float]:
    figures: dict[str, float] = {}
    session = requests.Session()
    (tmp / "empty").mkdir()
    with wsgi_server(SymbolServer(tmp / "empty")) as url:
        env = {"ELIOT_SYMBOL_URLS": url + "/"}
        with (
            running_service("eliot", tmp / "e1", workers=1, extra_env=env) as with_protocols,
            running_service(
                "eliot",
                tmp / "e2",
                workers=1,
                extra_env={**env, "ELIOT_SYMBOL_PROTOCOLS": "none"},
            ) as without,
        ):
            eliots = {"protocols": with_protocols, "none": without}
            for eliot in eliots.values():  # warm-up: connections, imports
                ask(session, eliot.url, "pdb")
            for kind in ("pdb", "elf"):
                times: dict[str, list[float]] = {name: [] for name in eliots}
                for _ in range(samples):
                    for name, eliot in eliots.items():
                        times[name].append(ask(session, eliot.url, kind))
                on, off = statistics.median(times["protocols"]), statistics.median(times["none"])
                figures[f"{kind} miss protocols ms"] = on * 1000
                figures[f"{kind} miss none ms"] = off * 1000
                figures[f"{kind} protocols/none"] = on / off
    return figures


if __name__ == "__main__":
    # The runs and the summary are bench_symbol_sources.py's (this directory
    # is on sys.path when a bench is run as a script).
    from bench_symbol_sources import main

    main(one_run, __doc__ or "", samples=21)
