# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""``/__heartbeat__`` checks: the database (reachable, migrations applied)
and every storage backend (writable ones take a probe write; read-only extras
a metadata request). The cache is not checked: the service works without it."""

from __future__ import annotations

from tecken_shared.dockerflow import HealthCheck
from tecken_shared.storage import StorageError
from tecken_symbols.context import AppContext
from tecken_symbols.storages import Backend


def _storage_check(backend: Backend) -> HealthCheck:
    def check() -> str | None:
        try:
            if backend.writable:
                backend.storage.check()
            else:
                backend.storage.metadata("heartbeat/0/heartbeat.sym")
        except StorageError as exc:
            return f"{backend.label} storage: {exc}"
        return None

    return check


def heartbeat_checks(ctx: AppContext) -> dict[str, HealthCheck]:
    checks: dict[str, HealthCheck] = {"database": ctx.db.check}
    for backend in ctx.storages.all():
        checks[f"storage_{backend.label}"] = _storage_check(backend)
    return checks
