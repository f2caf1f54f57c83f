# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""``Auth-Token`` authentication and permission checks for Falcon resources.

Use from a resource that has a ``ctx`` attribute (the :class:`AppContext`)::

    class UploadResource:
        def __init__(self, ctx):
            self.ctx = ctx

        @falcon.before(require_permission(UPLOAD_SYMBOLS, UPLOAD_TRY_SYMBOLS, drain_body=True))
        def on_post(self, req, resp):
            principal = req.context.principal  # a Principal
            ...

or call :func:`authenticate` directly. Refusals are ``403`` with Tecken's exact
JSON bodies (``{"error": "API Token not matched"}`` and so on); Tecken never
answers 401. With ``drain_body=True`` the request body is read and discarded
before a 403, so a proxy in front does not cut a chunked upload off before the
client sees the answer. Responses to requests that carried a token get
``Vary: Auth-Token``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import falcon

from tecken_symbols import accounts, tokens
from tecken_symbols.db import Database, DatabaseError
from tecken_symbols.errors import JSONError

logger = logging.getLogger(__name__)

NO_TOKEN = "This requires an Auth-Token to authenticate the request"
NOT_MATCHED = "API Token not matched"
EXPIRED = "API Token found but expired"
INACTIVE = "API Token matched but user not active"
FORBIDDEN = "Forbidden"

DRAIN_CHUNK = 256 * 1024


class Forbidden(JSONError):
    def __init__(self, message: str) -> None:
        super().__init__(falcon.HTTP_403, message)


@dataclass(frozen=True)
class Principal:
    """Who is making the request and what they may do (for this request)."""

    user_id: int
    email: str
    is_superuser: bool
    permissions: frozenset[str]
    token_id: int
    token_expires_at: datetime
    preferred_upload_api_version: int = 1

    def has_perm(self, permission: str) -> bool:
        return permission in self.permissions

    def has_any(self, *permissions: str) -> bool:
        return any(p in self.permissions for p in permissions)


def drain_body(req: falcon.Request, limit: int | None = None) -> int:
    """Read and discard the request body (up to ``limit`` bytes); returns the
    number of bytes read. Errors reading are ignored: the answer matters more."""
    total = 0
    try:
        stream = req.bounded_stream
        while True:
            chunk = stream.read(DRAIN_CHUNK)
            if not chunk:
                break
            total += len(chunk)
            if limit is not None and total >= limit:
                break
    except Exception as exc:
        logger.info("could not drain request body: %s", exc)
    return total


def principal_for_key(db: Database, header_value: str) -> Principal:
    """Resolve an ``Auth-Token`` header value; raises :class:`Forbidden`."""
    key = tokens.key_from_header(header_value)
    token = tokens.find_by_key(db, key) if key else None
    if token is None:
        raise Forbidden(NOT_MATCHED)
    if token.is_expired():
        raise Forbidden(EXPIRED)
    user = accounts.get_user(db, token.user_id)
    if user is None or not user.is_active:
        raise Forbidden(INACTIVE)
    try:
        tokens.touch(db, token.id)
    except DatabaseError as exc:  # bookkeeping only
        logger.warning("could not record the use of token %s: %s", token.id, exc)
    return Principal(
        user_id=user.id,
        email=user.email,
        is_superuser=user.is_superuser,
        permissions=tokens.effective_permissions(db, token, user),
        token_id=token.id,
        token_expires_at=token.expires_at,
        preferred_upload_api_version=token.preferred_upload_api_version,
    )


def authenticate(
    req: falcon.Request,
    resp: falcon.Response,
    db: Database,
    *,
    any_of: tuple[str, ...] = (),
    drain: bool = False,
) -> Principal:
    """Authenticate the request by its ``Auth-Token`` and require at least one of
    ``any_of`` (none: just a valid token). Sets ``req.context.principal``.
    Raises :class:`Forbidden` (after draining the body when ``drain``)."""
    header = req.get_header("Auth-Token")
    try:
        session_principal = getattr(req.context, "session_principal", None)
        if not header and session_principal is not None:
            # A browser session (tecken_symbols.people.sessions), CSRF-checked already.
            principal = session_principal
        elif not header:
            raise Forbidden(NO_TOKEN)
        else:
            resp.append_header("Vary", "Auth-Token")
            principal = principal_for_key(db, header)
        if any_of and not principal.has_any(*any_of):
            raise Forbidden(FORBIDDEN)
    except Forbidden:
        if drain:
            drain_body(req)
        raise
    req.context.principal = principal
    return principal


def require_permission(
    *any_of: str, drain_body: bool = False
) -> Callable[[falcon.Request, falcon.Response, Any, dict], None]:
    """A ``falcon.before`` hook: the request needs a valid token with at least
    one of ``any_of``. The resource must have ``ctx`` (the AppContext)."""

    def hook(req: falcon.Request, resp: falcon.Response, resource: Any, params: dict) -> None:
        authenticate(req, resp, resource.ctx.db, any_of=tuple(any_of), drain=drain_body)

    return hook
