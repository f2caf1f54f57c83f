# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Tecken's ``/api/tokens/`` and ``/api/_auth/``, with a browser session or
an ``Auth-Token`` that holds ``manage_tokens``.

* ``GET /api/tokens/?state=active|expired|all`` (default active): ``{"tokens":
  [...], "permissions": [what the user may put on a token], "totals": {"all",
  "active", "expired"}}``, newest first. Keys are stored hashed, so ``key``
  is the first 8 characters followed by ``…``.
* ``POST /api/tokens/`` with form fields (or JSON) ``permissions`` (comma-
  separated permission ids or codenames), ``expires`` (days, default 365) and
  ``notes``: ``201 {"ok": true, "token": {..., "key": <the whole key, shown
  this once>}}``; a permission the user lacks is ``403 "<name> not a valid
  permission"``; ``upload_symbols`` with ``upload_try_symbols`` is 400.
* ``DELETE /api/tokens/token/{id}``: ``{"ok": true}`` (own tokens; a
  superuser's: any); 404 when not found.
* ``POST /api/tokens/token/{id}/extend`` with ``days`` (default 365):
  ``{"ok": true, "days": n}``.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import falcon

from tecken_symbols import accounts, tokens
from tecken_symbols.accounts import ALL_PERMISSIONS, MANAGE_TOKENS, AccountError
from tecken_symbols.auth import JSONError, Principal, authenticate
from tecken_symbols.context import AppContext
from tecken_symbols.people import store
from tecken_symbols.people.sessions import read_form

PERMISSION_NAMES = {
    "upload_symbols": "Upload Symbols Files",
    "upload_try_symbols": "Upload Try Symbols Files",
    "view_all_uploads": "View All Symbols Uploads",
    "manage_tokens": "Manage Your API Tokens",
    "manage_users": "Administer Users and Groups",
}
#: Stable numeric ids, as Tecken's permissions have.
PERMISSION_IDS = {codename: i + 1 for i, codename in enumerate(ALL_PERMISSIONS)}


def permission_json(codename: str) -> dict[str, Any]:
    return {
        "id": PERMISSION_IDS[codename],
        "codename": codename,
        "name": PERMISSION_NAMES.get(codename, codename),
    }


def token_json(token: tokens.Token, key: str | None = None) -> dict[str, Any]:
    return {
        "id": token.id,
        "key": key if key else f"{token.key_prefix}…",
        "expires_at": token.expires_at.isoformat(),
        "is_expired": token.is_expired(),
        "notes": token.notes,
        "permissions": [permission_json(p) for p in sorted(token.permissions)],
        "created_at": token.created_at.isoformat(),
        "last_used_at": None,
    }


def parse_permissions(value: str) -> list[str]:
    by_id = {str(v): k for k, v in PERMISSION_IDS.items()}
    result = []
    for part in value.split(","):
        part = part.strip()
        if part:
            result.append(by_id.get(part, part))
    return result


def parse_days(value: Any, default: float = tokens.DEFAULT_EXPIRATION_DAYS) -> float:
    if value in (None, ""):
        return default
    try:
        days = float(value)
    except (TypeError, ValueError) as exc:
        raise JSONError(falcon.HTTP_400, "expires/days must be a number of days") from exc
    if not 0 < days <= tokens.MAX_EXPIRATION_DAYS:
        raise JSONError(falcon.HTTP_400, f"days must be between 0 and {tokens.MAX_EXPIRATION_DAYS}")
    return days


def request_data(req: falcon.Request) -> dict[str, Any]:
    if (req.content_type or "").startswith("application/json"):
        try:
            data = json.loads(req.bounded_stream.read(64 * 1024) or b"{}")
        except ValueError as exc:
            raise JSONError(falcon.HTTP_400, "The body is not valid JSON") from exc
        if isinstance(data.get("permissions"), list):
            data["permissions"] = ",".join(str(p) for p in data["permissions"])
        return data if isinstance(data, dict) else {}
    return read_form(req)


def create_for(
    ctx: AppContext, principal: Principal, data: dict[str, Any]
) -> tuple[str, tokens.Token]:
    """Create a token from a form; raises JSONError with Tecken's answers."""
    wanted = parse_permissions(str(data.get("permissions") or ""))
    user = accounts.get_user(ctx.db, principal.user_id)
    assert user is not None
    held = accounts.user_permissions(ctx.db, user)
    for codename in wanted:
        if codename in PERMISSION_IDS and codename not in held:
            raise JSONError(falcon.HTTP_403, f"{PERMISSION_NAMES[codename]} not a valid permission")
    try:
        key, token = tokens.create_token(
            ctx.db,
            user.email,
            wanted,
            expires_days=parse_days(data.get("expires")),
            notes=str(data.get("notes") or "")[:1000],
        )
    except AccountError as exc:
        raise JSONError(falcon.HTTP_400, str(exc)) from exc
    store.audit(
        ctx.db,
        user,
        "token created",
        user.email,
        token_id=token.id,
        permissions=sorted(token.permissions),
    )
    return key, token


def owned_token(ctx: AppContext, principal: Principal, token_id: int) -> tokens.Token:
    token = tokens.get_token(ctx.db, token_id)
    if token is None or (token.user_id != principal.user_id and not principal.is_superuser):
        raise JSONError(falcon.HTTP_404, "Token not found")
    return token


def extend(ctx: AppContext, token: tokens.Token, days: float) -> None:
    ctx.db.execute(
        "UPDATE tokens SET expires_at = ? WHERE id = ?",
        (token.expires_at + timedelta(days=days), token.id),
    )


def _auth(req: falcon.Request, resp: falcon.Response, ctx: AppContext) -> Principal:
    if getattr(req.context, "session_principal", None) is not None and not req.get_header(
        "Auth-Token"
    ):
        return authenticate(req, resp, ctx.db)
    return authenticate(req, resp, ctx.db, any_of=(MANAGE_TOKENS,))


class TokensResource:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        principal = _auth(req, resp, self.ctx)
        state = req.get_param("state") or "active"
        if state not in ("active", "expired", "all"):
            raise JSONError(falcon.HTTP_400, "state must be active, expired or all")
        everything = tokens.list_tokens(self.ctx.db, principal.email, "all")
        totals = {
            "all": len(everything),
            "active": sum(not t.is_expired() for t in everything),
            "expired": sum(t.is_expired() for t in everything),
        }
        shown = [t for t in everything if state == "all" or (state == "expired") == t.is_expired()]
        user = accounts.get_user(self.ctx.db, principal.user_id)
        assert user is not None
        held = accounts.user_permissions(self.ctx.db, user)
        resp.media = {
            "tokens": [token_json(t) for t in shown],
            "permissions": [permission_json(p) for p in ALL_PERMISSIONS if p in held],
            "totals": totals,
        }

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        principal = _auth(req, resp, self.ctx)
        key, token = create_for(self.ctx, principal, request_data(req))
        resp.status = falcon.HTTP_201
        resp.media = {"ok": True, "token": token_json(token, key)}


class TokenResource:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def on_delete(self, req: falcon.Request, resp: falcon.Response, token_id: int) -> None:
        principal = _auth(req, resp, self.ctx)
        token = owned_token(self.ctx, principal, token_id)
        tokens.revoke_token(self.ctx.db, token.id)
        user = accounts.get_user(self.ctx.db, principal.user_id)
        store.audit(self.ctx.db, user, "token deleted", token.email, token_id=token.id)
        resp.media = {"ok": True}


class TokenExtendResource:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def on_post(self, req: falcon.Request, resp: falcon.Response, token_id: int) -> None:
        principal = _auth(req, resp, self.ctx)
        token = owned_token(self.ctx, principal, token_id)
        days = parse_days(request_data(req).get("days"))
        extend(self.ctx, token, days)
        resp.media = {"ok": True, "days": int(days) if days == int(days) else days}


class AuthInfoResource:
    """``GET /api/_auth/``: who is logged in (Tecken's shape)."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        user = getattr(req.context, "user", None)
        if user is None:
            resp.media = {"user": None, "sign_in_url": "/login"}
            return
        perms = accounts.user_permissions(self.ctx.db, user)
        resp.media = {
            "user": {
                "email": user.email,
                "is_active": user.is_active,
                "is_superuser": user.is_superuser,
                "permissions": [
                    {**permission_json(p), "codename": f"upload.{p}"}
                    for p in ALL_PERMISSIONS
                    if p in perms
                ],
            },
            "sign_out_url": "/logout",
            # For the static UI's own state-changing requests (same origin only).
            "csrf_token": req.context.session.csrf_token,
        }


def add_token_api_routes(app: falcon.App, ctx: AppContext) -> None:
    app.add_route("/api/tokens/", TokensResource(ctx))
    app.add_route("/api/tokens/token/{token_id:int}", TokenResource(ctx))
    app.add_route("/api/tokens/token/{token_id:int}/extend", TokenExtendResource(ctx))
    app.add_route("/api/_auth/", AuthInfoResource(ctx))
