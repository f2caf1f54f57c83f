# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""``tecken-symbols-admin index-identities``: fill the identity index
(:mod:`tecken_symbols.identities`) for objects stored before it existed.

It lists the regular (and with ``--try`` the try) storage, skips ``.sym``
files, derived objects and objects already indexed (unless ``--reindex``),
reads each object once (those over ``SYMBOLS_IDENTITY_MAX_SIZE`` get the keys
their name gives) and records its identities through the symbol writer, so
every worker's cache learns them. Prints a JSON report; safe to rerun."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import os
from dataclasses import asdict, dataclass
from typing import Any

from tecken_shared.config import build_config_manager
from tecken_shared.storage import ObjectInfo, StorageError
from tecken_symbols import identities
from tecken_symbols.context import AppContext

logger = logging.getLogger(__name__)


@dataclass
class BackfillReport:
    scanned: int = 0
    indexed: int = 0
    keys: int = 0
    skipped: int = 0
    errors: int = 0


def _indexed(ctx: AppContext, key: str, try_symbols: bool) -> bool:
    return (
        ctx.db.fetchone(
            "SELECT 1 AS one FROM symbol_identities WHERE object_key = ? AND try_symbols = ?",
            (key, try_symbols),
        )
        is not None
    )


def _index_one(ctx: AppContext, info: ObjectInfo, try_symbols: bool) -> int:
    backend = ctx.storages.upload_backend(try_symbols)
    max_size = ctx.upload.identity_max_size
    md5 = info.metadata.get("original_md5_hash") or None
    gzipped = info.content_encoding == "gzip"
    if info.size > max_size:
        found = identities.name_identities(info.key, info.size)
    else:
        with backend.storage.open(info.key) as stream:
            data = stream.read(max_size + 1)
        if md5 is None and not gzipped:
            md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
        found = identities.identify_stream(
            info.key, io.BytesIO(data), size=len(data), gzipped=gzipped, max_size=max_size
        )
    ctx.writer.record_identities(info.key, try_symbols, md5, found)
    return len(found)


def backfill(
    ctx: AppContext,
    *,
    try_symbols: bool = False,
    prefix: str = "",
    limit: int = 0,
    reindex: bool = False,
) -> BackfillReport:
    report = BackfillReport()
    storage = ctx.storages.upload_backend(try_symbols).storage
    for info in storage.list(prefix):
        parts = info.key.split("/")
        if (
            len(parts) != 3
            or parts[0] == identities.DERIVED_PREFIX
            or parts[2].lower().endswith(".sym")
        ):
            continue
        if limit and report.scanned >= limit:
            break
        report.scanned += 1
        if not reindex and _indexed(ctx, info.key, try_symbols):
            report.skipped += 1
            continue
        try:
            report.keys += _index_one(ctx, info, try_symbols)
            report.indexed += 1
        except (StorageError, OSError) as exc:
            report.errors += 1
            logger.error("cannot index %s: %s", info.key, exc)
    return report


def run(args: argparse.Namespace) -> int:
    from tecken_symbols.context import build_context

    env = dict(os.environ)
    if getattr(args, "database_url", None):
        env["SYMBOLS_DATABASE_URL"] = args.database_url
    ctx = build_context(build_config_manager(env))
    try:
        report = backfill(
            ctx,
            try_symbols=args.try_symbols,
            prefix=args.prefix,
            limit=args.limit,
            reindex=args.reindex,
        )
    finally:
        ctx.close()
    print(json.dumps(asdict(report), sort_keys=True))
    return 1 if report.errors else 0


def add_backfill_command(subparsers: Any) -> None:
    """Register ``index-identities`` on an argparse subparsers object."""
    p = subparsers.add_parser(
        "index-identities",
        help="index the symsrv/SSQP/debuginfod identities of objects stored before the index",
    )
    p.add_argument("--try", dest="try_symbols", action="store_true", help="the try storage")
    p.add_argument("--prefix", default="", help="only keys starting with this")
    p.add_argument("--limit", type=int, default=0, help="at most this many objects (0: all)")
    p.add_argument("--reindex", action="store_true", help="parse objects already indexed too")
    p.set_defaults(func=run)
