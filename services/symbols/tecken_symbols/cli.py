# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""``tecken-symbols-admin``: scriptable administration of the symbols service
(migrations, users, permissions, groups, API tokens).

It reads the same configuration as the service (``SYMBOLS_DATABASE_URL``, the
``.env`` file), or ``--database-url``. Errors go to stderr with exit status 1;
``create-token`` prints the token key alone on stdout."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from tecken_shared.config import build_config_manager
from tecken_symbols import accounts, tokens
from tecken_symbols.accounts import AccountError
from tecken_symbols.db import Database, DatabaseError
from tecken_symbols.settings import NAMESPACE, DatabaseConfig


def _open_db(args: argparse.Namespace, *, migrate: bool = True) -> Database:
    config = build_config_manager().with_namespace(NAMESPACE).with_options(DatabaseConfig)
    db = Database(args.database_url or config("database_url"))
    if migrate and config("database_automigrate"):
        db.migrate()
    elif migrate and db.pending_migrations():
        raise DatabaseError(
            f"{db.safe_url} has unapplied migrations; run 'tecken-symbols-admin migrate' first"
        )
    return db


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def cmd_migrate(args: argparse.Namespace) -> int:
    db = _open_db(args, migrate=False)
    if args.check:
        pending = db.pending_migrations()
        for m in pending:
            print(f"pending {m.version:04d}_{m.name}")
        return 1 if pending else 0
    applied = db.migrate()
    for m in applied:
        print(f"applied {m.version:04d}_{m.name}")
    if not applied:
        print("no pending migrations")
    return 0


def cmd_superuser(args: argparse.Namespace) -> int:
    db = _open_db(args)
    user, created = accounts.make_superuser(db, args.email)
    print(f"{'created' if created else 'promoted'} superuser {user.email}")
    return 0


def cmd_create_user(args: argparse.Namespace) -> int:
    db = _open_db(args)
    with db.transaction():
        user = accounts.create_user(db, args.email, is_superuser=args.superuser)
        for group in args.group or []:
            accounts.add_to_group(db, user.email, group)
        for perm in args.permission or []:
            accounts.grant_permission(db, user.email, perm)
    print(f"created user {user.email}")
    return 0


def _grant_or_revoke(args: argparse.Namespace, grant: bool) -> int:
    if not (args.permission or args.group):
        raise AccountError("name at least one --permission or --group")
    db = _open_db(args)
    with db.transaction():
        for perm in args.permission or []:
            if grant:
                accounts.grant_permission(db, args.email, perm)
            else:
                accounts.revoke_permission(db, args.email, perm)
        for group in args.group or []:
            if grant:
                accounts.add_to_group(db, args.email, group)
            else:
                accounts.remove_from_group(db, args.email, group)
    user = accounts.require_user(db, args.email)
    perms = ", ".join(sorted(accounts.user_permissions(db, user))) or "none"
    print(f"{user.email}: permissions now {perms}")
    return 0


def cmd_grant(args: argparse.Namespace) -> int:
    return _grant_or_revoke(args, True)


def cmd_revoke(args: argparse.Namespace) -> int:
    return _grant_or_revoke(args, False)


def cmd_set_active(args: argparse.Namespace) -> int:
    db = _open_db(args)
    active = args.state == "active"
    user = accounts.set_active(db, args.email, active)
    if not active:  # their browser sessions end too (tokens stop on is_active)
        from tecken_symbols.people import store

        store.deactivate(db, user.id)
    print(f"{user.email} is now {'active' if user.is_active else 'inactive'}")
    return 0


def cmd_list_users(args: argparse.Namespace) -> int:
    db = _open_db(args)
    users = []
    for user in accounts.list_users(db):
        users.append(
            {
                "id": user.id,
                "email": user.email,
                "is_active": user.is_active,
                "is_superuser": user.is_superuser,
                "groups": accounts.user_groups(db, user.id),
                "permissions": sorted(accounts.user_permissions(db, user)),
                "created_at": _iso(user.created_at),
            }
        )
    if args.json:
        print(json.dumps(users, indent=2))
    else:
        for u in users:
            flags = ("superuser " if u["is_superuser"] else "") + (
                "" if u["is_active"] else "INACTIVE "
            )
            print(
                f"{u['id']}\t{u['email']}\t{flags.strip() or '-'}\t"
                f"groups={','.join(u['groups']) or '-'}\tpermissions={','.join(u['permissions']) or '-'}"
            )
    return 0


def cmd_list_groups(args: argparse.Namespace) -> int:
    db = _open_db(args)
    for name, perms in accounts.list_groups(db).items():
        print(f"{name}\t{','.join(perms) or '-'}")
    return 0


def cmd_create_token(args: argparse.Namespace) -> int:
    db = _open_db(args)
    perms = list(args.permission or [])
    if not perms:
        user = accounts.require_user(db, args.email)
        held = accounts.user_permissions(db, user)
        perms = [accounts.UPLOAD_TRY_SYMBOLS if args.try_upload else accounts.UPLOAD_SYMBOLS]
        if accounts.VIEW_ALL_UPLOADS in held:
            perms.append(accounts.VIEW_ALL_UPLOADS)
    elif args.try_upload:
        raise AccountError("--try-upload only applies when no --permission is given")
    key, token = tokens.create_token(
        db,
        args.email,
        perms,
        expires_days=args.expires_days,
        notes=args.notes or "",
        key=args.key,
        preferred_upload_api_version=args.upload_api_version,
    )
    print(key)
    print(
        f"token {token.id} for {token.email}: {', '.join(sorted(token.permissions))}; "
        f"expires {token.expires_at.date().isoformat()}",
        file=sys.stderr,
    )
    return 0


def cmd_list_tokens(args: argparse.Namespace) -> int:
    db = _open_db(args)
    found = tokens.list_tokens(db, args.email, args.state)
    rows = [
        {
            "id": t.id,
            "email": t.email,
            "key_prefix": t.key_prefix,
            "permissions": sorted(t.permissions),
            "expires_at": _iso(t.expires_at),
            "is_expired": t.is_expired(),
            "notes": t.notes,
            "created_at": _iso(t.created_at),
        }
        for t in found
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            state = "EXPIRED" if r["is_expired"] else "active"
            print(
                f"{r['id']}\t{r['key_prefix']}…\t{r['email']}\t{','.join(r['permissions'])}\t"
                f"{state} (expires {r['expires_at'][:10]})\t{r['notes']}"
            )
    return 0


def cmd_revoke_token(args: argparse.Namespace) -> int:
    db = _open_db(args)
    ident = args.token.strip()
    if ident.isdigit() and len(ident) < 8:
        revoked = int(tokens.revoke_token(db, int(ident)))
    else:
        revoked = tokens.revoke_by_prefix(db, ident)
    if not revoked:
        raise AccountError(f"no token matching {ident!r} (give its id, key prefix or key)")
    print(f"revoked token {ident}")
    return 0


def cmd_import_keys(args: argparse.Namespace) -> int:
    """Record the keys of objects a storage holds (see stored_keys)."""
    import os

    from tecken_shared.storage import StorageError
    from tecken_symbols.context import build_context

    env = dict(os.environ)
    if args.database_url:
        env["SYMBOLS_DATABASE_URL"] = args.database_url
    ctx = build_context(build_config_manager(env))
    try:
        backends = ctx.storages.all()
        labels = args.backend or [b.label for b in backends]
        for label in labels:
            backend = ctx.storages.by_label(label)
            if backend is None:
                known = ", ".join(b.label for b in backends)
                raise ValueError(f"no storage backend {label!r}; known: {known}")
            try:
                count = ctx.writer.import_keys(backend)
            except StorageError as exc:
                raise ValueError(f"listing {backend.name} failed: {exc}") from exc
            print(f"{backend.label} ({backend.name}): {count} keys recorded")
    finally:
        ctx.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tecken-symbols-admin",
        description="Administer the Tecken symbols service: migrations, users, tokens.",
    )
    parser.add_argument(
        "--database-url", help="database URL (default: SYMBOLS_DATABASE_URL from the configuration)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("migrate", help="apply pending database migrations")
    p.add_argument("--check", action="store_true", help="list pending ones; exit 1 if any")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("superuser", help="create a superuser, or promote an existing user")
    p.add_argument("email")
    p.set_defaults(func=cmd_superuser)

    p = sub.add_parser("create-user", help="create a user")
    p.add_argument("email")
    p.add_argument("--superuser", action="store_true")
    p.add_argument("--group", action="append", help="add to this group (repeatable)")
    p.add_argument("--permission", action="append", help="grant this permission (repeatable)")
    p.set_defaults(func=cmd_create_user)

    for name, func, verb in (("grant", cmd_grant, "grant"), ("revoke", cmd_revoke, "take away")):
        p = sub.add_parser(name, help=f"{verb} permissions or group memberships")
        p.add_argument("email")
        p.add_argument("--permission", action="append", help=f"{verb} this permission")
        p.add_argument("--group", action="append", help=f"{verb} membership of this group")
        p.set_defaults(func=func)

    p = sub.add_parser("set-active", help="activate or deactivate a user")
    p.add_argument("email")
    p.add_argument("state", choices=["active", "inactive"])
    p.set_defaults(func=cmd_set_active)

    p = sub.add_parser("list-users", help="list users with their groups and permissions")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list_users)

    p = sub.add_parser("list-groups", help="list groups and their permissions")
    p.set_defaults(func=cmd_list_groups)

    p = sub.add_parser("create-token", help="create an API token; prints the key alone on stdout")
    p.add_argument("email")
    p.add_argument(
        "--permission",
        action="append",
        help="token permission (repeatable; default upload_symbols, plus view_all_uploads "
        "when the user has it)",
    )
    p.add_argument(
        "--try-upload",
        action="store_true",
        help="default permissions with upload_try_symbols instead of upload_symbols",
    )
    p.add_argument("--expires-days", type=float, default=tokens.DEFAULT_EXPIRATION_DAYS)
    p.add_argument("--notes", default="")
    p.add_argument("--key", help="use this 32-hex key instead of a random one")
    p.add_argument("--upload-api-version", type=int, default=1, choices=[1, 2])
    p.set_defaults(func=cmd_create_token)

    p = sub.add_parser("list-tokens", help="list tokens (keys are not stored; prefixes shown)")
    p.add_argument("--email")
    p.add_argument("--state", choices=["active", "expired", "all"], default="all")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list_tokens)

    p = sub.add_parser("revoke-token", help="revoke a token by id, key prefix or key")
    p.add_argument("token")
    p.set_defaults(func=cmd_revoke_token)

    p = sub.add_parser(
        "import-keys",
        help="record the keys of objects a storage holds but no upload recorded (a migrated "
        "bucket), so that downloads find them without asking storage about unknown keys",
    )
    p.add_argument(
        "--backend",
        action="append",
        help="regular, try or extraN (repeatable; default: every backend)",
    )
    p.set_defaults(func=cmd_import_keys)

    # Upload retention (issue 5): expired try uploads, old records, orphaned temp files.
    from tecken_symbols.upload.cleanup import add_cleanup_command

    add_cleanup_command(sub)
    # Logins (issue 12): set-password, invite, logout-user, revalidate-users.
    from tecken_symbols.people.cli import add_people_commands

    add_people_commands(sub)
    # The identity index (issue 14): objects stored before it existed.
    from tecken_symbols.identity_backfill import add_backfill_command

    add_backfill_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (AccountError, DatabaseError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        Database.close_all()


if __name__ == "__main__":
    sys.exit(main())
