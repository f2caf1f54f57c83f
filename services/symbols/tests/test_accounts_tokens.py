# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

import json
from datetime import timedelta

import falcon
import pytest
import webtest

from tecken_symbols import accounts, tokens
from tecken_symbols.accounts import AccountError
from tecken_symbols.auth import require_permission
from tecken_symbols.db import utcnow


def test_superuser_and_groups(db):
    user, created = accounts.make_superuser(db, "Admin@Example.com")
    assert created and user.is_superuser and user.email == "admin@example.com"
    assert accounts.user_permissions(db, user) == frozenset(accounts.ALL_PERMISSIONS)
    _, created = accounts.make_superuser(db, "admin@example.com")
    assert not created

    bob = accounts.create_user(db, "bob@example.com")
    assert accounts.user_permissions(db, bob) == frozenset()
    accounts.add_to_group(db, bob.email, "Uploaders")
    accounts.add_to_group(db, bob.email, "Uploaders")  # idempotent
    assert accounts.user_permissions(db, bob) == {
        "upload_symbols",
        "upload_try_symbols",
        "manage_tokens",
    }
    accounts.grant_permission(db, bob.email, "upload.view_all_uploads")
    assert "view_all_uploads" in accounts.user_permissions(db, bob)
    assert accounts.revoke_permission(db, bob.email, "view_all_uploads")
    assert accounts.remove_from_group(db, bob.email, "Uploaders")
    assert accounts.user_permissions(db, bob) == frozenset()
    assert accounts.user_groups(db, bob.id) == []


@pytest.mark.parametrize("email", ["no-at", "two@@x", "sp ace@x.com", "@x.com"])
def test_bad_emails(db, email):
    with pytest.raises(AccountError):
        accounts.create_user(db, email)


def test_duplicate_user_and_unknowns(db):
    accounts.create_user(db, "a@example.com")
    with pytest.raises(AccountError, match="already exists"):
        accounts.create_user(db, "A@example.com")
    with pytest.raises(AccountError, match="no group"):
        accounts.add_to_group(db, "a@example.com", "Nope")
    with pytest.raises(AccountError, match="unknown permission"):
        accounts.grant_permission(db, "a@example.com", "fly")
    with pytest.raises(AccountError, match="no user"):
        accounts.grant_permission(db, "b@example.com", "upload_symbols")


def test_token_rules(db):
    accounts.create_user(db, "u@example.com")
    accounts.add_to_group(db, "u@example.com", "Uploaders")
    with pytest.raises(AccountError, match="Invalid combination"):
        tokens.create_token(db, "u@example.com", ["upload_symbols", "upload_try_symbols"])
    with pytest.raises(AccountError, match="view_all_uploads not a valid permission"):
        tokens.create_token(db, "u@example.com", ["view_all_uploads"])
    key, token = tokens.create_token(db, "u@example.com", ["upload_try_symbols"], notes="ci")
    assert len(key) == 32 and token.permissions == {"upload_try_symbols"}
    assert tokens.find_by_key(db, key).id == token.id
    assert tokens.find_by_key(db, key.upper()) is None  # case-sensitive
    # Only the hash is stored.
    assert db.fetchval("SELECT COUNT(*) FROM tokens WHERE key_hash = ?", (key,)) == 0
    assert [t.id for t in tokens.list_tokens(db, "u@example.com")] == [token.id]
    assert tokens.list_tokens(db, state="expired") == []
    with pytest.raises(AccountError, match="already exists"):
        tokens.create_token(db, "u@example.com", ["upload_symbols"], key=key)
    for days in (0, -5, 1e11, float("nan")):  # 1e11 days overflowed datetime
        with pytest.raises(AccountError, match="positive number of days"):
            tokens.create_token(db, "u@example.com", ["upload_symbols"], expires_days=days)
    assert tokens.revoke_by_prefix(db, key[:8]) == 1
    assert tokens.find_by_key(db, key) is None


class Protected:
    def __init__(self, ctx):
        self.ctx = ctx

    @falcon.before(require_permission("upload_symbols", "upload_try_symbols", drain_body=True))
    def on_post(self, req, resp):
        p = req.context.principal
        resp.media = {"email": p.email, "permissions": sorted(p.permissions)}


@pytest.fixture
def protected(database_url, make_service):
    service = make_service(database_url=database_url)
    app = falcon.App()
    app.add_route("/p", Protected(service.ctx))
    return webtest.TestApp(app), service.ctx.db


def test_auth_errors_and_subset(protected):
    app, db = protected
    body = b"x" * 300_000
    resp = app.post("/p", body, status=403)
    assert resp.json == {"error": "This requires an Auth-Token to authenticate the request"}
    resp = app.post("/p", body, headers={"Auth-Token": "0" * 32}, status=403)
    assert resp.json == {"error": "API Token not matched"}

    accounts.make_superuser(db, "root@example.com")
    key, token = tokens.create_token(db, "root@example.com", ["view_all_uploads"])
    resp = app.post("/p", headers={"Auth-Token": key}, status=403)
    assert resp.json == {"error": "Forbidden"}  # a superuser's token acts with its own set only
    assert "Auth-Token" in resp.headers["Vary"]

    key, token = tokens.create_token(db, "root@example.com", ["upload_try_symbols"])
    resp = app.post("/p", headers={"Auth-Token": f"{key}-my laptop"})
    assert resp.json == {"email": "root@example.com", "permissions": ["upload_try_symbols"]}

    db.execute(
        "UPDATE tokens SET expires_at = ? WHERE id = ?", (utcnow() - timedelta(seconds=1), token.id)
    )
    assert app.post("/p", headers={"Auth-Token": key}, status=403).json == {
        "error": "API Token found but expired"
    }
    db.execute(
        "UPDATE tokens SET expires_at = ? WHERE id = ?", (utcnow() + timedelta(days=1), token.id)
    )
    accounts.set_active(db, "root@example.com", False)
    assert app.post("/p", headers={"Auth-Token": key}, status=403).json == {
        "error": "API Token matched but user not active"
    }


def test_token_shrinks_with_user(protected):
    app, db = protected
    accounts.create_user(db, "u@example.com")
    accounts.add_to_group(db, "u@example.com", "Uploaders")
    key, _ = tokens.create_token(db, "u@example.com", ["upload_symbols"])
    app.post("/p", headers={"Auth-Token": key})
    accounts.remove_from_group(db, "u@example.com", "Uploaders")
    assert app.post("/p", headers={"Auth-Token": key}, status=403).json == {"error": "Forbidden"}


def test_403_drains_the_body(protected):
    """The body is read to the end before the 403 goes out (a proxy in front
    would otherwise cut a chunked upload off before the client sees it)."""
    import io

    app, _db = protected
    body = io.BytesIO(b"z" * (3 * 1024 * 1024 + 17))
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/p",
        "QUERY_STRING": "",
        "SERVER_NAME": "test",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_LENGTH": str(len(body.getvalue())),
        "HTTP_AUTH_TOKEN": "f" * 32,
        "wsgi.url_scheme": "http",
        "wsgi.input": body,
        "wsgi.errors": io.StringIO(),
    }
    statuses = []
    out = b"".join(app.app(environ, lambda status, headers, exc=None: statuses.append(status)))
    assert statuses == ["403 Forbidden"]
    assert json.loads(out) == {"error": "API Token not matched"}
    assert body.tell() == len(body.getvalue())
