# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Logins, sessions, CSRF, /api/tokens/ and user management (issue 12),
through the WSGI app; OpenID Connect against a real provider process."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import webtest

from tecken_symbols import accounts, tokens
from tecken_symbols.cli import main as admin
from tecken_symbols.people import store
from tecken_symbols.upload.testing import make_token

PASSWORD = "correct horse battery"
#: Plain HTTP in the tests, as in local development: no Secure cookie.
LOCAL = {"SYMBOLS_SESSION_COOKIE_SECURE": "false"}


@pytest.fixture
def svc(make_service, database_url):
    """On SQLite and PostgreSQL."""
    return make_service({"SYMBOLS_LOGIN_MAX_ATTEMPTS": "3", **LOCAL}, database_url=database_url)


def add_user(svc, email, password=PASSWORD, *, groups=(), superuser=False):
    db = svc.ctx.db
    accounts.create_user(db, email, is_superuser=superuser)
    for g in groups:
        accounts.add_to_group(db, email, g)
    store.set_password(db, email, password)
    return accounts.get_user_by_email(db, email)


def browser(svc) -> webtest.TestApp:
    """Another browser (its own cookie jar) on the same app."""
    return webtest.TestApp(svc.app.app)


def login(app, email, password=PASSWORD, status=303):
    return app.post("/login", {"email": email, "password": password}, status=status)


def csrf(app, path="/") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', app.get(path).text).group(1)


def test_set_password_cli_and_local_login(svc, monkeypatch, tmp_path, capsys):
    accounts.create_user(svc.ctx.db, "a@example.com")
    monkeypatch.setenv("TECKEN_PASSWORD", PASSWORD)
    url = svc.ctx.db.url
    assert admin(["--database-url", url, "set-password", "a@example.com"]) == 0
    assert "password set" in capsys.readouterr().out
    app = svc.app
    resp = login(app, "a@example.com")
    cookie = resp.headers["Set-Cookie"]
    assert "tecken_session=" in cookie and "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie and "Secure" not in cookie
    home = app.get("/")
    assert "a@example.com" in home.text and "no permissions yet" in home.text
    assert "default-src 'none'" in home.headers["Content-Security-Policy"]
    # The hash is argon2, never the password.
    stored = svc.ctx.db.fetchval("SELECT password_hash FROM users WHERE email = 'a@example.com'")
    assert stored.startswith("$argon2") and PASSWORD not in stored


def test_session_cookie_is_secure_by_default(make_service):
    svc = make_service()
    add_user(svc, "sec@example.com")
    cookie = login(svc.app, "sec@example.com").headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_wrong_password_and_rate_limit(svc):
    add_user(svc, "b@example.com")
    app = browser(svc)
    for _ in range(3):
        assert "Wrong email or password" in login(app, "b@example.com", "nope", status=400).text
    resp = login(app, "b@example.com", status=429)  # even the right password, for a while
    assert "Too many failed logins" in resp.text and resp.headers["Retry-After"]


def test_csrf_required_with_a_session_not_with_a_token(svc):
    add_user(svc, "up@example.com", groups=["Uploaders"])
    app = browser(svc)
    login(app, "up@example.com")
    # A form post without the token: refused.
    resp = app.post("/tokens", {"permissions": "upload_symbols"}, status=403)
    assert (
        resp.json == {"error": re.sub(r"", "", resp.json["error"])} and "CSRF" in resp.json["error"]
    )
    resp = app.post("/api/tokens/", {"permissions": "1"}, status=403)
    assert "CSRF" in resp.json["error"]
    # With it: created.
    token = csrf(app, "/tokens")
    resp = app.post(
        "/tokens", {"permissions": "upload_symbols", "csrf_token": token, "notes": "ci"}
    )
    key = re.search(r'id="new-key">([0-9a-f]{32})<', resp.text).group(1)
    # The key works for uploads' who-am-I, and API-token requests need no CSRF token.
    info = webtest.TestApp(svc.app.app).post("/upload/auth_info/", headers={"Auth-Token": key})
    assert info.json["email"] == "up@example.com"
    assert app.post(
        "/api/tokens/", {"permissions": "1"}, headers={"X-CSRF-Token": token}, status=201
    )


def test_tecken_token_api_shapes(svc):
    add_user(svc, "t@example.com", groups=["Uploaders"])
    manage = make_token(svc.ctx, ["manage_tokens"], email="t@example.com")
    api = webtest.TestApp(svc.app.app, extra_environ={"HTTP_AUTH_TOKEN": manage})
    listing = api.get("/api/tokens/").json
    assert set(listing) == {"tokens", "permissions", "totals"}
    assert listing["totals"] == {"all": 1, "active": 1, "expired": 0}
    assert {p["codename"] for p in listing["permissions"]} == {
        "upload_symbols",
        "upload_try_symbols",
        "manage_tokens",
    }
    one = listing["tokens"][0]
    assert {"id", "expires_at", "is_expired", "key", "permissions", "notes", "created_at"} <= set(
        one
    )
    assert one["key"].endswith("…") and one["permissions"][0]["name"] == "Manage Your API Tokens"
    ids = {p["codename"]: p["id"] for p in listing["permissions"]}
    # Create with Tecken's form fields: permission ids, expires in days, notes.
    created = api.post(
        "/api/tokens/",
        {"permissions": str(ids["upload_symbols"]), "expires": "10", "notes": "build"},
        status=201,
    ).json
    assert created["ok"] is True and len(created["token"]["key"]) == 32
    assert created["token"]["notes"] == "build"
    # Never both upload permissions; never one the user lacks.
    both = f"{ids['upload_symbols']},{ids['upload_try_symbols']}"
    assert "both" in api.post("/api/tokens/", {"permissions": both}, status=400).json["error"]
    resp = api.post("/api/tokens/", {"permissions": "view_all_uploads"}, status=403)
    assert resp.json == {"error": "View All Symbols Uploads not a valid permission"}
    # Extend, filter, delete.
    tid = created["token"]["id"]
    before = tokens.get_token(svc.ctx.db, tid).expires_at
    assert api.post(f"/api/tokens/token/{tid}/extend", {"days": "30"}).json == {
        "ok": True,
        "days": 30,
    }
    assert (tokens.get_token(svc.ctx.db, tid).expires_at - before).days == 30
    assert api.get("/api/tokens/?state=expired").json["tokens"] == []
    assert len(api.get("/api/tokens/?state=all").json["tokens"]) == 2
    assert api.delete(f"/api/tokens/token/{tid}").json == {"ok": True}
    api.delete(f"/api/tokens/token/{tid}", status=404)
    # Someone else's token is not found; a token without manage_tokens is refused.
    other = make_token(svc.ctx, ["upload_symbols"], email="other@example.com")
    other_id = tokens.find_by_key(svc.ctx.db, other).id
    api.delete(f"/api/tokens/token/{other_id}", status=404)
    webtest.TestApp(svc.app.app).get("/api/tokens/", headers={"Auth-Token": other}, status=403)


def test_session_idle_and_absolute_expiry(make_service):
    svc = make_service({"SYMBOLS_SESSION_IDLE_LIFETIME": "600", **LOCAL})
    user = add_user(svc, "idle@example.com")
    app = browser(svc)
    login(app, "idle@example.com")
    assert "idle@example.com" in app.get("/").text
    store.age_sessions(svc.ctx.db, user.id, 601)
    assert app.get("/tokens", status=303).headers["Location"].startswith("/login?next=")
    login(app, "idle@example.com")
    svc.ctx.db.execute("UPDATE sessions SET expires_at = created_at")
    assert "Log in" in app.get("/").text and "idle@example.com" not in app.get("/").text


def test_logout_and_logout_everywhere(svc):
    add_user(svc, "two@example.com")
    a, b, c = browser(svc), browser(svc), browser(svc)
    for app in (a, b, c):
        login(app, "two@example.com")
    a.post("/logout", {"csrf_token": csrf(a)}, status=303)
    assert "two@example.com" not in a.get("/").text
    assert "two@example.com" in b.get("/").text
    b.post("/logout/everywhere", {"csrf_token": csrf(b)}, status=303)
    assert "two@example.com" not in c.get("/").text
    assert (
        store.count_user_sessions(
            svc.ctx.db, accounts.get_user_by_email(svc.ctx.db, "two@example.com").id
        )
        == 0
    )


def test_deactivation_ends_sessions_and_tokens(svc):
    add_user(svc, "gone@example.com", groups=["Uploaders"])
    key = make_token(svc.ctx, ["upload_symbols"], email="gone@example.com")
    app = browser(svc)
    login(app, "gone@example.com")
    assert (
        admin(["--database-url", svc.ctx.db.url, "set-active", "gone@example.com", "inactive"]) == 0
    )
    assert "gone@example.com" not in app.get("/").text
    resp = webtest.TestApp(svc.app.app).post(
        "/upload/auth_info/", headers={"Auth-Token": key}, status=403
    )
    assert resp.json == {"error": "API Token matched but user not active"}


def test_superuser_grants_and_audit_log(svc):
    add_user(svc, "root@example.com", superuser=True)
    newbie = accounts.create_user(svc.ctx.db, "newbie@example.com")
    plain = browser(svc)
    add_user(svc, "plain@example.com")
    login(plain, "plain@example.com")
    plain.get("/users", status=403)
    app = browser(svc)
    login(app, "root@example.com")
    assert "newbie@example.com" in app.get("/users?q=newb").text
    page = app.get(f"/users/{newbie.id}")
    form = page.forms[1]
    for box in form.fields["groups"]:
        if box._value == "Uploaders":
            box.checked = True
    resp = form.submit()
    assert "Saved: 1 change" in resp.text
    perms = accounts.user_permissions(svc.ctx.db, newbie)
    assert "upload_symbols" in perms
    log = store.audit_entries(svc.ctx.db, target="newbie@example.com")
    assert log[0]["actor_email"] == "root@example.com" and log[0]["action"] == "group added"
    assert "group added" in app.get("/users").text
    # Deactivating in the UI ends the user's sessions and stops their tokens at once.
    key = make_token(svc.ctx, ["upload_symbols"], email="newbie@example.com")
    store.set_password(svc.ctx.db, "newbie@example.com", PASSWORD)
    newbie_browser = browser(svc)
    login(newbie_browser, "newbie@example.com")
    form = app.get(f"/users/{newbie.id}").forms[1]
    form["is_active"] = False
    assert "Saved: 1 change" in form.submit().text
    assert "newbie@example.com" not in newbie_browser.get("/").text
    resp = browser(svc).post("/upload/auth_info/", headers={"Auth-Token": key}, status=403)
    assert resp.json["error"] == "API Token matched but user not active"
    assert (
        store.audit_entries(svc.ctx.db, target="newbie@example.com")[0]["action"] == "deactivated"
    )


def test_invitation_link(svc):
    add_user(svc, "root@example.com", superuser=True)
    app = browser(svc)
    login(app, "root@example.com")
    resp = app.post(
        "/users/invite", {"email": "invitee@example.com", "csrf_token": csrf(app, "/users")}
    )
    link = re.search(r'id="invite-link">([^<]+)<', resp.text).group(1)
    path = urlsplit(link).path
    guest = browser(svc)
    assert "invitee@example.com" in guest.get(path).text
    assert "at least" in guest.post(path, {"password": "short"}, status=400).text
    guest.post(path, {"password": PASSWORD}, status=303)
    assert "invitee@example.com" in guest.get("/").text
    browser(svc).get(path, status=404)  # used once
    login(browser(svc), "invitee@example.com")
    # Opened in a browser that already has a session: its form carries that
    # session's CSRF token, so it is accepted (and the new session replaces it).
    resp = app.post(
        "/users/invite", {"email": "second@example.com", "csrf_token": csrf(app, "/users")}
    )
    path = urlsplit(re.search(r'id="invite-link">([^<]+)<', resp.text).group(1)).path
    app.post(path, {"password": PASSWORD, "csrf_token": csrf(app, path)}, status=303)
    assert "second@example.com" in app.get("/").text
    root = accounts.get_user_by_email(svc.ctx.db, "root@example.com")
    assert store.count_user_sessions(svc.ctx.db, root.id) == 0
    # The login form, likewise.
    login_form = {"email": "invitee@example.com", "password": PASSWORD}
    app.post("/login", {**login_form, "csrf_token": csrf(app, "/login")}, status=303)


def test_stored_data_is_rendered_inert(svc):
    evil = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
    add_user(svc, "x@example.com", groups=["Uploaders"])
    tokens.create_token(svc.ctx.db, "x@example.com", ["upload_symbols"], notes=evil)
    app = browser(svc)
    login(app, "x@example.com")
    text = app.get("/tokens").text
    assert "<script>alert(1)" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<img src=x" not in text


def test_stats_page_draws_svg(svc):
    add_user(svc, "s@example.com", superuser=True)
    app = browser(svc)
    assert "Log in to see upload statistics" in app.get("/stats").text
    login(app, "s@example.com")
    text = app.get("/stats?days=90").text
    assert text.count('<svg class="chart"') == 4 and "uploads per day" in text and "<title>" in text


def test_api_auth_endpoint(svc):
    add_user(svc, "me@example.com", groups=["Uploaders"])
    app = browser(svc)
    assert app.get("/api/_auth/").json == {"user": None, "sign_in_url": "/login"}
    login(app, "me@example.com")
    user = app.get("/api/_auth/").json["user"]
    assert user["email"] == "me@example.com"
    assert "upload.upload_symbols" in {p["codename"] for p in user["permissions"]}


# -- OpenID Connect against a real provider process ------------------------------


@pytest.fixture
def oidc(make_service, start_oidc_provider, database_url):
    provider = start_oidc_provider("http://symbols.test/oidc/callback")
    svc = make_service({**provider.env(), **LOCAL}, database_url=database_url)
    return svc, provider


def oidc_login(app, provider, email, *, tamper=None):
    start = app.get("/login/oidc", status=303).headers["Location"]
    assert start.startswith(provider.url + "/authorize?")
    query = {k: v[0] for k, v in parse_qs(urlsplit(start).query).items()}
    assert query["code_challenge_method"] == "S256" and query["nonce"] and query["state"]
    resp = requests.post(
        provider.url + "/authorize",
        data={**query, "email": email},
        allow_redirects=False,
        timeout=5,
    )
    callback = resp.headers["Location"]
    if tamper:
        callback = tamper(callback)
    return app.get(urlsplit(callback).path + "?" + urlsplit(callback).query, expect_errors=True)


def test_oidc_login_creates_the_user_without_permissions(oidc):
    svc, provider = oidc
    app = browser(svc)
    assert "Log in with Test provider" in app.get("/login").text
    resp = oidc_login(app, provider, "new@example.org")
    assert resp.status_int == 303 and resp.headers["Location"] == "/"
    user = accounts.get_user_by_email(svc.ctx.db, "new@example.org")
    assert user is not None and accounts.user_permissions(svc.ctx.db, user) == frozenset()
    assert "new@example.org" in app.get("/").text
    assert store.audit_entries(svc.ctx.db, target="new@example.org")[0]["action"] == (
        "user created at first login"
    )


def test_oidc_wrong_state_wrong_nonce_expired_code(oidc):
    svc, provider = oidc

    def bad_state(url):
        return re.sub(r"state=[^&]+", "state=forged", url)

    resp = oidc_login(browser(svc), provider, "s@example.org", tamper=bad_state)
    assert resp.status_int == 400 and "state mismatch" in resp.text
    provider.admin("config", wrong_nonce="1")
    resp = oidc_login(browser(svc), provider, "n@example.org")
    assert resp.status_int == 400 and "ID token was refused" in resp.text
    provider.admin("config", code_lifetime="-1")
    resp = oidc_login(browser(svc), provider, "c@example.org")
    assert resp.status_int == 400 and "refused the login" in resp.text
    assert accounts.get_user_by_email(svc.ctx.db, "n@example.org") is None


def test_oidc_user_blocked_at_the_provider_becomes_inactive(oidc, make_service):
    svc, provider = oidc
    app = browser(svc)
    oidc_login(app, provider, "blocked@example.org")
    accounts.add_to_group(svc.ctx.db, "blocked@example.org", "Uploaders")
    key = make_token(svc.ctx, ["upload_symbols"], email="blocked@example.org")
    other = browser(svc)
    oidc_login(other, provider, "fine@example.org")
    provider.admin("block", email="blocked@example.org")
    # Not yet due: nothing happens.
    assert "blocked@example.org" in app.get("/").text
    # Due (the interval passed): the next request re-validates, and the token stops at once.
    svc.ctx.db.execute("UPDATE users SET validated_at = NULL")
    assert "blocked@example.org" not in app.get("/").text
    assert not accounts.get_user_by_email(svc.ctx.db, "blocked@example.org").is_active
    resp = webtest.TestApp(svc.app.app).post(
        "/upload/auth_info/", headers={"Auth-Token": key}, status=403
    )
    assert resp.json["error"] == "API Token matched but user not active"
    assert "fine@example.org" in other.get("/").text
    assert store.audit_entries(svc.ctx.db, target="blocked@example.org")[0]["action"] == (
        "deactivated at re-validation"
    )


def test_unreachable_provider_keeps_users_and_is_not_asked_on_every_request(oidc, caplog):
    svc, provider = oidc
    app = browser(svc)
    oidc_login(app, provider, "away@example.org")
    provider.stop()
    svc.ctx.db.execute("UPDATE users SET validated_at = NULL")
    with caplog.at_level("WARNING", logger="tecken_symbols.people.oidc"):
        for _ in range(3):
            assert "away@example.org" in app.get("/").text  # still signed in
    # Asked once, then left alone for a while (no timeout per request).
    assert sum("could not re-validate" in r.getMessage() for r in caplog.records) == 1
    assert accounts.get_user_by_email(svc.ctx.db, "away@example.org").is_active


def test_revalidate_users_cli(oidc, monkeypatch, capsys):
    svc, provider = oidc
    oidc_login(browser(svc), provider, "cli@example.org")
    provider.admin("block", email="cli@example.org")
    for name, value in provider.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SYMBOLS_PUBLIC_URL", "http://symbols.test")
    assert admin(["--database-url", svc.ctx.db.url, "revalidate-users", "--all"]) == 0
    assert "1 deactivated" in capsys.readouterr().out
    assert not accounts.get_user_by_email(svc.ctx.db, "cli@example.org").is_active


def test_symbolicate_form_refuses_bad_input_and_unreachable_eliot(make_service):
    svc = make_service({"SYMBOLS_ELIOT_URL": "http://127.0.0.1:9", **LOCAL})
    app = browser(svc)
    assert "xul.pdb" in app.get("/symbolicate").text
    resp = app.post("/symbolicate", {"modules": "xul.pdb", "stack": "0 1"}, status=400)
    assert "debug_file debug_id" in resp.text
    resp = app.post("/symbolicate", {"modules": "xul.pdb ABC", "stack": "3 0x10"}, status=400)
    assert "no module 3" in resp.text
    resp = app.post("/symbolicate", {"modules": "xul.pdb ABC", "stack": "0 0x10"}, status=502)
    assert "eliot could not be reached" in resp.text
