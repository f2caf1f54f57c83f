# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Answering a symsrv, SSQP or debuginfod key from the identity index
(:mod:`tecken_symbols.identities`), shared by :mod:`tecken_symbols.symstore`
and :mod:`tecken_symbols.debuginfod`.

The index names the stored Tecken object; its existence is checked with the
download lookups (:meth:`tecken_symbols.lookups.Lookups.find`, cached as for
Tecken downloads). A key whose bytes need a transform (CAB, gzip, tar member)
is answered from its derived object, written once on the first GET that
needs it. Found: GET answers 302 to storage, HEAD 200 (as Tecken downloads
do). Anything else, a failure included, is a 404: symsrv stops at a 5xx and
the .NET client disables a store after most non-404 errors."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import falcon
import markus

from tecken_shared.storage import StorageError
from tecken_symbols import identities
from tecken_symbols.context import AppContext
from tecken_symbols.db import DatabaseError
from tecken_symbols.download import NOT_FOUND
from tecken_symbols.errors import CORS_HEADERS
from tecken_symbols.identities import IndexEntry, TransformError
from tecken_symbols.storages import Backend

logger = logging.getLogger(__name__)
metrics = markus.get_metrics("tecken")

#: What can go wrong behind a lookup; answered 404, logged.
FAILURES = (StorageError, DatabaseError, TransformError, OSError, ValueError)


@dataclass(frozen=True)
class Found:
    entry: IndexEntry
    backend: Backend
    #: The key to redirect to: the stored object, or its derived object.
    key: str


class Resolver:
    """Turns a lookup key into the object answering it."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def answer(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        lookup_key: str,
        *,
        protocol: str,
        missing: tuple[str, str, str],
        max_size: int | None = None,
        headers: Callable[[Found], dict[str, str]] | None = None,
    ) -> str:
        """Answer ``lookup_key``: 302/200 with ``headers(found)``, 406 when
        its size is over ``max_size``, else 404 (a GET miss recorded as the
        missing symbol ``missing`` of ``protocol``). Returns the result tag
        of the ``protocol_download`` metric."""
        try:
            entry = self.ctx.lookups.identity(lookup_key)
            if entry is not None and max_size is not None and (entry.size or 0) > max_size:
                resp.status = falcon.HTTP_406
                resp.content_type = falcon.MEDIA_TEXT
                resp.text = f"The file is {entry.size} bytes, over the size limit asked for."
                return "too_big"
            found = (
                self.resolve(entry, materialise=req.method == "GET") if entry is not None else None
            )
        except FAILURES as exc:
            logger.error("%s lookup of %s failed: %s", protocol, lookup_key, exc)
            answer_not_found(resp)
            return "error"
        if found is None:
            if req.method == "GET":
                self.ctx.missing.record(*missing, protocol=protocol)
            answer_not_found(resp)
            return "miss"
        answer_found(req, resp, found, headers(found) if headers else {})
        return "hit"

    def resolve(self, entry: IndexEntry, *, materialise: bool) -> Found | None:
        """Where ``entry``'s bytes are; None when the stored object is gone.
        A derived object missing yet is written when ``materialise`` (GET),
        else the stored object stands for it (HEAD). Raises StorageError,
        TransformError."""
        lookups = self.ctx.lookups
        hit = lookups.find(entry.object_key, False)
        if hit is None:
            return None
        if entry.transform == identities.IDENTITY:
            return Found(entry, hit.backend, entry.object_key)
        derived = identities.derived_key(entry)
        done = lookups.find(derived, False)
        if done is not None:
            return Found(entry, done.backend, derived)
        if not materialise:
            return Found(entry, hit.backend, entry.object_key)
        with self._lock(derived):
            done = lookups.find(derived, False, refresh=True)
            if done is None:
                self._materialise(entry, hit.backend, derived)
        return Found(entry, self.ctx.storages.regular, derived)

    def _lock(self, key: str) -> threading.Lock:
        with self._locks_guard:
            if len(self._locks) > 1000:
                self._locks.clear()
            return self._locks.setdefault(key, threading.Lock())

    def read(self, entry: IndexEntry, backend: Backend) -> bytes:
        """The stored bytes of ``entry``'s object, at most
        ``SYMBOLS_IDENTITY_MAX_SIZE``. Raises StorageError, TransformError."""
        max_size = self.ctx.upload.identity_max_size
        with backend.storage.open(entry.object_key) as stream:
            data = stream.read(max_size + 1)
        if len(data) > max_size:
            raise TransformError(f"{entry.object_key} is larger than {max_size} bytes")
        return data

    def _materialise(self, entry: IndexEntry, backend: Backend, derived: str) -> None:
        with metrics.timer("identities.materialise"):
            data = self.read(entry, backend)
            max_size = self.ctx.upload.identity_max_size
            self.ctx.writer.put_derived(derived, identities.apply(entry.transform, data, max_size))
        logger.info("materialised %s from %s", derived, entry.object_key)


def answer_found(
    req: falcon.Request, resp: falcon.Response, found: Found, headers: dict[str, str]
) -> None:
    """302 to storage (GET) or 200 (HEAD), with ``headers``."""
    resp.set_headers(headers)
    resp.content_type = falcon.MEDIA_HTML
    if req.method == "HEAD":
        resp.status = falcon.HTTP_200
    else:
        resp.status = falcon.HTTP_302
        resp.set_header("Location", found.backend.download_url(found.key))


def answer_not_found(resp: falcon.Response, text: str = NOT_FOUND) -> None:
    resp.status = falcon.HTTP_404
    resp.content_type = falcon.MEDIA_TEXT
    resp.text = text


def start(resp: falcon.Response, ctx: AppContext) -> None:
    """The headers every protocol answer carries (as Tecken downloads)."""
    resp.set_headers(CORS_HEADERS)
    resp.set_headers(ctx.download_headers)


def timed(protocol: str, started: float, result: str) -> None:
    """The ``protocol_download`` timing of one answer started at ``started``."""
    metrics.timing(
        "protocol_download",
        (time.perf_counter() - started) * 1000,
        tags=[f"protocol:{protocol}", f"result:{result}"],
    )
