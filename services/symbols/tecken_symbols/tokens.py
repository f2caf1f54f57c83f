# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""API tokens. A key is 32 lowercase hex characters (uuid4); clients send it
as ``Auth-Token: <key>[-<label>]``. Only its SHA-256 is stored, so a database
leak does not leak working tokens; the key is shown once, at creation.

A token carries a set of permissions, a subset of its user's at creation. It
always acts with the intersection of that set and the user's *current*
permissions, so taking a permission or group away from a user also shrinks
their tokens; and a superuser's token acts with the token's set only."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tecken_symbols.accounts import (
    UPLOAD_SYMBOLS,
    UPLOAD_TRY_SYMBOLS,
    AccountError,
    User,
    check_permission,
    require_user,
    user_permissions,
)
from tecken_symbols.db import Database, IntegrityError, utcnow

DEFAULT_EXPIRATION_DAYS = 365
#: A century: far enough for any real use, well inside datetime's range.
MAX_EXPIRATION_DAYS = 36_500


@dataclass(frozen=True)
class Token:
    id: int
    user_id: int
    key_prefix: str
    expires_at: datetime
    notes: str
    created_at: datetime
    preferred_upload_api_version: int
    permissions: frozenset[str] = field(default_factory=frozenset)
    email: str = ""

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.expires_at < (now or utcnow())


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    return uuid.uuid4().hex


def key_from_header(value: str) -> str:
    """The key part of an ``Auth-Token`` header: everything before the first '-'."""
    return value.strip().split("-", 1)[0]


def _token(row: dict, permissions: frozenset[str]) -> Token:
    return Token(
        id=int(row["id"]),
        user_id=int(row["user_id"]),
        key_prefix=row["key_prefix"],
        expires_at=row["expires_at"],
        notes=row["notes"] or "",
        created_at=row["created_at"],
        preferred_upload_api_version=int(row["preferred_upload_api_version"] or 1),
        permissions=permissions,
        email=row.get("email") or "",
    )


def _permissions_of(db: Database, token_ids: list[int]) -> dict[int, set[str]]:
    result: dict[int, set[str]] = {tid: set() for tid in token_ids}
    if not token_ids:
        return result
    marks = ",".join("?" for _ in token_ids)
    rows = db.fetchall(
        f"SELECT token_id, permission FROM token_permissions WHERE token_id IN ({marks})",  # noqa: S608
        token_ids,
    )
    for row in rows:
        result[int(row["token_id"])].add(row["permission"])
    return result


def validate_permissions(user_perms: frozenset[str], wanted: list[str]) -> frozenset[str]:
    perms = frozenset(check_permission(p) for p in wanted)
    if not perms:
        raise AccountError("a token needs at least one permission")
    if UPLOAD_SYMBOLS in perms and UPLOAD_TRY_SYMBOLS in perms:
        raise AccountError(
            "Invalid combination of permissions: a token cannot hold both "
            "upload_symbols and upload_try_symbols"
        )
    missing = sorted(perms - user_perms)
    if missing:
        raise AccountError(f"{', '.join(missing)} not a valid permission for this user")
    return perms


def create_token(
    db: Database,
    email: str,
    permissions: list[str],
    *,
    expires_days: float = DEFAULT_EXPIRATION_DAYS,
    notes: str = "",
    key: str | None = None,
    preferred_upload_api_version: int = 1,
) -> tuple[str, Token]:
    """Create a token for ``email``; returns (key, token). The key is not
    recoverable afterwards."""
    user = require_user(db, email)
    perms = validate_permissions(user_permissions(db, user), permissions)
    if key is None:
        key = new_key()
    elif len(key) != 32 or any(c not in "0123456789abcdefABCDEF" for c in key):
        raise AccountError("a token key must be 32 hexadecimal characters")
    if not 0 < expires_days <= MAX_EXPIRATION_DAYS:  # NaN fails too
        raise AccountError(
            f"expiry must be a positive number of days, at most {MAX_EXPIRATION_DAYS}"
        )
    if preferred_upload_api_version not in (1, 2):
        raise AccountError("preferred upload API version must be 1 or 2")
    now = utcnow()
    try:
        with db.transaction() as tx:
            token_id = tx.insert(
                "INSERT INTO tokens (user_id, key_hash, key_prefix, expires_at, notes, "
                "preferred_upload_api_version, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    user.id,
                    hash_key(key),
                    key[:8],
                    now + timedelta(days=expires_days),
                    notes,
                    preferred_upload_api_version,
                    now,
                ),
            )
            tx.executemany(
                "INSERT INTO token_permissions (token_id, permission) VALUES (?, ?)",
                [(token_id, p) for p in sorted(perms)],
            )
    except IntegrityError as exc:
        raise AccountError("a token with that key already exists") from exc
    token = get_token(db, token_id)
    assert token is not None
    return key, token


def get_token(db: Database, token_id: int) -> Token | None:
    row = db.fetchone(
        "SELECT t.*, u.email FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.id = ?",
        (token_id,),
    )
    if row is None:
        return None
    return _token(row, frozenset(_permissions_of(db, [token_id])[token_id]))


def find_by_key(db: Database, key: str) -> Token | None:
    """The token whose key is exactly ``key`` (case-sensitive), or None."""
    row = db.fetchone(
        "SELECT t.*, u.email FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.key_hash = ?",
        (hash_key(key),),
    )
    if row is None:
        return None
    tid = int(row["id"])
    return _token(row, frozenset(_permissions_of(db, [tid])[tid]))


def list_tokens(db: Database, email: str | None = None, state: str = "all") -> list[Token]:
    """Tokens newest first; ``state`` is 'active', 'expired' or 'all'."""
    sql = "SELECT t.*, u.email FROM tokens t JOIN users u ON u.id = t.user_id"
    params: list = []
    where = []
    if email:
        where.append("u.id = ?")
        params.append(require_user(db, email).id)
    if state == "active":
        where.append("t.expires_at >= ?")
        params.append(utcnow())
    elif state == "expired":
        where.append("t.expires_at < ?")
        params.append(utcnow())
    elif state != "all":
        raise AccountError("state must be active, expired or all")
    if where:
        sql += " WHERE " + " AND ".join(where)
    rows = db.fetchall(sql + " ORDER BY t.created_at DESC, t.id DESC", params)
    perms = _permissions_of(db, [int(r["id"]) for r in rows])
    return [_token(r, frozenset(perms[int(r["id"])])) for r in rows]


def revoke_token(db: Database, token_id: int) -> bool:
    return bool(db.execute("DELETE FROM tokens WHERE id = ?", (token_id,)))


def revoke_by_prefix(db: Database, prefix: str) -> int:
    """Revoke the token whose key starts with ``prefix`` (8 hex characters or
    the whole key); returns the number revoked (0 or 1)."""
    if len(prefix) == 32:
        token = find_by_key(db, prefix)
        return int(revoke_token(db, token.id)) if token else 0
    rows = db.fetchall("SELECT id FROM tokens WHERE key_prefix = ?", (prefix[:8],))
    if len(rows) > 1:
        raise AccountError(f"more than one token starts with {prefix!r}; revoke by id")
    return int(revoke_token(db, int(rows[0]["id"]))) if rows else 0


def touch(db: Database, token_id: int) -> None:
    db.execute("UPDATE tokens SET last_used_at = ? WHERE id = ?", (utcnow(), token_id))


def effective_permissions(db: Database, token: Token, user: User) -> frozenset[str]:
    """What the token may do now: its own set, limited to the user's current set."""
    return token.permissions & user_permissions(db, user)
