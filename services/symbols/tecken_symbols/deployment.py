# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Which settings hold across nodes. Every piece of state the service keeps
(users, tokens, sessions, login attempts, uploads, missing-symbol counts, the
cache invalidation log) lives in the database, and the lookup cache in Redis
or in each worker; the objects live in the storage. With
``SYMBOLS_NODES`` above 1 each of those must be one thing every node
reaches, else the service refuses to start (:func:`check_nodes`)."""

from __future__ import annotations

from collections.abc import Iterable


class UnsafeDeployment(ValueError):
    """The settings keep state per machine while several machines are declared."""


def node_problems(
    nodes: int,
    *,
    database_url: str,
    cache_url: str,
    storage_urls: Iterable[str],
    filesystem_shared: bool,
) -> list[str]:
    """What keeps state on one machine although ``nodes`` machines run."""
    if nodes <= 1:
        return []
    problems = []
    if database_url.startswith("sqlite:"):
        problems.append(
            "SYMBOLS_DATABASE_URL is SQLite, a file on one machine: users, tokens, "
            "sessions, uploads, missing symbols and the cache invalidation log would "
            "differ per node; use postgresql://"
        )
    if cache_url.startswith("memory:"):
        problems.append(
            "SYMBOLS_CACHE_URL is memory://, a cache per worker: every node would cache "
            "(and miss) on its own, multiplying storage look-ups; use redis://"
        )
    local = [url for url in storage_urls if url.startswith("file:")]
    if local and not filesystem_shared:
        problems.append(
            f"file:// storage ({', '.join(local)}) is a directory of one machine: an upload "
            "to one node would be missing on the others; use s3:// or gs://, or set "
            "SYMBOLS_FILESYSTEM_SHARED=true when it is one shared mount"
        )
    return problems


def check_nodes(nodes: int, **settings: object) -> None:
    """Raise :class:`UnsafeDeployment` listing every problem, if any."""
    problems = node_problems(nodes, **settings)  # type: ignore[arg-type]
    if problems:
        raise UnsafeDeployment(
            f"SYMBOLS_NODES={nodes}, but this configuration keeps state on one machine:\n- "
            + "\n- ".join(problems)
        )
