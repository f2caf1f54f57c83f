# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Data access for logins: passwords, sessions, invitations, login attempts,
OpenID Connect login states and the audit log (plain SQL over
:mod:`tecken_symbols.db`). Secrets handed to a browser (session keys,
invitation keys) are stored as SHA-256 hashes only."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from tecken_symbols import accounts
from tecken_symbols.accounts import AccountError, User
from tecken_symbols.db import Database, from_json, to_json, utcnow

MIN_PASSWORD_LENGTH = 10
_hasher = PasswordHasher()
#: Verified against when the email is unknown, so both cases take as long.
_DUMMY_HASH = _hasher.hash("not a password of anyone")


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


# -- passwords ----------------------------------------------------------------


def set_password(db: Database, email: str, password: str) -> User:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    user = accounts.require_user(db, email)
    db.execute("UPDATE users SET password_hash = ? WHERE id = ?", (_hasher.hash(password), user.id))
    return user


def check_password(db: Database, email: str, password: str) -> User | None:
    """The active user with this email and password, else None."""
    row = db.fetchone(
        "SELECT id, password_hash FROM users WHERE email = ?", (email.strip().lower(),)
    )
    stored = (row or {}).get("password_hash") or _DUMMY_HASH
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None or not row.get("password_hash"):
        return None
    user = accounts.get_user(db, int(row["id"]))
    if user is None or not user.is_active:
        return None
    if _hasher.check_needs_rehash(stored):
        db.execute(
            "UPDATE users SET password_hash = ? WHERE id = ?", (_hasher.hash(password), user.id)
        )
    return user


# -- login attempts ------------------------------------------------------------


def record_failed_login(db: Database, email: str, remote_addr: str) -> None:
    db.execute(
        "INSERT INTO login_attempts (email, remote_addr, created_at) VALUES (?, ?, ?)",
        (email.strip().lower()[:320], remote_addr[:64], utcnow()),
    )


def too_many_attempts(
    db: Database, email: str, remote_addr: str, *, limit: int, window: float
) -> bool:
    since = utcnow() - timedelta(seconds=window)
    db.execute("DELETE FROM login_attempts WHERE created_at < ?", (since,))
    by_email = db.fetchval(
        "SELECT COUNT(*) FROM login_attempts WHERE email = ? AND created_at >= ?",
        (email.strip().lower(), since),
    )
    by_addr = db.fetchval(
        "SELECT COUNT(*) FROM login_attempts WHERE remote_addr = ? AND created_at >= ?",
        (remote_addr, since),
    )
    return int(by_email or 0) >= limit or int(by_addr or 0) >= limit


# -- sessions --------------------------------------------------------------------


@dataclass(frozen=True)
class Session:
    id: int
    user_id: int
    csrf_token: str
    method: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


def create_session(
    db: Database, user: User, method: str, *, absolute: float
) -> tuple[str, Session]:
    """A new session for ``user``; returns (cookie value, session)."""
    key = secrets.token_urlsafe(32)
    now = utcnow()
    db.execute("DELETE FROM sessions WHERE expires_at < ?", (now,))  # old ones, by the way
    session_id = db.insert(
        "INSERT INTO sessions (key_hash, user_id, csrf_token, method, created_at, last_seen_at, "
        "expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            _sha(key),
            user.id,
            secrets.token_urlsafe(32),
            method,
            now,
            now,
            now + timedelta(seconds=absolute),
        ),
    )
    db.execute("UPDATE users SET last_login = ? WHERE id = ?", (now, user.id))
    session = get_session_by_id(db, session_id)
    assert session is not None
    return key, session


def _session(row: dict[str, Any]) -> Session:
    return Session(
        id=int(row["id"]),
        user_id=int(row["user_id"]),
        csrf_token=row["csrf_token"],
        method=row["method"],
        created_at=row["created_at"],
        last_seen_at=row["last_seen_at"],
        expires_at=row["expires_at"],
    )


def get_session_by_id(db: Database, session_id: int) -> Session | None:
    row = db.fetchone("SELECT * FROM sessions WHERE id = ?", (session_id,))
    return _session(row) if row else None


def find_session(db: Database, key: str, *, idle: float) -> Session | None:
    """The live session whose cookie value is ``key``; an expired or idle one
    is deleted and None returned. A found session's last use is recorded (at
    most once a minute)."""
    if not key or len(key) > 100:
        return None
    row = db.fetchone("SELECT * FROM sessions WHERE key_hash = ?", (_sha(key),))
    if row is None:
        return None
    session = _session(row)
    now = utcnow()
    if session.expires_at <= now or session.last_seen_at + timedelta(seconds=idle) <= now:
        db.execute("DELETE FROM sessions WHERE id = ?", (session.id,))
        return None
    if now - session.last_seen_at > timedelta(seconds=60):
        db.execute("UPDATE sessions SET last_seen_at = ? WHERE id = ?", (now, session.id))
    return session


def delete_session(db: Database, session_id: int) -> None:
    db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))


def delete_user_sessions(db: Database, user_id: int) -> int:
    """Log the user out everywhere; returns the number of sessions ended."""
    return db.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))


def count_user_sessions(db: Database, user_id: int) -> int:
    return int(
        db.fetchval(
            "SELECT COUNT(*) FROM sessions WHERE user_id = ? AND expires_at > ?",
            (user_id, utcnow()),
        )
        or 0
    )


def age_sessions(db: Database, user_id: int, seconds: float) -> None:
    """Move a user's sessions ``seconds`` into the past (tests and tools)."""
    for row in db.fetchall("SELECT * FROM sessions WHERE user_id = ?", (user_id,)):
        db.execute(
            "UPDATE sessions SET created_at = ?, last_seen_at = ? WHERE id = ?",
            (
                row["created_at"] - timedelta(seconds=seconds),
                row["last_seen_at"] - timedelta(seconds=seconds),
                row["id"],
            ),
        )


# -- invitations -------------------------------------------------------------------


def create_invitation(db: Database, user: User, created_by: User | None, *, lifetime: float) -> str:
    """An invitation link key for ``user`` to set a password."""
    key = secrets.token_urlsafe(24)
    now = utcnow()
    db.execute(
        "INSERT INTO invitations (key_hash, user_id, created_by, created_at, expires_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (
            _sha(key),
            user.id,
            created_by.id if created_by else None,
            now,
            now + timedelta(seconds=lifetime),
        ),
    )
    return key


def find_invitation(db: Database, key: str) -> User | None:
    """The user a valid, unused invitation is for."""
    if not key or len(key) > 100:
        return None
    row = db.fetchone(
        "SELECT user_id FROM invitations WHERE key_hash = ? AND used_at IS NULL AND expires_at > ?",
        (_sha(key), utcnow()),
    )
    return accounts.get_user(db, int(row["user_id"])) if row else None


def use_invitation(db: Database, key: str) -> None:
    db.execute("UPDATE invitations SET used_at = ? WHERE key_hash = ?", (utcnow(), _sha(key)))


# -- OpenID Connect --------------------------------------------------------------------


def save_oidc_state(db: Database, state: str, nonce: str, verifier: str, next_url: str) -> None:
    now = utcnow()
    db.execute("DELETE FROM oidc_states WHERE created_at < ?", (now - timedelta(minutes=15),))
    db.execute(
        "INSERT INTO oidc_states (state, nonce, code_verifier, next_url, created_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (state, nonce, verifier, next_url, now),
    )


def pop_oidc_state(db: Database, state: str) -> dict[str, Any] | None:
    """The login under way with this ``state`` (once: it is deleted)."""
    if not state or len(state) > 200:
        return None
    row = db.fetchone(
        "SELECT * FROM oidc_states WHERE state = ? AND created_at > ?",
        (state, utcnow() - timedelta(minutes=15)),
    )
    db.execute("DELETE FROM oidc_states WHERE state = ?", (state,))
    return row


def oidc_user_fields(db: Database, user_id: int) -> dict[str, Any]:
    row = db.fetchone(
        "SELECT oidc_issuer, oidc_subject, oidc_refresh_token, validated_at, password_hash "
        "FROM users WHERE id = ?",
        (user_id,),
    )
    return row or {}


def set_oidc_identity(
    db: Database, user_id: int, issuer: str, subject: str, refresh_token: str | None
) -> None:
    db.execute(
        "UPDATE users SET oidc_issuer = ?, oidc_subject = ?, oidc_refresh_token = "
        "COALESCE(?, oidc_refresh_token), validated_at = ? WHERE id = ?",
        (issuer, subject, refresh_token, utcnow(), user_id),
    )


def mark_validated(db: Database, user_id: int, refresh_token: str | None) -> None:
    db.execute(
        "UPDATE users SET validated_at = ?, oidc_refresh_token = COALESCE(?, oidc_refresh_token) "
        "WHERE id = ?",
        (utcnow(), refresh_token, user_id),
    )


def stale_oidc_users(db: Database, interval: float, user_id: int | None = None) -> list[int]:
    """Active OIDC users not re-validated within ``interval`` (only
    ``user_id``, when given: the check of one request)."""
    sql = (
        "SELECT id FROM users WHERE is_active = ? AND oidc_subject IS NOT NULL "
        "AND (validated_at IS NULL OR validated_at < ?)"
    )
    params: list[Any] = [True, utcnow() - timedelta(seconds=interval)]
    if user_id is not None:
        sql += " AND id = ?"
        params.append(user_id)
    return [int(r["id"]) for r in db.fetchall(sql, params)]


# -- deactivation and the audit log --------------------------------------------------


def deactivate(db: Database, user_id: int) -> None:
    """Make a user inactive: their sessions end and their tokens stop at once
    (token checks read ``is_active`` on every request)."""
    with db.transaction():
        db.execute("UPDATE users SET is_active = ? WHERE id = ?", (False, user_id))
        delete_user_sessions(db, user_id)


def audit(db: Database, actor: User | None, action: str, target: str = "", **details: Any) -> None:
    db.execute(
        "INSERT INTO audit_log (actor_id, actor_email, action, target, details, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (
            actor.id if actor else None,
            actor.email if actor else "(system)",
            action,
            target,
            to_json(details or None),
            utcnow(),
        ),
    )


def audit_entries(
    db: Database, *, target: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    sql = "SELECT * FROM audit_log"
    params: list[Any] = []
    if target:
        sql += " WHERE target = ?"
        params.append(target)
    rows = db.fetchall(sql + " ORDER BY id DESC LIMIT ?", [*params, limit])
    for row in rows:
        row["details"] = from_json(row["details"], {})
    return rows
