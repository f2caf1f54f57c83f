# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

import threading
from datetime import UTC, datetime

import pytest

from tecken_symbols.db import (
    Database,
    DatabaseError,
    IntegrityError,
    discover_migrations,
    from_json,
    split_statements,
    to_json,
    to_pyformat,
)


def test_to_pyformat():
    assert to_pyformat("SELECT ? WHERE a LIKE '%?%' AND b = ?") == (
        "SELECT %s WHERE a LIKE '%%?%%' AND b = %s"
    )
    assert to_pyformat("SELECT 5 % 2") == "SELECT 5 %% 2"


def test_split_statements():
    script = "-- comment\nCREATE TABLE a (x TEXT DEFAULT ';');\n\nINSERT INTO a VALUES ('a;\nb');\n"
    assert split_statements(script) == [
        "-- comment\nCREATE TABLE a (x TEXT DEFAULT ';');",
        "INSERT INTO a VALUES ('a;\nb');",
    ]


def test_json_helpers():
    assert to_json([]) is None and to_json(None) is None
    assert from_json(to_json(["a"])) == ["a"]
    assert from_json(None, []) == []


def test_statements_transactions_and_types(db):
    now = datetime(2026, 11, 23, 10, 51, 44, 336000, tzinfo=UTC)
    uid = db.insert("INSERT INTO users (email, created_at) VALUES (?, ?)", ("a@x.com", now))
    row = db.fetchone("SELECT * FROM users WHERE email LIKE '%@x.com' AND id = ?", (uid,))
    assert row["created_at"] == now and bool(row["is_active"]) is True
    with pytest.raises(IntegrityError):
        db.insert("INSERT INTO users (email, created_at) VALUES (?, ?)", ("a@x.com", now))
    with pytest.raises(RuntimeError):
        with db.transaction() as tx:
            tx.execute("UPDATE users SET email = ? WHERE id = ?", ("b@x.com", uid))
            with db.transaction() as inner:  # joins the outer one
                inner.execute("UPDATE users SET is_active = ? WHERE id = ?", (False, uid))
            raise RuntimeError("roll back")
    assert db.fetchval("SELECT email FROM users WHERE id = ?", (uid,)) == "a@x.com"
    assert bool(db.fetchval("SELECT is_active FROM users WHERE id = ?", (uid,)))
    with pytest.raises(DatabaseError):
        db.execute("SELECT * FROM no_such_table")
    # The connection is still usable after errors.
    assert db.fetchval("SELECT COUNT(*) FROM users") == 1


def test_migrations_are_idempotent_and_checked(database_url):
    db = Database(database_url)
    assert "unapplied migrations" in db.check()
    assert len(db.migrate()) == len(discover_migrations())
    assert db.migrate() == []
    assert db.check() is None
    db.close()


def test_concurrent_migrate(database_url):
    errors = []

    def run():
        db = Database(database_url)
        try:
            db.migrate()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert Database(database_url).check() is None


def test_bad_urls():
    with pytest.raises(ValueError, match="scheme"):
        Database("mysql://x/y")
    assert Database("sqlite:////tmp/x.db").sqlite_path == "/tmp/x.db"
    assert Database("sqlite:///var/x.db").sqlite_path == "var/x.db"
    assert Database("postgresql://u:secret@h:5/d").safe_url == "postgresql://h:5/d"
