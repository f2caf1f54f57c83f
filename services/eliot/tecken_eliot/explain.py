# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Why a module was (or was not) symbolicated: the ``module_status`` entries
of answers that ask for ``"explain": true``. Computed only for them."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from tecken_eliot.downloader import public_url
from tecken_eliot.naming import cache_stem, symbol_url
from tecken_eliot.status import ModuleResult, ModuleStatus
from tecken_eliot.store import SymcacheStore

#: The cache file whose age a module's ``cache_age`` is, by status.
AGE_FILE = {
    ModuleStatus.FOUND: ".meta",
    ModuleStatus.MISSING: "." + ModuleStatus.MISSING,
    ModuleStatus.MALFORMED: "." + ModuleStatus.MALFORMED,
}


def module_explainer(store: SymcacheStore) -> Callable[[str, str, ModuleResult], dict[str, Any]]:
    """The ``module_status`` entry of a module: ``status`` (found, missing,
    malformed, error), ``detail``, the symbol URLs asked when it was not
    found, and ``cache_age``: seconds since the answer was cached (the
    symcache built, the miss remembered); None when it is not cached."""

    def explain(debug_filename: str, debug_id: str, result: ModuleResult) -> dict[str, Any]:
        entry: dict[str, Any] = {"status": str(result.status)}
        if result.detail:
            entry["detail"] = result.detail
        if result.status in (ModuleStatus.MISSING, ModuleStatus.ERROR):
            # The URLs the downloader asks, in its order.
            downloader = store.downloader
            entry["urls"] = [
                public_url(symbol_url(source, debug_filename, did))
                for source in downloader.source_urls
                for did in downloader._ids_to_try(debug_id)
            ]
        entry["cache_age"] = None
        suffix = AGE_FILE.get(result.status)
        if suffix is not None:
            path = store.disk.path(cache_stem(debug_filename, debug_id), suffix)
            try:
                entry["cache_age"] = round(max(0.0, time.time() - os.stat(path).st_mtime), 3)
            except OSError:
                pass  # held by this worker only, or just evicted
        return entry

    return explain
