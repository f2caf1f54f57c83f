# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The server-rendered pages: Home, Log in (local account and OpenID
Connect), Sign out (this browser or everywhere), invitations, API tokens,
Users with the audit log (superusers), Help and Stats. Forms post back with
the session's CSRF token; nothing needs JavaScript. Uploads, files, missing
symbols and symbol lookup stay in the static UI under ``/ui/``, which uses
the same session."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import falcon

from tecken_symbols import accounts, tokens
from tecken_symbols.accounts import ALL_PERMISSIONS, AccountError, User
from tecken_symbols.auth import JSONError, Principal
from tecken_symbols.context import AppContext
from tecken_symbols.people import charts, downloads, store
from tecken_symbols.people.html import (
    Raw,
    checkbox,
    esc,
    message,
    page,
    post_form,
    table,
)
from tecken_symbols.people.oidc import OIDC, LoginError
from tecken_symbols.people.sessions import (
    SessionSettings,
    clear_cookie,
    csrf_token,
    current_user,
    metrics,
    read_form,
    start_session,
)
from tecken_symbols.people.tokens_api import (
    PERMISSION_NAMES,
    create_for,
    extend,
    owned_token,
    parse_days,
)


@dataclass
class Pages:
    ctx: AppContext
    sessions: SessionSettings
    oidc: OIDC | None
    oidc_name: str
    login_max_attempts: int
    login_attempt_window: float
    invitation_lifetime: float

    def render(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        title: str,
        body: str,
        status: str = falcon.HTTP_200,
    ) -> None:
        page(resp, title, body, user=current_user(req), csrf=csrf_token(req), status=status)

    def log_in(self, req: falcon.Request, resp: falcon.Response, user: User, method: str) -> None:
        """A new session for ``user``; the session this browser had ends."""
        session = getattr(req.context, "session", None)
        if session is not None:
            store.delete_session(self.ctx.db, session.id)
        start_session(self.ctx.db, resp, user, method, self.sessions)

    def need_user(self, req: falcon.Request) -> User:
        user = current_user(req)
        if user is None:
            raise falcon.HTTPSeeOther("/login?next=" + quote(req.relative_uri, safe=""))
        return user

    def need_superuser(self, req: falcon.Request) -> User:
        user = self.need_user(req)
        if not user.is_superuser:
            raise JSONError(falcon.HTTP_403, "Forbidden: superusers only")
        return user


def safe_next(value: str | None) -> str:
    """Only local paths: never an open redirect."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def current(flag: bool) -> str:
    return ' aria-current="page"' if flag else ""


def perm_list(perms: frozenset[str] | set[str]) -> str:
    if not perms:
        return '<span class="muted">none</span>'
    return ", ".join(f'<span class="tag">{esc(p)}</span>' for p in ALL_PERMISSIONS if p in perms)


class HomePage:
    def __init__(self, p: Pages) -> None:
        self.p = p

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        user = current_user(req)
        if user is None:
            body = (
                "<p>Tecken's symbol server: upload and download debug symbols, see what is "
                "missing, look symbols up.</p>"
                '<p><a class="button" href="/login">Log in</a> to see your uploads and '
                "create API tokens. Downloads, missing symbols and symbol lookup need no login.</p>"
                '<ul><li><a href="/help">Help</a>: uploading from a build system, downloading, symbolicating.</li>'
                '<li><a href="/ui/#/lookup">Symbol lookup</a> · <a href="/ui/#/missing">Missing symbols</a></li></ul>'
            )
            self.p.render(req, resp, "Welcome", body)
            return
        db = self.p.ctx.db
        perms = accounts.user_permissions(db, user)
        groups = accounts.user_groups(db, user.id)
        steps = []
        if not perms:
            steps.append(
                "You have no permissions yet. Ask an administrator for upload permission "
                "(they grant it on the Users page); until then you can download and look up symbols."
            )
        if perms & {"upload_symbols", "upload_try_symbols"}:
            steps.append(
                Raw(
                    'Create an upload token on <a href="/tokens">API tokens</a>, then upload '
                    'from your build (see <a href="/help#upload">Help</a>).'
                )
            )
            steps.append(Raw('Your uploads are listed under <a href="/ui/#/uploads">Uploads</a>.'))
        if user.is_superuser:
            steps.append(
                Raw('Grant permissions and see the audit log on <a href="/users">Users</a>.')
            )
        items = "".join(f"<li>{esc(s) if not isinstance(s, Raw) else s}</li>" for s in steps)
        sessions = store.count_user_sessions(db, user.id)
        body = (
            f'<dl><dt>Signed in as</dt><dd id="email">{esc(user.email)}</dd>'
            f"<dt>Superuser</dt><dd>{'yes' if user.is_superuser else 'no'}</dd>"
            f"<dt>Groups</dt><dd>{esc(', '.join(groups) or 'none')}</dd>"
            f'<dt>Permissions</dt><dd id="permissions">{perm_list(perms)}</dd>'
            f"<dt>Open sessions</dt><dd>{sessions}</dd></dl>"
            f"<h3>What next</h3><ul>{items}</ul>"
            + post_form(
                "/logout/everywhere",
                csrf_token(req),
                '<button type="submit">Sign out everywhere</button> '
                '<span class="muted">(ends every session of yours, in every browser)</span>',
            )
        )
        self.p.render(req, resp, "Home", body)


class LoginPage:
    def __init__(self, p: Pages) -> None:
        self.p = p

    def form(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        error: str = "",
        status: str = falcon.HTTP_200,
        email: str = "",
    ) -> None:
        nxt = safe_next(req.get_param("next"))
        parts = []
        if error:
            parts.append(message(error, "error"))
        if self.p.oidc is not None:
            parts.append(
                f'<p><a class="button" id="oidc-login" href="/login/oidc?next={esc(quote(nxt, safe=""))}">'
                f'Log in with {esc(self.p.oidc_name)}</a></p><p class="muted">or with a local account:</p>'
            )
        parts.append(
            post_form(
                "/login?next=" + quote(nxt, safe=""),
                csrf_token(req),
                f'<label>Email <input type="email" name="email" autocomplete="username" required value="{esc(email)}"></label>'
                '<label>Password <input type="password" name="password" autocomplete="current-password" required></label>'
                '<button type="submit">Log in</button>',
                "stack",
            )
            + '<p class="muted">No password? A superuser can send you an invitation link, or an '
            "operator can run <code>tecken-symbols-admin set-password EMAIL</code>.</p>"
        )
        self.p.render(req, resp, "Log in", "".join(parts), status)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.form(req, resp)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        form = read_form(req)
        email = form.get("email", "").strip().lower()
        password = form.get("password", "")
        addr = req.remote_addr or ""
        db = self.p.ctx.db
        if store.too_many_attempts(
            db, email, addr, limit=self.p.login_max_attempts, window=self.p.login_attempt_window
        ):
            metrics.incr("people.login_refused", tags=["reason:rate_limited"])
            resp.set_header("Retry-After", str(int(self.p.login_attempt_window)))
            self.form(
                req,
                resp,
                "Too many failed logins; wait a while and try again.",
                falcon.HTTP_429,
                email,
            )
            return
        user = store.check_password(db, email, password)
        if user is None:
            store.record_failed_login(db, email, addr)
            metrics.incr("people.login_refused", tags=["reason:bad_password"])
            self.form(
                req,
                resp,
                "Wrong email or password (or the account is inactive).",
                falcon.HTTP_400,
                email,
            )
            return
        self.p.log_in(req, resp, user, "password")
        raise falcon.HTTPSeeOther(safe_next(req.get_param("next")))


class OIDCStart:
    def __init__(self, p: Pages) -> None:
        self.p = p

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self.p.oidc is None:
            raise falcon.HTTPSeeOther("/login")
        try:
            url, _state = self.p.oidc.start(safe_next(req.get_param("next")))
        except LoginError as exc:
            LoginPage(self.p).form(req, resp, str(exc), falcon.HTTP_502)
            return
        raise falcon.HTTPSeeOther(url)


class OIDCCallback:
    def __init__(self, p: Pages) -> None:
        self.p = p

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self.p.oidc is None:
            raise falcon.HTTPSeeOther("/login")
        if req.get_param("error"):
            LoginPage(self.p).form(
                req, resp, f"The identity provider said: {req.get_param('error')}", falcon.HTTP_400
            )
            return
        try:
            user, nxt = self.p.oidc.finish(
                req.get_param("state") or "", req.get_param("code") or ""
            )
        except (LoginError, AccountError) as exc:
            metrics.incr("people.login_refused", tags=["reason:oidc"])
            LoginPage(self.p).form(req, resp, str(exc), falcon.HTTP_400)
            return
        self.p.log_in(req, resp, user, "oidc")
        raise falcon.HTTPSeeOther(safe_next(nxt))


class Logout:
    def __init__(self, p: Pages, everywhere: bool) -> None:
        self.p = p
        self.everywhere = everywhere

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        session = getattr(req.context, "session", None)
        if session is not None:
            if self.everywhere:
                store.delete_user_sessions(self.p.ctx.db, session.user_id)
            else:
                store.delete_session(self.p.ctx.db, session.id)
        clear_cookie(resp, self.p.sessions)
        raise falcon.HTTPSeeOther("/login?signed_out=1")


class InvitePage:
    def __init__(self, p: Pages) -> None:
        self.p = p

    def invited(self, req: falcon.Request, resp: falcon.Response, key: str) -> User | None:
        """The invited user, or None after rendering a 404 page."""
        user = store.find_invitation(self.p.ctx.db, key)
        if user is None:
            self.p.render(
                req,
                resp,
                "Invitation",
                message("This invitation link is unknown, used or expired.", "error"),
                falcon.HTTP_404,
            )
        return user

    def on_get(self, req: falcon.Request, resp: falcon.Response, key: str) -> None:
        user = self.invited(req, resp, key)
        if user is not None:
            self._form(req, resp, key, user)

    def _form(
        self, req: falcon.Request, resp: falcon.Response, key: str, user: User, error: str = ""
    ) -> None:
        body = (message(error, "error") if error else "") + (
            f"<p>Choose a password for <strong>{esc(user.email)}</strong> (at least {store.MIN_PASSWORD_LENGTH} characters).</p>"
            + post_form(
                None,
                csrf_token(req),
                '<label>Password <input type="password" name="password" autocomplete="new-password" '
                'required></label><button type="submit">Set password and log in</button>',
                "stack",
            )
        )
        self.p.render(req, resp, "Invitation", body, falcon.HTTP_400 if error else falcon.HTTP_200)

    def on_post(self, req: falcon.Request, resp: falcon.Response, key: str) -> None:
        db = self.p.ctx.db
        user = self.invited(req, resp, key)
        if user is None:
            return
        try:
            store.set_password(db, user.email, read_form(req).get("password", ""))
        except AccountError as exc:
            self._form(req, resp, key, user, str(exc))
            return
        store.use_invitation(db, key)
        store.audit(db, user, "password set from invitation", user.email)
        self.p.log_in(req, resp, user, "password")
        raise falcon.HTTPSeeOther("/")


class TokensPage:
    def __init__(self, p: Pages) -> None:
        self.p = p

    def principal(self, req: falcon.Request) -> Principal:
        self.p.need_user(req)
        return req.context.session_principal

    def on_get(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        created: tuple[str, tokens.Token] | None = None,
        error: str = "",
    ) -> None:
        principal = self.principal(req)
        state = req.get_param("state") or "active"
        if state not in ("active", "expired", "all"):
            state = "active"
        everything = tokens.list_tokens(self.p.ctx.db, principal.email, "all")
        shown = [t for t in everything if state == "all" or (state == "expired") == t.is_expired()]
        csrf = csrf_token(req)
        parts = []
        if error:
            parts.append(message(error, "error"))
        if created:
            key, token = created
            parts.append(
                '<div class="created" role="status"><p><strong>Token created.</strong> Copy the key now: '
                "it is shown this once.</p>"
                f'<p><code id="new-key">{esc(key)}</code></p></div>'
            )
        perms = [p for p in ALL_PERMISSIONS if p in principal.permissions]
        if perms:
            boxes = "".join(checkbox("permissions", p, PERMISSION_NAMES[p]) for p in perms)
            parts.append(
                "<h3>New token</h3>"
                + post_form(
                    "/tokens",
                    csrf,
                    f"<fieldset><legend>Permissions</legend>{boxes}</fieldset>"
                    '<p class="muted">A token cannot hold both upload permissions.</p>'
                    '<label>Expires in (days) <input type="number" name="expires" value="365" min="1" max="36500"></label>'
                    '<label>Notes <input type="text" name="notes" maxlength="1000"></label>'
                    '<button type="submit">Create token</button>',
                    "stack",
                )
            )
        else:
            parts.append(
                message("You have no permissions a token could hold; ask an administrator.")
            )
        filters = " · ".join(
            f'<a href="/tokens?state={s}"{current(s == state)}>{s}</a>'
            for s in ("active", "expired", "all")
        )
        rows = []
        for t in shown:
            actions = Raw(
                post_form(
                    f"/tokens/{t.id}/extend",
                    csrf,
                    '<input type="hidden" name="days" value="365">'
                    f'<button type="submit" aria-label="Extend token {esc(t.key_prefix)} by a year">'
                    "Extend 1 year</button>",
                    "inline",
                )
                + " "
                + post_form(
                    f"/tokens/{t.id}/delete",
                    csrf,
                    f'<button type="submit" aria-label="Delete token {esc(t.key_prefix)}">Delete</button>',
                    "inline",
                )
            )
            rows.append(
                [
                    Raw(f"<code>{esc(t.key_prefix)}…</code>"),
                    Raw(perm_list(t.permissions)),
                    t.expires_at.strftime("%Y-%m-%d %H:%M")
                    + (" (expired)" if t.is_expired() else ""),
                    t.notes,
                    actions,
                ]
            )
        parts.append(f"<h3>Your tokens</h3><p>Show: {filters}</p>")
        parts.append(table(["Key", "Permissions", "Expires", "Notes", ""], rows))
        self.p.render(
            req, resp, "API tokens", "".join(parts), falcon.HTTP_400 if error else falcon.HTTP_200
        )

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        principal = self.principal(req)
        form = read_form(req)
        data = {
            "permissions": form.get("permissions[]", ""),
            "expires": form.get("expires"),
            "notes": form.get("notes", ""),
        }
        try:
            created = create_for(self.p.ctx, principal, data)
        except JSONError as exc:
            self.on_get(req, resp, error=exc.message)
            return
        self.on_get(req, resp, created=created)


class TokenAction:
    def __init__(self, p: Pages, action: str) -> None:
        self.p = p
        self.action = action

    def on_post(self, req: falcon.Request, resp: falcon.Response, token_id: int) -> None:
        self.p.need_user(req)
        principal = req.context.session_principal
        token = owned_token(self.p.ctx, principal, token_id)
        if self.action == "delete":
            tokens.revoke_token(self.p.ctx.db, token.id)
            store.audit(
                self.p.ctx.db, current_user(req), "token deleted", token.email, token_id=token.id
            )
        else:
            extend(self.p.ctx, token, parse_days(read_form(req).get("days")))
        raise falcon.HTTPSeeOther("/tokens")


def _user_counts(db: Any) -> dict[int, tuple[int, int]]:
    counts: dict[int, list[int]] = {}
    for row in db.fetchall("SELECT user_id, COUNT(*) AS n FROM tokens GROUP BY user_id"):
        counts.setdefault(int(row["user_id"]), [0, 0])[0] = int(row["n"])
    for row in db.fetchall("SELECT user_id, COUNT(*) AS n FROM uploads GROUP BY user_id"):
        counts.setdefault(int(row["user_id"]), [0, 0])[1] = int(row["n"])
    return {k: (v[0], v[1]) for k, v in counts.items()}


def audit_table(rows: list[dict[str, Any]]) -> str:
    return table(
        ["When", "Who", "What", "Target", "Details"],
        [
            [
                r["created_at"].strftime("%Y-%m-%d %H:%M:%S"),
                r["actor_email"],
                r["action"],
                r["target"],
                ", ".join(f"{k}={v}" for k, v in (r["details"] or {}).items()),
            ]
            for r in rows
        ],
    )


class UsersPage:
    def __init__(self, p: Pages) -> None:
        self.p = p

    def on_get(self, req: falcon.Request, resp: falcon.Response, notice: str = "") -> None:
        self.p.need_superuser(req)
        db = self.p.ctx.db
        q = (req.get_param("q") or "").strip().lower()
        counts = _user_counts(db)
        rows = []
        for u in accounts.list_users(db):
            if q and q not in u.email:
                continue
            n_tokens, n_uploads = counts.get(u.id, (0, 0))
            rows.append(
                [
                    Raw(f'<a href="/users/{u.id}">{esc(u.email)}</a>'),
                    "yes" if u.is_active else "NO (inactive)",
                    "yes" if u.is_superuser else "no",
                    ", ".join(accounts.user_groups(db, u.id)),
                    Raw(perm_list(accounts.user_permissions(db, u))),
                    n_tokens,
                    n_uploads,
                ]
            )
        csrf = csrf_token(req)
        body = (
            (notice and Raw(notice))
            + f'<form method="get" action="/users" role="search"><label>Email contains <input type="search" name="q" value="{esc(q)}"></label><button type="submit">Search</button></form>'
            + table(
                ["Email", "Active", "Superuser", "Groups", "Permissions", "Tokens", "Uploads"], rows
            )
            + "<h3>Invite someone</h3>"
            + post_form(
                "/users/invite",
                csrf,
                '<label>Email <input type="email" name="email" required></label>'
                '<button type="submit">Create invitation link</button>',
            )
            + "<h3>Audit log</h3>"
            + audit_table(store.audit_entries(db, limit=50))
        )
        self.p.render(req, resp, "Users", body)


class InviteCreate:
    def __init__(self, p: Pages) -> None:
        self.p = p

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        actor = self.p.need_superuser(req)
        db = self.p.ctx.db
        email = read_form(req).get("email", "")
        try:
            user = accounts.get_user_by_email(db, accounts.normalize_email(email))
            if user is None:
                user = accounts.create_user(db, email)
                store.audit(db, actor, "user created", user.email)
        except AccountError as exc:
            UsersPage(self.p).on_get(req, resp, notice=message(str(exc), "error"))
            return
        key = store.create_invitation(db, user, actor, lifetime=self.p.invitation_lifetime)
        store.audit(db, actor, "invitation created", user.email)
        link = f"{self.p.ctx.public_url}/invite/{key}"
        notice = (
            f'<div class="created" role="status"><p>Invitation for {esc(user.email)} (shown once; send it to them):</p>'
            f'<p><code id="invite-link">{esc(link)}</code></p></div>'
        )
        UsersPage(self.p).on_get(req, resp, notice=notice)


class UserPage:
    def __init__(self, p: Pages) -> None:
        self.p = p

    def on_get(
        self, req: falcon.Request, resp: falcon.Response, user_id: int, notice: str = ""
    ) -> None:
        self.p.need_superuser(req)
        db = self.p.ctx.db
        user = accounts.get_user(db, user_id)
        if user is None:
            raise JSONError(falcon.HTTP_404, "User not found")
        groups = accounts.user_groups(db, user.id)
        direct = {
            r["permission"]
            for r in db.fetchall(
                "SELECT permission FROM user_permissions WHERE user_id = ?", (user.id,)
            )
        }
        gboxes = "".join(
            checkbox("groups", g, g, g in groups, ", ".join(perms))
            for g, perms in accounts.list_groups(db).items()
        )
        pboxes = "".join(
            checkbox("permissions", p, PERMISSION_NAMES[p], p in direct) for p in ALL_PERMISSIONS
        )
        user_tokens = tokens.list_tokens(db, user.email, "all")
        uploads = int(
            db.fetchval("SELECT COUNT(*) FROM uploads WHERE user_id = ?", (user.id,)) or 0
        )
        body = (
            notice
            + f"<dl><dt>Email</dt><dd>{esc(user.email)}</dd><dt>Effective permissions</dt><dd>{perm_list(accounts.user_permissions(db, user))}</dd>"
            f"<dt>Uploads</dt><dd>{uploads}</dd><dt>Last login</dt><dd>{esc(user.last_login or 'never')}</dd></dl>"
            + post_form(
                None,
                csrf_token(req),
                f"<fieldset><legend>Groups</legend>{gboxes}</fieldset>"
                f"<fieldset><legend>Direct permissions</legend>{pboxes}</fieldset>"
                + checkbox(
                    "is_active",
                    "1",
                    "Active",
                    user.is_active,
                    "inactive: sessions end and tokens stop at once",
                )
                + '<button type="submit">Save</button>',
                "stack",
            )
            + "<h3>Tokens</h3>"
            + table(
                ["Key", "Permissions", "Expires", "Notes"],
                [
                    [
                        Raw(f"<code>{esc(t.key_prefix)}…</code>"),
                        Raw(perm_list(t.permissions)),
                        t.expires_at.strftime("%Y-%m-%d"),
                        t.notes,
                    ]
                    for t in user_tokens
                ],
            )
            + "<h3>Audit log</h3>"
            + audit_table(store.audit_entries(db, target=user.email))
        )
        self.p.render(req, resp, f"User {user.email}", body)

    def on_post(self, req: falcon.Request, resp: falcon.Response, user_id: int) -> None:
        actor = self.p.need_superuser(req)
        db = self.p.ctx.db
        user = accounts.get_user(db, user_id)
        if user is None:
            raise JSONError(falcon.HTTP_404, "User not found")
        form = read_form(req)
        want_groups = set(filter(None, form.get("groups[]", "").split(",")))
        want_perms = set(filter(None, form.get("permissions[]", "").split(",")))
        active = form.get("is_active") == "1"
        have_groups = set(accounts.user_groups(db, user.id))
        have_perms = {
            r["permission"]
            for r in db.fetchall(
                "SELECT permission FROM user_permissions WHERE user_id = ?", (user.id,)
            )
        }
        changes = []
        try:
            with db.transaction():
                for g in sorted(want_groups - have_groups):
                    accounts.add_to_group(db, user.email, g)
                    changes.append(("group added", g))
                for g in sorted(have_groups - want_groups):
                    accounts.remove_from_group(db, user.email, g)
                    changes.append(("group removed", g))
                for p in sorted(want_perms - have_perms):
                    accounts.grant_permission(db, user.email, p)
                    changes.append(("permission granted", p))
                for p in sorted(have_perms - want_perms):
                    accounts.revoke_permission(db, user.email, p)
                    changes.append(("permission revoked", p))
                if active != user.is_active:
                    if active:
                        accounts.set_active(db, user.email, True)
                    else:
                        store.deactivate(db, user.id)
                    changes.append(("activated" if active else "deactivated", ""))
                for action, what in changes:
                    store.audit(db, actor, action, user.email, **({"name": what} if what else {}))
        except AccountError as exc:
            self.on_get(req, resp, user_id, notice=message(str(exc), "error"))
            return
        self.on_get(
            req, resp, user_id, notice=message(f"Saved: {len(changes)} change(s).", "status")
        )


class StatsPage:
    def __init__(self, p: Pages) -> None:
        self.p = p

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        user = current_user(req)
        try:
            days = int(req.get_param("days") or 30)
        except ValueError:
            days = 30
        days = 90 if days == 90 else 30
        db = self.p.ctx.db
        body = [
            f'<p>Show: <a href="/stats?days=30"{current(days == 30)}>30 days</a> · '
            f'<a href="/stats?days=90"{current(days == 90)}>90 days</a></p>'
        ]
        if user is not None:
            principal = req.context.session_principal
            everyone = principal.has_perm("view_all_uploads")
            series = charts.uploads_per_day(db, days, None if everyone else user.id)
            who = "all users" if everyone else "you"
            body.append(
                f"<h3>Uploads per day ({esc(who)})</h3>"
                + charts.bar_chart(series, "count", "uploads")
            )
            body.append(
                f"<h3>Bytes uploaded per day ({esc(who)})</h3>"
                + charts.bar_chart(series, "bytes", "bytes")
            )
            if user.is_superuser:
                body.append(
                    "<h3>Uploads per user</h3>"
                    + table(
                        ["User", "Uploads", "Bytes"],
                        [
                            [r["email"], r["n"], charts.human_bytes(r["bytes"])]
                            for r in charts.uploads_per_user(db, days)
                        ],
                    )
                )
        else:
            body.append(message("Log in to see upload statistics."))
        body.append(
            "<h3>Downloads found and missing per day</h3>"
            + charts.bar_chart(
                downloads.per_day(db, days),
                [("found", "found"), ("missing", "missing")],
                "downloads",
            )
        )
        missing = charts.missing_per_day(db, days)
        body.append(
            "<h3>Missing symbols first seen per day</h3>"
            + charts.bar_chart(missing, "count", "missing symbols")
        )
        body.append(
            "<h3>Most requested missing modules</h3>"
            + table(
                ["Debug file", "Requests", "Distinct ids"],
                [[r["debug_file"], r["total"], r["ids"]] for r in charts.top_missing(db, days)],
            )
        )
        self.p.render(req, resp, "Stats", "".join(body))
