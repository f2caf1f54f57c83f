# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The application context every route module receives: configuration,
database, storage backends, lookup cache, symbol writer, upload settings and
missing-symbol recorder. The CLIs build the same context."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from everett.manager import ConfigManager

from tecken_shared.cache import Cache, cache_from_url
from tecken_symbols.db import Database, DatabaseError
from tecken_symbols.deployment import check_nodes
from tecken_symbols.errors import SECURITY_HEADERS
from tecken_symbols.lookups import Lookups
from tecken_symbols.missing import MissingSymbols
from tecken_symbols.people.config import PeopleSettings
from tecken_symbols.people.downloads import DownloadCounts
from tecken_symbols.settings import (
    NAMESPACE,
    CacheConfig,
    DatabaseConfig,
    DeploymentConfig,
    DownloadConfig,
    StorageConfig,
)
from tecken_symbols.storages import Storages, build_storages
from tecken_symbols.upload.config import UploadSettings
from tecken_symbols.upload.direct import DirectUploads
from tecken_symbols.upload.writer import SymbolWriter

logger = logging.getLogger(__name__)


@dataclass
class AppContext:
    db: Database
    storages: Storages
    cache: Cache
    lookups: Lookups
    #: Every write and delete of a symbol object goes through it.
    writer: SymbolWriter
    #: v2 uploads straight to the storage, and their verification.
    direct: DirectUploads
    upload: UploadSettings
    missing: MissingSymbols
    #: Downloads found and missing per day (the download route's hook).
    downloads: DownloadCounts
    allowed_extensions: tuple[str, ...]
    #: Headers every download answer carries (empty when turned off).
    download_headers: dict[str, str]
    public_url: str
    #: Logins, sessions and pages (issue 12).
    people: PeopleSettings = field(default_factory=PeopleSettings)

    def close(self) -> None:
        self.missing.stop()
        self.downloads.stop()
        self.db.close()


def build_context(manager: ConfigManager) -> AppContext:
    """Everything the routes and the CLIs use, built from the options."""
    config = manager.with_namespace(NAMESPACE)
    db_cfg = config.with_options(DatabaseConfig)
    st_cfg = config.with_options(StorageConfig)
    ca_cfg = config.with_options(CacheConfig)
    dl_cfg = config.with_options(DownloadConfig)
    dep_cfg = config.with_options(DeploymentConfig)
    check_nodes(
        dep_cfg("nodes"),
        database_url=db_cfg("database_url"),
        cache_url=ca_cfg("cache_url"),
        storage_urls=[
            st_cfg("storage_url"),
            st_cfg("try_storage_url"),
            *st_cfg("extra_storage_urls"),
        ],
        filesystem_shared=dep_cfg("filesystem_shared"),
    )

    db = Database(
        db_cfg("database_url"),
        connect_timeout=db_cfg("database_connect_timeout"),
        pool_size=db_cfg("database_pool_size"),
    )
    if db_cfg("database_automigrate"):
        try:
            db.migrate()
        except DatabaseError as exc:
            # Downloads work without the database; /__heartbeat__ reports it.
            logger.error("could not apply database migrations at start-up: %s", exc)
    storages = build_storages(
        st_cfg("storage_url"),
        st_cfg("try_storage_url"),
        st_cfg("extra_storage_urls"),
        st_cfg("public_url"),
    )
    cache = cache_from_url(
        ca_cfg("cache_url"),
        prefix=ca_cfg("cache_prefix"),
        socket_timeout=ca_cfg("cache_redis_timeout"),
        retry_after=ca_cfg("cache_redis_retry_after"),
        max_entries=ca_cfg("cache_max_entries"),
    )
    lookups = Lookups(
        storages,
        cache,
        db,
        positive_ttl=ca_cfg("cache_positive_ttl"),
        negative_ttl=ca_cfg("cache_negative_ttl"),
        syminfo_ttl=ca_cfg("syminfo_cache_ttl"),
        syminfo_negative_ttl=ca_cfg("syminfo_negative_ttl"),
        local_hit_ttl=ca_cfg("cache_local_hit_ttl"),
        local_max_entries=ca_cfg("cache_max_entries"),
        poll_interval=ca_cfg("cache_invalidation_poll_interval"),
        ask_storage_for_unknown_keys=dl_cfg("download_ask_storage_for_unknown_keys"),
    )
    upload = UploadSettings.from_config(manager)
    missing = MissingSymbols(
        db,
        enabled=dl_cfg("missing_symbols_enabled"),
        flush_interval=dl_cfg("missing_symbols_flush_interval"),
        max_buffer=dl_cfg("missing_symbols_max_buffer"),
        max_rows=dl_cfg("missing_symbols_max_rows"),
        retention_days=dl_cfg("missing_symbols_retention_days"),
    )
    writer = SymbolWriter(upload, storages, db, lookups)
    direct = DirectUploads(writer)
    lookups.on_found = direct.on_found
    return AppContext(
        db=db,
        storages=storages,
        cache=cache,
        lookups=lookups,
        writer=writer,
        direct=direct,
        upload=upload,
        missing=missing,
        downloads=DownloadCounts(
            db,
            enabled=dl_cfg("download_counts_enabled"),
            flush_interval=dl_cfg("download_counts_flush_interval"),
        ),
        allowed_extensions=tuple(
            e.strip() for e in dl_cfg("download_file_extensions_allowed") if e.strip()
        ),
        public_url=st_cfg("public_url").rstrip("/"),
        download_headers=dict(SECURITY_HEADERS) if dl_cfg("download_security_headers") else {},
        people=PeopleSettings.from_config(manager),
    )
