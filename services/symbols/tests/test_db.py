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
    utcnow,
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
    db = Database(database_url)
    assert db.check() is None
    db.close()


def test_bad_urls():
    with pytest.raises(ValueError, match="scheme"):
        Database("mysql://x/y")
    assert Database("sqlite:////tmp/x.db").sqlite_path == "/tmp/x.db"
    assert Database("sqlite:///var/x.db").sqlite_path == "var/x.db"
    assert Database("postgresql://u:secret@h:5/d").safe_url == "postgresql://h:5/d"


# -- PostgreSQL: a pool per process, a dropped connection tried again once ----


def _terminate_others(url: str) -> int:
    """pg_terminate_backend every other connection to the test database."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    return int(row[0])


def test_a_dropped_connection_is_tried_again_once(postgres_url, metricsmock):
    db = Database(postgres_url, pool_size=2)
    db.migrate()
    first = db.fetchval("SELECT pg_backend_pid()")
    assert _terminate_others(postgres_url) >= 1
    # The pooled connection is gone: the statement runs on a fresh one.
    assert db.fetchval("SELECT pg_backend_pid()") != first
    assert metricsmock.filter_records("incr", stat="tecken.db.connection_retried")
    # A transaction's BEGIN likewise.
    _terminate_others(postgres_url)
    with db.transaction() as tx:
        tx.insert(
            "INSERT INTO users (email, is_active, is_superuser, created_at) VALUES (?, ?, ?, ?)",
            ("pool@example.com", True, False, utcnow()),
        )
    assert db.fetchval("SELECT COUNT(*) FROM users WHERE email = ?", ("pool@example.com",)) == 1
    # An SQL error is not retried.
    with pytest.raises(DatabaseError):
        db.fetchval("SELECT no_such_column FROM users")
    assert len(metricsmock.filter_records("incr", stat="tecken.db.connection_retried")) == 2
    db.close()


def test_a_request_survives_a_dropped_connection(make_service, postgres_url):
    from tecken_symbols.upload.testing import make_token

    svc = make_service(database_url=postgres_url)
    token = make_token(svc.ctx, ["upload_symbols"])
    svc.app.get("/api/uploads/", headers={"Auth-Token": token}, status=200)
    assert _terminate_others(postgres_url) >= 1
    svc.app.get("/api/uploads/", headers={"Auth-Token": token}, status=200)


def test_each_process_has_its_own_pool(postgres_url):
    """A forked child (a gunicorn worker) opens its own connections and leaves
    the parent's alone."""
    import os

    db = Database(postgres_url, pool_size=1)
    parent = db.fetchval("SELECT pg_backend_pid()")
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child process
        try:
            os.write(write, str(db.fetchval("SELECT pg_backend_pid()")).encode())
            db.close()
            import gc

            gc.collect()  # nothing of the parent's pool may be finished here
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    got = os.read(read, 64).decode()
    os.close(read)
    assert got and int(got) != parent
    assert db.fetchval("SELECT pg_backend_pid()") == parent
    db.close()
