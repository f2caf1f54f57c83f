# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""``tecken-symbols-admin`` commands for logins: ``set-password``,
``invite``, ``logout-user`` and ``revalidate-users``."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Any

from tecken_shared.config import build_config_manager
from tecken_symbols import accounts
from tecken_symbols.accounts import AccountError
from tecken_symbols.db import Database, DatabaseError
from tecken_symbols.people import store
from tecken_symbols.people.config import PeopleConfig
from tecken_symbols.settings import NAMESPACE, DatabaseConfig, StorageConfig


def _open_db(args: argparse.Namespace) -> Database:
    """The database, migrated as ``tecken-symbols-admin`` does."""
    config = build_config_manager().with_namespace(NAMESPACE).with_options(DatabaseConfig)
    db = Database(args.database_url or config("database_url"))
    if config("database_automigrate"):
        db.migrate()
    elif db.pending_migrations():
        raise DatabaseError(
            f"{db.safe_url} has unapplied migrations; run 'tecken-symbols-admin migrate' first"
        )
    return db


def cmd_set_password(args: argparse.Namespace) -> int:
    db = _open_db(args)
    password = os.environ.get("TECKEN_PASSWORD")
    if password is None:
        if not sys.stdin.isatty():
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass(f"New password for {args.email}: ")
            if getpass.getpass("Again: ") != password:
                raise AccountError("the passwords differ")
    user = store.set_password(db, args.email, password)
    store.audit(db, None, "password set (CLI)", user.email)
    print(f"password set for {user.email}")
    return 0


def cmd_invite(args: argparse.Namespace) -> int:
    db = _open_db(args)
    manager = build_config_manager().with_namespace(NAMESPACE)
    user = accounts.get_user_by_email(db, args.email) or accounts.create_user(db, args.email)
    key = store.create_invitation(
        db, user, None, lifetime=manager.with_options(PeopleConfig)("invitation_lifetime")
    )
    store.audit(db, None, "invitation created (CLI)", user.email)
    print(f"{manager.with_options(StorageConfig)('public_url').rstrip('/')}/invite/{key}")
    return 0


def cmd_logout_user(args: argparse.Namespace) -> int:
    db = _open_db(args)
    user = accounts.require_user(db, args.email)
    ended = store.delete_user_sessions(db, user.id)
    store.audit(db, None, "logged out everywhere (CLI)", user.email)
    print(f"ended {ended} session(s) of {user.email}")
    return 0


def cmd_revalidate(args: argparse.Namespace) -> int:
    from tecken_symbols.context import build_context
    from tecken_symbols.people.routes import build_oidc

    db = _open_db(args)
    environ = dict(os.environ)
    if args.database_url:
        environ["SYMBOLS_DATABASE_URL"] = args.database_url
    manager = build_config_manager(environ)
    ctx = build_context(manager)
    try:
        oidc = build_oidc(ctx)
        if oidc is None:
            print("no OpenID Connect issuer configured (SYMBOLS_OIDC_ISSUER)")
            return 0
        if args.all:
            db.execute("UPDATE users SET validated_at = NULL WHERE oidc_subject IS NOT NULL")
        checked, deactivated = oidc.revalidate_stale()
    finally:
        ctx.close()
    print(f"re-validated {checked} user(s); {deactivated} deactivated")
    return 0


def add_people_commands(sub: Any) -> None:
    p = sub.add_parser(
        "set-password",
        help="set a local password (from TECKEN_PASSWORD, stdin, or asked twice on a terminal)",
    )
    p.add_argument("email")
    p.set_defaults(func=cmd_set_password)

    p = sub.add_parser(
        "invite", help="print an invitation link to set a password (creates the user)"
    )
    p.add_argument("email")
    p.set_defaults(func=cmd_invite)

    p = sub.add_parser("logout-user", help="end every browser session of a user")
    p.add_argument("email")
    p.set_defaults(func=cmd_logout_user)

    p = sub.add_parser(
        "revalidate-users", help="ask the OpenID Connect provider about users not checked lately"
    )
    p.add_argument("--all", action="store_true", help="every OIDC user, however recently checked")
    p.set_defaults(func=cmd_revalidate)
