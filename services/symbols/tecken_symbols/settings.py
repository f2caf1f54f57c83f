# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Configuration of the symbols service's core (database, storage, cache,
downloads, missing symbols). Read with the ``symbols`` namespace, so the
environment variables are ``SYMBOLS_<OPTION>``."""

from __future__ import annotations

from everett.manager import ListOf, Option, parse_bool


def positive_float(value: str) -> float:
    number = float(value)
    if number < 0:
        raise ValueError(f"{value!r} must not be negative")
    return number


class DatabaseConfig:
    class Config:
        database_url = Option(
            default="sqlite:///./var/symbols/symbols.db",
            doc="Database URL: ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` "
            "(embedded default) or ``postgresql://user:password@host:port/dbname`` (production).",
        )
        database_automigrate = Option(
            default="true",
            parser=parse_bool,
            doc="Apply pending schema migrations when the app starts (safe with several "
            "workers: they take a lock). Set to false when a deploy step runs "
            "``tecken-symbols-admin migrate`` instead.",
        )
        database_connect_timeout = Option(
            default="5",
            parser=positive_float,
            doc="Seconds to wait for a PostgreSQL connection.",
        )


class StorageConfig:
    class Config:
        storage_url = Option(
            default="file://./var/symbols/storage/v1",
            doc="Regular symbol storage (upload target, first download backend): "
            "``file:///path`` or ``s3://bucket/prefix?endpoint_url=...`` "
            "(see the storage URL parameters in the docs).",
        )
        try_storage_url = Option(
            default="file://./var/symbols/storage/try/v1",
            doc="Try symbol storage (upload target for try builds; searched after the "
            "regular storage for /try/ and ?try downloads).",
        )
        extra_storage_urls = Option(
            default="",
            parser=ListOf(str),
            doc="Comma-separated extra read-only storage URLs searched after regular "
            "(and try) storage for downloads, e.g. a legacy bucket.",
        )
        public_url = Option(
            default="http://localhost:3000",
            doc="Public base URL of this service. Filesystem storages without a "
            "``public_url`` parameter are served by the service itself under "
            "``<public_url>/files/<regular|try|extraN>/<key>``, and downloads redirect there.",
        )


class CacheConfig:
    class Config:
        cache_url = Option(
            default="memory://",
            doc="Existence-lookup cache: ``memory://`` (in-process LRU, per worker) or "
            "``redis://host:port/db`` (shared; every Redis error is logged and ignored).",
        )
        cache_prefix = Option(default="symbols:", doc="Prefix of every cache key in Redis.")
        cache_positive_ttl = Option(
            default="3600",
            parser=positive_float,
            doc="Seconds a found symbol stays cached (uploads invalidate it).",
        )
        cache_negative_ttl = Option(
            default="30",
            parser=positive_float,
            doc="Seconds a missing symbol stays cached. Uploads invalidate it. With "
            "``memory://`` (per worker) misses are only cached for remote (S3) storage.",
        )
        cache_redis_timeout = Option(
            default="0.25",
            parser=positive_float,
            doc="Redis connect and socket timeout in seconds.",
        )
        cache_redis_retry_after = Option(
            default="5",
            parser=positive_float,
            doc="After a Redis error, seconds to work without Redis before trying again.",
        )
        cache_local_hit_ttl = Option(
            default="60",
            parser=positive_float,
            doc="With Redis: seconds each worker also keeps a found symbol in memory, "
            "saving a Redis round trip per download (0 turns it off). Missing "
            "symbols are never kept per worker, so an upload shows at once everywhere.",
        )
        cache_max_entries = Option(
            default="100000",
            parser=int,
            doc="Entries kept by the in-process cache.",
        )
        syminfo_cache_ttl = Option(
            default="600",
            parser=positive_float,
            doc="Seconds a found code-file/code-id (syminfo) lookup stays cached.",
        )
        syminfo_negative_ttl = Option(
            default="60",
            parser=positive_float,
            doc="Seconds a failed code-file/code-id lookup stays cached in Redis (uploads "
            "invalidate it; never cached with ``memory://``).",
        )


class DownloadConfig:
    class Config:
        download_file_extensions_allowed = Option(
            default=".sym,.dl_,.ex_,.pd_,.dbg.gz,.tar.bz2",
            parser=ListOf(str),
            doc="Symbol file name endings that downloads look up (case-sensitive); other "
            "requests get 404 ``Symbol Not Found (and ignored)`` without a lookup.",
        )
        missing_symbols_enabled = Option(
            default="true",
            parser=parse_bool,
            doc="Record GET downloads answered 404 (for /missingsymbols.csv).",
        )
        missing_symbols_flush_interval = Option(
            default="10",
            parser=positive_float,
            doc="Seconds between writes of the buffered missing-symbol counts to the database.",
        )
        missing_symbols_max_buffer = Option(
            default="10000",
            parser=int,
            doc="Distinct missing symbols buffered per worker between writes; more are dropped "
            "(and counted in a metric).",
        )
