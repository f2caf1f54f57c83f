# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The fixtures hand out real, isolated servers."""

import psycopg
import redis

from tecken_shared.testing.servers import start_postgres, start_redis


def test_postgres_database_is_fresh_and_usable(postgres_url):
    with psycopg.connect(postgres_url) as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (1)")
        assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 1


def test_redis_is_real(redis_url, redis_prefix):
    client = redis.Redis.from_url(redis_url)
    client.set(redis_prefix + "k", "v", ex=10)
    assert client.get(redis_prefix + "k") == b"v"


def test_private_redis_pause_and_resume(private_redis):
    client = redis.Redis.from_url(private_redis.url, socket_timeout=0.5)
    assert client.ping()
    private_redis.pause()
    try:
        client.ping()
        raise AssertionError("a paused Redis answered")
    except redis.exceptions.TimeoutError:
        pass
    finally:
        private_redis.resume()
    assert redis.Redis.from_url(private_redis.url).ping()


def test_throwaway_servers_start_when_none_runs():
    """The path a machine without PostgreSQL/Redis servers takes."""
    pg = start_postgres()
    try:
        with psycopg.connect(pg.url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        pg.stop()
    r = start_redis()
    try:
        assert redis.Redis.from_url(r.url).ping()
    finally:
        r.stop()
