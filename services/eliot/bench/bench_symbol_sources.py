# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Benchmark of what issue 13's symbol sources cost, against gunicorn
(deploy/gunicorn-eliot.conf.py), measured from this (second) process:

* cold symbolication of a module from its debug file (ELF ``.dbg.gz``, PDB in
  a ``.pd_`` CAB) against the same module from its ``.sym``, each sample with
  the module's cache entry deleted first (``ELIOT_OPEN_SYMCACHES=0``, so no
  worker keeps it open); the ratio debug / sym per module;
* a request for a module remembered as missing, with its recheck due (the
  entry's last check reset before each request: one HEAD per form) against
  the same request with no recheck due; the ratio.

Three runs of ``--samples`` requests each; min/median/max of each figure.

    uv run --locked python services/eliot/bench/bench_symbol_sources.py
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests

from tecken_eliot.naming import cache_stem, format_filename
from tecken_eliot.testing import FIXTURES, QIPCAP, SOURCES, SSLTUNNEL, SymbolServer
from tecken_shared.testing.servers import wsgi_server
from tecken_shared.testing.services import running_service

#: module -> (its debug-file form, the fixture holding it)
DEBUG_FORMS = {SSLTUNNEL: ("dbg.gz", "ssltunnel.dbg.gz"), QIPCAP: ("pd_", "qipcap64.pd_")}
MISSING = ("nothere.pdb", "E" * 33)


def tree(root: Path, debug: bool) -> Path:
    """A store with only the sym files, or only the debug files, of DEBUG_FORMS."""
    for (name, did), (fmt, fixture) in DEBUG_FORMS.items():
        src = FIXTURES / Path(SOURCES[(name, did)]).parent
        filename = format_filename(fmt if debug else "sym", name)
        assert filename is not None
        dest = root / name / did / filename
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src / (fixture if debug else Path(SOURCES[(name, did)]).name), dest)
    return root


def ask(session: requests.Session, url: str, module: tuple[str, str]) -> tuple[float, bool]:
    payload = {"jobs": [{"memoryMap": [list(module)], "stacks": [[[0, 0x1010]]]}]}
    start = time.perf_counter()
    resp = session.post(f"{url}/symbolicate/v5", json=payload, timeout=60)
    elapsed = time.perf_counter() - start
    resp.raise_for_status()
    return elapsed, next(iter(resp.json()["results"][0]["found_modules"].values()))


def forget(cache: Path, module: tuple[str, str]) -> None:
    for suffix in (".symc", ".meta"):
        (cache / "cache" / (cache_stem(*module) + suffix)).unlink(missing_ok=True)


def due(cache: Path) -> None:
    entry = cache / "cache" / (cache_stem(*MISSING) + ".missing")
    data = json.loads(entry.read_text())
    data["checked"] = 0
    entry.write_text(json.dumps(data))


def one_run(samples: int, tmp: Path) -> dict[str, float]:
    figures: dict[str, float] = {}
    session = requests.Session()
    with (
        wsgi_server(SymbolServer(tree(tmp / "sym", False))) as sym_url,
        wsgi_server(SymbolServer(tree(tmp / "debug", True))) as debug_url,
    ):
        eliots = {}
        env = {"ELIOT_OPEN_SYMCACHES": "0", "ELIOT_MISSING_SYMBOLS_RECHECK": "1h"}
        with (
            running_service(
                "eliot", tmp / "e1", workers=1, extra_env={**env, "ELIOT_SYMBOL_URLS": sym_url}
            ) as e_sym,
            running_service(
                "eliot", tmp / "e2", workers=1, extra_env={**env, "ELIOT_SYMBOL_URLS": debug_url}
            ) as e_debug,
        ):
            eliots = {"sym": e_sym, "debug": e_debug}
            for module in DEBUG_FORMS:
                times: dict[str, list[float]] = {"sym": [], "debug": []}
                for _ in range(samples):
                    for kind, eliot in eliots.items():
                        forget(eliot.workdir / "cache", module)
                        elapsed, found = ask(session, eliot.url, module)
                        assert found, (kind, module)
                        times[kind].append(elapsed)
                sym, debug = statistics.median(times["sym"]), statistics.median(times["debug"])
                figures[f"cold {module[0]} sym ms"] = sym * 1000
                figures[f"cold {module[0]} debug ms"] = debug * 1000
                figures[f"cold {module[0]} debug/sym"] = debug / sym

            cache = e_debug.workdir / "cache"
            ask(session, e_debug.url, MISSING)  # remembered from now on
            plain, rechecked = [], []
            for _ in range(samples):
                plain.append(ask(session, e_debug.url, MISSING)[0])
                due(cache)
                rechecked.append(ask(session, e_debug.url, MISSING)[0])
            figures["missing ms"] = statistics.median(plain) * 1000
            figures["missing+recheck ms"] = statistics.median(rechecked) * 1000
            figures["recheck/plain"] = statistics.median(rechecked) / statistics.median(plain)
    return figures


def main(
    run_once: Callable[[int, Path], dict[str, float]] = one_run,
    doc: str = __doc__ or "",
    samples: int = 15,
) -> None:
    """``--runs`` runs of ``run_once(samples, tmp)``, then min/median/max of
    each figure over the runs (also the entry point of
    bench_symbol_protocols.py)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--samples", type=int, default=samples)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="bench-sources-") as tmp:
            runs.append(run_once(args.samples, Path(tmp)))
        print(f"run {run + 1}: " + ", ".join(f"{k} {v:.2f}" for k, v in runs[-1].items()))
    print("\nmin / median / max over runs (each figure a median of its run)")
    for key in runs[0]:
        values = sorted(r[key] for r in runs)
        print(f"  {key:28s} {values[0]:8.2f} {statistics.median(values):8.2f} {values[-1]:8.2f}")


if __name__ == "__main__":
    main()
