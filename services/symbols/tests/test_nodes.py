# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Several nodes (SYMBOLS_NODES): the service refuses to start with state
kept on one machine, and two nodes on PostgreSQL, Redis and S3 (moto) agree
on lookups, missing-symbol counts and tokens."""

import pytest

from tecken_symbols.deployment import UnsafeDeployment, node_problems
from tecken_symbols.upload.testing import make_token, make_zip, sym_key, sym_text


def test_one_node_accepts_the_embedded_defaults():
    assert (
        node_problems(
            1,
            database_url="sqlite:///x.db",
            cache_url="memory://",
            storage_urls=["file:///s"],
            filesystem_shared=False,
        )
        == []
    )


@pytest.mark.parametrize(
    "env, named",
    [
        ({"SYMBOLS_CACHE_URL": "memory://"}, "SYMBOLS_CACHE_URL is memory://"),
        ({}, "SYMBOLS_DATABASE_URL is SQLite"),
        ({}, "file:// storage"),
    ],
)
def test_more_nodes_refuse_state_kept_on_one_machine(make_service, env, named):
    with pytest.raises(UnsafeDeployment) as info:
        make_service({"SYMBOLS_NODES": "2", **env})
    assert named in str(info.value)


def test_a_shared_mount_may_hold_file_storage(make_service, postgres_url, redis_url):
    make_service(
        {
            "SYMBOLS_NODES": "2",
            "SYMBOLS_FILESYSTEM_SHARED": "true",
            "SYMBOLS_CACHE_URL": redis_url,
        },
        database_url=postgres_url,
    )


@pytest.fixture
def two_nodes(make_service, postgres_url, redis_url, redis_prefix, moto_server, s3_bucket):
    q = f"endpoint_url={moto_server.endpoint_url}&region=us-east-1"
    env = {
        "SYMBOLS_NODES": "2",
        "SYMBOLS_STORAGE_URL": f"s3://{s3_bucket}/v1?{q}",
        "SYMBOLS_TRY_STORAGE_URL": f"s3://{s3_bucket}/try/v1?{q}",
        "SYMBOLS_CACHE_URL": redis_url,
        "SYMBOLS_CACHE_PREFIX": redis_prefix,
        # Each node's in-memory hits read the invalidation log before every answer.
        "SYMBOLS_CACHE_INVALIDATION_POLL_INTERVAL": "0",
    }
    return (
        make_service(env, database_url=postgres_url),
        make_service(env, database_url=postgres_url),
    )


def test_two_nodes_agree(two_nodes):
    a, b = two_nodes
    key = sym_key("a")
    # A miss cached by node B (Redis), then an upload through node A.
    b.app.get(f"/{key}", status=404)
    token = make_token(a.ctx, ["upload_symbols"])
    b.app.post(
        "/upload/",
        upload_files=[("s.zip", "s.zip", make_zip({key: sym_text("a")}))],
        headers={"Auth-Token": token},  # a token made on node A works on node B
        status=201,
    )
    a.app.get(f"/{key}", status=302)
    b.app.get(f"/{key}", status=302)
    # Both nodes hold the hit; a deletion on one reaches the other.
    a.ctx.writer.delete(key, try_symbols=False)
    b.app.get(f"/{key}", status=404)
    a.app.get(f"/{key}", status=404)
    # Missing-symbol counts from both nodes add up in the database.
    missing = "gone.pdb/0123456789ABCDEF0123456789ABCDEF0/gone.sym"
    a.app.get(f"/{missing}", status=404)
    b.app.get(f"/{missing}", status=404)
    a.ctx.missing.flush()
    b.ctx.missing.flush()
    count = a.ctx.db.fetchval(
        "SELECT SUM(count) FROM missing_symbols WHERE debug_file = ?", ("gone.pdb",)
    )
    assert count == 2
