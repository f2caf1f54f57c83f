# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Browser sessions and CSRF protection, as Falcon middleware.

Every request that carries the session cookie (and no ``Auth-Token``) is
resolved to its live session and user: ``req.context.session``,
``req.context.user`` and ``req.context.session_principal`` (which
:func:`tecken_symbols.auth.authenticate` accepts like a token, with all the
user's permissions). A state-changing request (not GET, HEAD or OPTIONS) made
with a session must carry the session's CSRF token, in an ``X-CSRF-Token``
header, a ``csrf_token`` form field or query parameter, or it is refused with
403. Requests with an ``Auth-Token`` are untouched."""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import falcon
import markus

from tecken_symbols import accounts
from tecken_symbols.accounts import User
from tecken_symbols.auth import JSONError, Principal
from tecken_symbols.db import Database
from tecken_symbols.people import store
from tecken_symbols.people.oidc import OIDC

logger = logging.getLogger(__name__)
metrics = markus.get_metrics("tecken")

COOKIE = "tecken_session"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
CSRF_REFUSED = "CSRF token missing or wrong: reload the page and try again"
MAX_FORM = 64 * 1024


@dataclass
class SessionSettings:
    idle: float
    absolute: float
    secure: bool


class SessionMiddleware:
    def __init__(self, db: Database, settings: SessionSettings, oidc: OIDC | None) -> None:
        self.db = db
        self.settings = settings
        self.oidc = oidc

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.session = None
        req.context.user = None
        req.context.session_principal = None
        req.context.form = None
        if req.get_header("Auth-Token"):
            return
        key = req.cookies.get(COOKIE)
        if not key:
            return
        session = store.find_session(self.db, key, idle=self.settings.idle)
        if session is None:
            clear_cookie(resp, self.settings)
            return
        user = accounts.get_user(self.db, session.user_id)
        if user is None or not user.is_active:
            store.delete_session(self.db, session.id)
            clear_cookie(resp, self.settings)
            return
        if session.method == "oidc" and self.oidc is not None:
            stale = store.stale_oidc_users(self.db, self.oidc.settings.revalidate_interval, user.id)
            if user.id in stale and not self.oidc.revalidate(user.id):
                clear_cookie(resp, self.settings)
                return
            if store.get_session_by_id(self.db, session.id) is None:
                clear_cookie(resp, self.settings)
                return
        req.context.session = session
        req.context.user = user
        req.context.session_principal = Principal(
            user_id=user.id,
            email=user.email,
            is_superuser=user.is_superuser,
            permissions=accounts.user_permissions(self.db, user),
            token_id=0,
            token_expires_at=session.expires_at,
        )
        if req.method not in SAFE_METHODS:
            self._check_csrf(req, session.csrf_token)

    def _check_csrf(self, req: falcon.Request, expected: str) -> None:
        given = req.get_header("X-CSRF-Token") or req.get_param("csrf_token") or ""
        if not given and (req.content_type or "").startswith("application/x-www-form-urlencoded"):
            form = read_form(req)
            given = form.get("csrf_token", "")
        if not given or not hmac.compare_digest(given, expected):
            metrics.incr("people.csrf_refused")
            raise JSONError(falcon.HTTP_403, CSRF_REFUSED)


def read_form(req: falcon.Request) -> dict[str, str]:
    """The URL-encoded form body (read once, kept on ``req.context.form``)."""
    if getattr(req.context, "form", None) is not None:
        return req.context.form
    form: dict[str, str] = {}
    if (req.content_type or "").startswith("application/x-www-form-urlencoded"):
        body = req.bounded_stream.read(MAX_FORM + 1)
        if len(body) > MAX_FORM:
            raise JSONError(falcon.HTTP_413, "Form too large")
        parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        form = {k: v[-1] for k, v in parsed.items()}
        form.update({f"{k}[]": ",".join(v) for k, v in parsed.items()})
    req.context.form = form
    return form


def set_cookie(resp: falcon.Response, key: str, settings: SessionSettings) -> None:
    resp.set_cookie(
        COOKIE,
        key,
        max_age=int(settings.absolute),
        path="/",
        secure=settings.secure,
        http_only=True,
        same_site="Lax",
    )


def clear_cookie(resp: falcon.Response, settings: SessionSettings) -> None:
    resp.unset_cookie(COOKIE, path="/", same_site="Lax")


def start_session(
    db: Database, resp: falcon.Response, user: User, method: str, settings: SessionSettings
) -> None:
    key, _session = store.create_session(db, user, method, absolute=settings.absolute)
    set_cookie(resp, key, settings)
    metrics.incr("people.login", tags=[f"method:{method}"])


def current_user(req: falcon.Request) -> User | None:
    return getattr(req.context, "user", None)


def csrf_token(req: falcon.Request) -> str:
    session: Any = getattr(req.context, "session", None)
    return session.csrf_token if session else ""
