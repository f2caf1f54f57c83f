# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Installs the session middleware, the pages and ``/api/tokens/``."""

from __future__ import annotations

import logging
import threading

import falcon

from tecken_symbols.context import AppContext
from tecken_symbols.people.help import HelpPage
from tecken_symbols.people.oidc import OIDC, OIDCSettings
from tecken_symbols.people.pages import (
    HomePage,
    InviteCreate,
    InvitePage,
    LoginPage,
    Logout,
    OIDCCallback,
    OIDCStart,
    Pages,
    StatsPage,
    TokenAction,
    TokensPage,
    UserPage,
    UsersPage,
)
from tecken_symbols.people.sessions import SessionMiddleware, SessionSettings
from tecken_symbols.people.symbolicate import SymbolicatePage
from tecken_symbols.people.tokens_api import add_token_api_routes

logger = logging.getLogger(__name__)


def build_oidc(ctx: AppContext) -> OIDC | None:
    config = ctx.people
    if not config.oidc_issuer:
        return None
    return OIDC(
        OIDCSettings(
            issuer=config.oidc_issuer,
            client_id=config.oidc_client_id,
            client_secret=config.oidc_client_secret,
            scopes=config.oidc_scopes,
            allowed_domains=config.oidc_allowed_email_domains,
            redirect_uri=ctx.public_url + "/oidc/callback",
            timeout=config.oidc_timeout,
            revalidate_interval=config.oidc_revalidate_interval,
        ),
        ctx.db,
    )


def start_revalidation(oidc: OIDC) -> threading.Thread:
    """A daemon thread re-validating stale OIDC users (every interval / 24,
    at most hourly), so users who never come back by browser are checked too."""
    wait = min(3600.0, max(5.0, oidc.settings.revalidate_interval / 24))

    def loop() -> None:
        while True:
            try:
                oidc.revalidate_stale()
            except Exception:  # noqa: BLE001 - keep the thread alive
                logger.exception("re-validation of OIDC users failed")
            threading.Event().wait(wait)

    thread = threading.Thread(target=loop, name="oidc-revalidate", daemon=True)
    thread.start()
    return thread


def add_people_routes(app: falcon.App, ctx: AppContext) -> None:
    config = ctx.people
    sessions = SessionSettings(
        idle=config.session_idle_lifetime,
        absolute=config.session_absolute_lifetime,
        secure=config.session_cookie_secure,
    )
    oidc = build_oidc(ctx)
    if oidc is not None:
        start_revalidation(oidc)
    app.add_middleware(SessionMiddleware(ctx.db, sessions, oidc))
    p = Pages(
        ctx=ctx,
        sessions=sessions,
        oidc=oidc,
        oidc_name=config.oidc_provider_name,
        login_max_attempts=config.login_max_attempts,
        login_attempt_window=config.login_attempt_window,
        invitation_lifetime=config.invitation_lifetime,
    )
    app.add_route("/", HomePage(p))
    app.add_route("/login", LoginPage(p))
    app.add_route("/login/oidc", OIDCStart(p))
    app.add_route("/oidc/callback", OIDCCallback(p))
    app.add_route("/logout", Logout(p, everywhere=False))
    app.add_route("/logout/everywhere", Logout(p, everywhere=True))
    app.add_route("/invite/{key}", InvitePage(p))
    app.add_route("/tokens", TokensPage(p))
    app.add_route("/tokens/{token_id:int}/delete", TokenAction(p, "delete"))
    app.add_route("/tokens/{token_id:int}/extend", TokenAction(p, "extend"))
    app.add_route("/users", UsersPage(p))
    app.add_route("/users/invite", InviteCreate(p))
    app.add_route("/users/{user_id:int}", UserPage(p))
    app.add_route("/stats", StatsPage(p))
    app.add_route("/help", HelpPage(p, config.eliot_url))
    app.add_route("/symbolicate", SymbolicatePage(p, config.eliot_url))
    add_token_api_routes(app, ctx)
