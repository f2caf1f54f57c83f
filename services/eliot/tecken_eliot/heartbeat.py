# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The checks of ``/__heartbeat__``: the cache directory is writable, and the
cache manager (a separate process) is alive, and the stackwalker runs when
POST /minidump is on."""

from __future__ import annotations

from tecken_eliot.diskcache import DiskCache
from tecken_eliot.stackwalk import Stackwalker
from tecken_shared.dockerflow import HealthCheck


def cache_manager_check(disk: DiskCache, max_age: float) -> HealthCheck:
    """Fails when the cache manager's heartbeat file is missing or older than
    ``max_age`` seconds (``ELIOT_CACHE_MANAGER_MAX_AGE``; 0 disables it)."""

    def check() -> str | None:
        if max_age <= 0:
            return None
        beat = disk.read_heartbeat()
        if beat is None:
            return (
                f"the cache manager has written no heartbeat ({disk.heartbeat_path()}); "
                "is it running?"
            )
        if beat["age"] > max_age:
            return (
                f"the cache manager's last heartbeat is {beat['age']:.0f}s old "
                f"(limit {max_age:.0f}s)"
            )
        return None

    return check


def health_checks(
    disk: DiskCache, cache_manager_max_age: float, stackwalker: Stackwalker | None = None
) -> dict[str, HealthCheck]:
    """Every check of ``/__heartbeat__``, by name; ``stackwalker`` only when
    POST /minidump is on (ELIOT_STACKWALKER_PATH set)."""
    checks = {
        "cache_dir": disk.check_writable,
        "cache_manager": cache_manager_check(disk, cache_manager_max_age),
    }
    if stackwalker is not None and stackwalker.enabled:
        checks["stackwalker"] = stackwalker.check
    return checks
