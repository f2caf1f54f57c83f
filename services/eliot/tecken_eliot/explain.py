# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Why a module was (or was not) symbolicated: the ``module_status`` entries
of v5 answers that ask for ``"explain": true`` (computed only for them), and
of ``/minidump`` answers, with each frame's ``status`` (the vocabulary of
:data:`tecken_eliot.status.FRAME_STATUS`)."""

from __future__ import annotations

import bisect
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tecken_eliot.downloader import SymbolDownloader, public_url
from tecken_eliot.naming import cache_stem, symbol_url
from tecken_eliot.status import FRAME_STATUS, ModuleResult, ModuleStatus
from tecken_eliot.store import SymcacheStore
from tecken_shared.breakpad import symbol_key

if TYPE_CHECKING:
    from tecken_eliot.stackwalk import FetchReport, SymFileCache

#: The cache file whose age a module's ``cache_age`` is, by status.
AGE_FILE = {
    ModuleStatus.FOUND: ".meta",
    ModuleStatus.MISSING: "." + ModuleStatus.MISSING,
    ModuleStatus.MALFORMED: "." + ModuleStatus.MALFORMED,
}

#: A ``/minidump`` module's status by what fetching its sym file gave
#: (:meth:`tecken_eliot.stackwalk.SymFileCache.fetch`).
FETCH_STATUS = {
    "found": ModuleStatus.FOUND,
    "cached": ModuleStatus.FOUND,
    "missing": ModuleStatus.MISSING,
    "error": ModuleStatus.ERROR,
    "too_large": ModuleStatus.MALFORMED,
}

MISSING_DETAIL = "no symbol server has this module"


def sym_urls(downloader: SymbolDownloader, debug_filename: str, debug_id: str) -> list[str]:
    """The sym-file URLs the downloader asks for a module, in its order."""
    return [
        public_url(symbol_url(source, debug_filename, did))
        for source in downloader.source_urls
        for did in downloader._ids_to_try(debug_id)
    ]


def file_age(path: Path) -> float | None:
    """Seconds since ``path`` was last modified; None when it is not there."""
    try:
        return round(max(0.0, time.time() - os.stat(path).st_mtime), 3)
    except OSError:
        return None


def status_entry(
    status: ModuleStatus,
    detail: str,
    downloader: SymbolDownloader,
    module: tuple[str, str],
    cache_age: float | None,
) -> dict[str, Any]:
    """A ``module_status`` entry: ``status``, ``detail`` (when there is one),
    the URLs asked when it was not found (``urls``) and ``cache_age``."""
    entry: dict[str, Any] = {"status": str(status)}
    if detail:
        entry["detail"] = detail
    if status in (ModuleStatus.MISSING, ModuleStatus.ERROR):
        entry["urls"] = sym_urls(downloader, *module)
    entry["cache_age"] = cache_age
    return entry


def module_explainer(store: SymcacheStore) -> Callable[[str, str, ModuleResult], dict[str, Any]]:
    """The ``module_status`` entry of a module: ``status`` (found, missing,
    malformed, error), ``detail``, the symbol URLs asked when it was not
    found, and ``cache_age``: seconds since the answer was cached (the
    symcache built, the miss remembered); None when it is not cached."""

    def explain(debug_filename: str, debug_id: str, result: ModuleResult) -> dict[str, Any]:
        age = None
        suffix = AGE_FILE.get(result.status)
        if suffix is not None:
            # None: held by this worker only, or just evicted
            age = file_age(store.disk.path(cache_stem(debug_filename, debug_id), suffix))
        return status_entry(
            result.status, result.detail, store.downloader, (debug_filename, debug_id), age
        )

    return explain


def _address(value: Any) -> int | None:
    try:
        return int(value, 16) if isinstance(value, str) else None
    except ValueError:
        return None


def explain_walk(json_dump: dict[str, Any], report: FetchReport, cache: SymFileCache) -> None:
    """Add to a stackwalker answer ``module_status`` (for each module with an
    identity, keyed as ``symbol_fetch``: the entries of v5's ``explain``) and
    a ``status`` to every frame of every thread (v5's frame statuses)."""
    explained: dict[str, dict[str, Any]] = {}
    #: (base address, end address, status or None for a module without identity)
    spans: list[tuple[int, int, ModuleStatus | None]] = []
    for module in json_dump.get("modules") or []:
        debug_file, debug_id = module.get("debug_file"), module.get("debug_id")
        key = f"{debug_file}/{debug_id}"
        fetched = report.statuses.get(key)
        status: ModuleStatus | None = None
        if debug_file and debug_id and fetched is not None:
            path = cache.root / symbol_key(debug_file, debug_id)
            status = FETCH_STATUS.get(fetched, ModuleStatus.ERROR)
            detail = report.details.get(key, "")
            if module.get("corrupt_symbols"):
                status, detail = (
                    ModuleStatus.MALFORMED,
                    "the stackwalker could not read the sym file",
                )
            elif status is ModuleStatus.MISSING:
                detail = MISSING_DETAIL
                path = path.with_name(path.name + ".missing")
            age = file_age(path) if status in (ModuleStatus.FOUND, ModuleStatus.MISSING) else None
            explained[key] = status_entry(
                status, detail, cache.downloader, (debug_file, debug_id), age
            )
        base, end = _address(module.get("base_addr")), _address(module.get("end_addr"))
        if base is not None and end is not None:
            spans.append((base, end, status))
    spans.sort(key=lambda span: span[0])
    bases = [span[0] for span in spans]
    for thread in json_dump.get("threads") or []:
        for frame in thread.get("frames") or []:
            frame["status"] = _frame_status(frame, spans, bases)
    json_dump["module_status"] = explained


def _frame_status(
    frame: dict[str, Any], spans: list[tuple[int, int, ModuleStatus | None]], bases: list[int]
) -> str:
    offset = _address(frame.get("offset"))
    if offset is None:
        return "offset_outside_module"
    at = bisect.bisect_right(bases, offset) - 1
    if at < 0 or offset >= spans[at][1] or not frame.get("module"):
        return "unknown_module"
    status = spans[at][2]
    if status is None:
        return "unknown_module"
    if status is ModuleStatus.FOUND:
        return "symbolicated" if frame.get("function") else "no_function"
    return FRAME_STATUS[status]
