# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Microsoft symbol-server (symsrv) and SSQP downloads from the same store:
``/symsrv/<name>/<id>/<file>`` and ``/ssqp/<name>/<id>/<file>``.

Keys are looked up without case in the identity index:
``name.pdb/<GUID><age>/name.pdb`` (or ``name.pd_``), ``name.dll/<TIMESTAMP>
<size>/name.dll`` (or ``name.dl_``) and, for SSQP, ``name/elf-buildid-<id>/
name``, ``_.debug/elf-buildid-sym-<id>/_.debug``, ``name/mach-uuid-<uuid>/
name`` and ``_.dwarf/mach-uuid-sym-<uuid>/_.dwarf``. The plain ``.pdb`` is
served even when only ``.pd_`` was uploaded (expanded once). Two-tier paths
(``/symsrv/na/name.pdb/...``) are answered too; ``index2.txt`` is a 404
(the store is one-tier), ``pingme.txt`` a 200 and ``file.ptr`` a 404."""

from __future__ import annotations

import re
import time

import falcon

from tecken_symbols import identities
from tecken_symbols.context import AppContext
from tecken_symbols.download import IGNORED, MAX_KEY_LENGTH, valid_name
from tecken_symbols.protocol_answers import Resolver, answer_not_found, start, timed

SYMSRV = "symsrv"
SSQP = "ssqp"
#: The middle part of a key: hex ids and SSQP's prefixed ones.
ID_RE = re.compile(r"[0-9A-Za-z-]{1,100}")


class SymstoreResource:
    """``/<prefix>/[<tier>/]<name>/<id>/<file>`` for one protocol."""

    def __init__(self, ctx: AppContext, resolver: Resolver, protocol: str) -> None:
        self.ctx = ctx
        self.resolver = resolver
        self.protocol = protocol

    def _answer(
        self, req: falcon.Request, resp: falcon.Response, name: str, some_id: str, file: str
    ) -> str:
        if file.lower() in ("file.ptr", "refs.ptr"):
            answer_not_found(resp, IGNORED)
            return "ignored"
        lookup_key = identities.symstore_key(name, some_id, file)
        if not (
            valid_name(name)
            and valid_name(file)
            and ID_RE.fullmatch(some_id)
            and len(lookup_key) <= MAX_KEY_LENGTH
        ):
            answer_not_found(resp)
            return "miss"
        return self.resolver.answer(
            req,
            resp,
            lookup_key,
            protocol=self.protocol,
            missing=(name, some_id.upper(), file),
        )

    def on_get(self, req: falcon.Request, resp: falcon.Response, **parts: str) -> None:
        """``parts``: p1..p3 (``name/id/file``) or p1..p4 (``tier/name/id/file``)."""
        started = time.perf_counter()
        start(resp, self.ctx)
        segments = [parts[f"p{i}"] for i in range(1, len(parts) + 1)]
        tier = segments.pop(0) if len(segments) == 4 else None
        name, some_id, file = segments
        if tier is not None and tier.lower() != identities.symstore_tier(name):
            answer_not_found(resp)
            result = "miss"
        else:
            result = self._answer(req, resp, name, some_id, file)
        timed(self.protocol, started, result)

    def on_head(self, req: falcon.Request, resp: falcon.Response, **parts: str) -> None:
        self.on_get(req, resp, **parts)


class StoreFileResource:
    """``/<prefix>/<file>``: ``pingme.txt`` (200: this is a store) and
    ``index2.txt`` (404: one tier); anything else 404."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response, p1: str) -> None:
        start(resp, self.ctx)
        if p1.lower() == "pingme.txt":
            resp.status = falcon.HTTP_200
            resp.content_type = falcon.MEDIA_TEXT
            resp.text = ""
            return
        answer_not_found(resp)

    def on_head(self, req: falcon.Request, resp: falcon.Response, p1: str) -> None:
        self.on_get(req, resp, p1)


def add_symstore_routes(app: falcon.App, ctx: AppContext) -> None:
    resolver = Resolver(ctx)
    for protocol in (SYMSRV, SSQP):
        resource = SymstoreResource(ctx, resolver, protocol)
        app.add_route(f"/{protocol}/{{p1}}/{{p2}}/{{p3}}", resource)
        app.add_route(f"/{protocol}/{{p1}}/{{p2}}/{{p3}}/{{p4}}", resource)
        app.add_route(f"/{protocol}/{{p1}}", StoreFileResource(ctx))
