# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Users, groups and permissions (plain SQL over :mod:`tecken_symbols.db`).

A user's effective permissions are the union of their direct permissions and
those of their groups; a superuser has every permission. Tokens act with a
subset of these (see :mod:`tecken_symbols.tokens`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tecken_symbols.db import Database, IntegrityError, utcnow

UPLOAD_SYMBOLS = "upload_symbols"
UPLOAD_TRY_SYMBOLS = "upload_try_symbols"
VIEW_ALL_UPLOADS = "view_all_uploads"
MANAGE_TOKENS = "manage_tokens"
MANAGE_USERS = "manage_users"

ALL_PERMISSIONS = (
    UPLOAD_SYMBOLS,
    UPLOAD_TRY_SYMBOLS,
    VIEW_ALL_UPLOADS,
    MANAGE_TOKENS,
    MANAGE_USERS,
)
UPLOAD_PERMISSIONS = (UPLOAD_SYMBOLS, UPLOAD_TRY_SYMBOLS)


class AccountError(ValueError):
    """Bad input for an account operation; the message says what to fix."""


@dataclass(frozen=True)
class User:
    id: int
    email: str
    is_active: bool
    is_superuser: bool
    created_at: datetime
    last_login: datetime | None = None


def _user(row: dict) -> User:
    return User(
        id=int(row["id"]),
        email=row["email"],
        is_active=bool(row["is_active"]),
        is_superuser=bool(row["is_superuser"]),
        created_at=row["created_at"],
        last_login=row.get("last_login"),
    )


def normalize_email(email: str) -> str:
    """Lower-cased email; rejects one with a space or without exactly one '@'."""
    email = (email or "").strip().lower()
    if " " in email or email.count("@") != 1 or email.startswith("@") or email.endswith("@"):
        raise AccountError(f"{email!r} is not a valid email address")
    return email


def get_user(db: Database, user_id: int) -> User | None:
    row = db.fetchone("SELECT * FROM users WHERE id = ?", (user_id,))
    return _user(row) if row else None


def get_user_by_email(db: Database, email: str) -> User | None:
    row = db.fetchone("SELECT * FROM users WHERE email = ?", (email.strip().lower(),))
    return _user(row) if row else None


def require_user(db: Database, email: str) -> User:
    user = get_user_by_email(db, email)
    if user is None:
        raise AccountError(f"no user with email {email!r}")
    return user


def list_users(db: Database) -> list[User]:
    return [_user(r) for r in db.fetchall("SELECT * FROM users ORDER BY email")]


def create_user(
    db: Database, email: str, *, is_superuser: bool = False, is_active: bool = True
) -> User:
    email = normalize_email(email)
    try:
        user_id = db.insert(
            "INSERT INTO users (email, is_active, is_superuser, created_at) VALUES (?, ?, ?, ?)",
            (email, is_active, is_superuser, utcnow()),
        )
    except IntegrityError as exc:
        raise AccountError(f"a user with email {email!r} already exists") from exc
    user = get_user(db, user_id)
    assert user is not None
    return user


def make_superuser(db: Database, email: str) -> tuple[User, bool]:
    """Create the user if needed and make them an active superuser. Returns
    (user, created)."""
    email = normalize_email(email)
    existing = get_user_by_email(db, email)
    if existing is None:
        return create_user(db, email, is_superuser=True), True
    db.execute(
        "UPDATE users SET is_superuser = ?, is_active = ? WHERE id = ?", (True, True, existing.id)
    )
    user = get_user(db, existing.id)
    assert user is not None
    return user, False


def set_active(db: Database, email: str, active: bool) -> User:
    user = require_user(db, email)
    db.execute("UPDATE users SET is_active = ? WHERE id = ?", (active, user.id))
    return get_user(db, user.id)  # type: ignore[return-value]


def check_permission(codename: str) -> str:
    codename = codename.strip()
    if "." in codename:  # accept Tecken's "upload.upload_symbols" spelling
        codename = codename.split(".", 1)[1]
    if codename not in ALL_PERMISSIONS:
        raise AccountError(f"unknown permission {codename!r}; known: {', '.join(ALL_PERMISSIONS)}")
    return codename


def list_groups(db: Database) -> dict[str, list[str]]:
    rows = db.fetchall(
        "SELECT g.name, gp.permission FROM groups g "
        "LEFT JOIN group_permissions gp ON gp.group_id = g.id ORDER BY g.name, gp.permission"
    )
    groups: dict[str, list[str]] = {}
    for row in rows:
        perms = groups.setdefault(row["name"], [])
        if row["permission"]:
            perms.append(row["permission"])
    return groups


def _group_id(db: Database, name: str) -> int:
    group_id = db.fetchval("SELECT id FROM groups WHERE name = ?", (name,))
    if group_id is None:
        known = ", ".join(list_groups(db)) or "none"
        raise AccountError(f"no group named {name!r}; known groups: {known}")
    return int(group_id)


def grant_permission(db: Database, email: str, permission: str) -> None:
    user = require_user(db, email)
    permission = check_permission(permission)
    if db.fetchval(
        "SELECT 1 FROM user_permissions WHERE user_id = ? AND permission = ?", (user.id, permission)
    ):
        return
    db.execute(
        "INSERT INTO user_permissions (user_id, permission) VALUES (?, ?)", (user.id, permission)
    )


def revoke_permission(db: Database, email: str, permission: str) -> bool:
    """Remove a direct permission. Tokens shrink with it (they act with the
    intersection of their own and the user's current permissions)."""
    user = require_user(db, email)
    permission = check_permission(permission)
    return bool(
        db.execute(
            "DELETE FROM user_permissions WHERE user_id = ? AND permission = ?",
            (user.id, permission),
        )
    )


def add_to_group(db: Database, email: str, group: str) -> None:
    user = require_user(db, email)
    group_id = _group_id(db, group)
    if db.fetchval(
        "SELECT 1 FROM user_groups WHERE user_id = ? AND group_id = ?", (user.id, group_id)
    ):
        return
    db.execute("INSERT INTO user_groups (user_id, group_id) VALUES (?, ?)", (user.id, group_id))


def remove_from_group(db: Database, email: str, group: str) -> bool:
    user = require_user(db, email)
    group_id = _group_id(db, group)
    return bool(
        db.execute(
            "DELETE FROM user_groups WHERE user_id = ? AND group_id = ?", (user.id, group_id)
        )
    )


def user_groups(db: Database, user_id: int) -> list[str]:
    rows = db.fetchall(
        "SELECT g.name FROM user_groups ug JOIN groups g ON g.id = ug.group_id "
        "WHERE ug.user_id = ? ORDER BY g.name",
        (user_id,),
    )
    return [r["name"] for r in rows]


def user_permissions(db: Database, user: User) -> frozenset[str]:
    """Effective permissions: everything for a superuser, else direct plus group ones."""
    if user.is_superuser:
        return frozenset(ALL_PERMISSIONS)
    rows = db.fetchall(
        "SELECT permission FROM user_permissions WHERE user_id = ? "
        "UNION SELECT gp.permission FROM user_groups ug "
        "JOIN group_permissions gp ON gp.group_id = ug.group_id WHERE ug.user_id = ?",
        (user.id, user.id),
    )
    return frozenset(r["permission"] for r in rows)
