# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""A small string key/value cache with per-entry TTLs, in two implementations:

* :class:`LocalCache`: an in-process LRU (the embedded default; per process).
* :class:`RedisCache`: Redis (production; shared by every worker and node).

A cache is an optimisation, never a dependency: :class:`RedisCache` logs and
swallows every Redis error (a failed ``get`` is a miss, a failed ``set`` or
``delete`` does nothing) and, after an error, leaves Redis alone for
``retry_after`` seconds so a dead or paused Redis costs one short timeout,
not one per request. ``errors`` counts the failures.

Build one from a URL with :func:`cache_from_url`: ``memory://`` (optionally
``?max_entries=N``) or ``redis://host:port/db`` (``rediss://`` for TLS).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Protocol
from urllib.parse import parse_qs, urlsplit, urlunsplit

logger = logging.getLogger(__name__)


class Cache(Protocol):
    name: str
    #: Whether every worker and node sees the same entries (so deleting a key
    #: here reaches all of them); False for a per-process cache.
    shared: bool

    def get(self, key: str) -> str | None: ...

    def get_many(self, keys: Iterable[str]) -> list[str | None]: ...

    def set(self, key: str, value: str, ttl: float) -> None: ...

    def delete(self, *keys: str) -> None: ...

    def check(self) -> str | None: ...


class LocalCache:
    """Thread-safe in-process LRU with per-entry expiry."""

    shared = False

    def __init__(self, max_entries: int = 100_000, clock=time.monotonic) -> None:
        self.max_entries = max(1, max_entries)
        self.name = f"memory (max {self.max_entries} entries)"
        self._data: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()
        self._clock = clock
        self.errors = 0

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str) -> str | None:
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return None
            expires, value = item
            if expires <= self._clock():
                del self._data[key]
                return None
            self._data.move_to_end(key)
            return value

    def get_many(self, keys: Iterable[str]) -> list[str | None]:
        return [self.get(k) for k in keys]

    def set(self, key: str, value: str, ttl: float) -> None:
        if ttl <= 0:
            return
        with self._lock:
            self._data[key] = (self._clock() + ttl, value)
            self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def delete(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._data.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def check(self) -> str | None:
        return None


class RedisCache:
    """Redis-backed cache under a key ``prefix``. Fail-open: see the module doc."""

    shared = True

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "",
        socket_timeout: float = 0.25,
        connect_timeout: float = 0.25,
        retry_after: float = 5.0,
        clock=time.monotonic,
    ) -> None:
        import redis

        self.prefix = prefix
        parts = urlsplit(url)
        netloc = parts.hostname or "localhost"
        if parts.port:
            netloc += f":{parts.port}"
        self.name = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
        self.client = redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=connect_timeout,
            retry_on_timeout=False,
            health_check_interval=0,
        )
        self.retry_after = retry_after
        self._clock = clock
        self._down_until = 0.0
        self.errors = 0

    def _available(self) -> bool:
        return self._clock() >= self._down_until

    def _failed(self, action: str, exc: Exception) -> None:
        self.errors += 1
        self._down_until = self._clock() + self.retry_after
        logger.warning(
            "redis cache %s: %s failed (%s: %s); working without it for %.0fs",
            self.name,
            action,
            type(exc).__name__,
            exc,
            self.retry_after,
        )

    def get(self, key: str) -> str | None:
        if not self._available():
            return None
        try:
            value = self.client.get(self.prefix + key)
        except Exception as exc:
            self._failed("get", exc)
            return None
        return value.decode() if isinstance(value, bytes) else value

    def get_many(self, keys: Iterable[str]) -> list[str | None]:
        keys = list(keys)
        if not keys:
            return []
        if not self._available():
            return [None] * len(keys)
        try:
            values = self.client.mget([self.prefix + k for k in keys])
        except Exception as exc:
            self._failed("mget", exc)
            return [None] * len(keys)
        return [v.decode() if isinstance(v, bytes) else v for v in values]

    def set(self, key: str, value: str, ttl: float) -> None:
        if ttl <= 0 or not self._available():
            return
        try:
            self.client.set(self.prefix + key, value, px=max(1, int(ttl * 1000)))
        except Exception as exc:
            self._failed("set", exc)

    def delete(self, *keys: str) -> None:
        """Delete keys. Unlike reads, this is tried even while Redis is marked
        down: a lost invalidation leaves a stale entry until its TTL."""
        if not keys:
            return
        try:
            self.client.delete(*[self.prefix + k for k in keys])
        except Exception as exc:
            self._failed("delete", exc)

    def check(self) -> str | None:
        try:
            self.client.ping()
        except Exception as exc:
            return f"redis {self.name} unreachable: {type(exc).__name__}: {exc}"
        return None


def cache_from_url(
    url: str,
    *,
    prefix: str = "",
    socket_timeout: float = 0.25,
    retry_after: float = 5.0,
    max_entries: int = 100_000,
) -> LocalCache | RedisCache:
    """``memory://[?max_entries=N]`` or ``redis://...``. Raises ValueError."""
    parts = urlsplit(url or "memory://")
    if parts.scheme in ("memory", ""):
        params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        return LocalCache(int(params.get("max_entries", max_entries)))
    if parts.scheme in ("redis", "rediss", "unix"):
        return RedisCache(
            url,
            prefix=prefix,
            socket_timeout=socket_timeout,
            connect_timeout=socket_timeout,
            retry_after=retry_after,
        )
    raise ValueError(f"cache URL {url!r}: scheme must be memory:// or redis://")
