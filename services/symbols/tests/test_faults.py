# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Downloads with Redis up, paused and stopped; storage and database down."""

import time

from tecken_shared.testing.servers import free_port

KEY = "xul.pdb/ABCDEF0123/xul.sym"


def redis_env(url, prefix="t:"):
    return {
        # Objects are put behind the service's back (as other tools may): the
        # storage is asked about keys no upload recorded.
        "SYMBOLS_DOWNLOAD_ASK_STORAGE_FOR_UNKNOWN_KEYS": "true",
        "SYMBOLS_CACHE_URL": url,
        "SYMBOLS_CACHE_PREFIX": prefix,
        "SYMBOLS_CACHE_REDIS_TIMEOUT": "0.2",
        "SYMBOLS_CACHE_NEGATIVE_TTL": "300",
    }


def test_redis_shared_cache_and_invalidation(make_service, redis_url, redis_prefix):
    env = redis_env(redis_url, redis_prefix)
    one = make_service(env)
    two = make_service(env)
    two.app.get(f"/{KEY}", status=404)  # cached miss, shared through Redis
    one.ctx.storages.regular.storage.put(KEY, b"x")
    two.app.get(f"/{KEY}", status=404)
    one.ctx.lookups.forget(KEY)  # the upload side's call, in another worker
    two.app.get(f"/{KEY}", status=302)  # at once: misses are never kept per worker
    assert one.ctx.cache.get("r:" + KEY).startswith("regular|")


def test_local_layer_in_front_of_redis(make_service, redis_url, redis_prefix):
    env = {**redis_env(redis_url, redis_prefix), "SYMBOLS_CACHE_INVALIDATION_POLL_INTERVAL": "0"}
    svc = make_service(env)
    other = make_service(env)  # another worker
    svc.app.get(f"/{KEY}", status=404)
    svc.ctx.storages.regular.storage.put(KEY, b"x")
    svc.ctx.cache.delete("r:" + KEY)  # another worker's invalidation: seen at once
    svc.app.get(f"/{KEY}", status=302)
    # Hits are kept in each worker's memory too; another worker's deletion
    # (through its symbol writer) reaches that memory through the invalidation
    # log within SYMBOLS_CACHE_INVALIDATION_POLL_INTERVAL (0 here: at once).
    other.ctx.writer.delete(KEY, try_symbols=False)
    svc.app.get(f"/{KEY}", status=404)
    svc.ctx.storages.regular.storage.put(KEY, b"x")
    svc.app.get(f"/{KEY}?_refresh", status=302)
    svc.ctx.storages.regular.storage.delete(KEY)
    svc.ctx.lookups.forget(KEY)  # this worker's own invalidation clears both layers
    svc.app.get(f"/{KEY}", status=404)


def test_redis_paused_then_stopped(make_service, private_redis):
    svc = make_service(redis_env(private_redis.url))
    svc.ctx.storages.regular.storage.put(KEY, b"x")
    svc.app.get(f"/{KEY}", status=302)
    private_redis.pause()
    try:
        started = time.monotonic()
        for _ in range(20):
            svc.app.get(f"/{KEY}", status=302)
            svc.app.get("/other.pdb/ABCDEF/other.sym", status=404)
        # One socket timeout, then Redis is skipped for a while.
        assert time.monotonic() - started < 2
        assert svc.ctx.cache.errors >= 1
        assert svc.app.get("/__heartbeat__").json["status"] == "ok"
    finally:
        private_redis.resume()
    private_redis.stop()
    svc.ctx.cache._down_until = 0  # skip the back-off wait
    svc.app.get(f"/{KEY}", status=302)
    svc.ctx.lookups.forget(KEY)  # logged and ignored
    svc.app.get("/missing.pdb/ABCDEF/missing.sym", status=404)


def test_storage_down_is_503_and_heartbeat_error(make_service, moto_server):
    dead = f"http://127.0.0.1:{free_port()}"
    svc = make_service(
        {
            "SYMBOLS_STORAGE_URL": f"s3://nobucket/v1?endpoint_url={dead}&region=us-east-1&connect_timeout=0.5",
            "SYMBOLS_CACHE_INVALIDATION_POLL_INTERVAL": "0",
        }
    )
    # A key no upload stored is not asked of storage: 404 with storage down
    # (once the worker loaded the stored keys; its first lookup starts that).
    svc.app.get("/never.pdb/ABCDEF/never.sym", status="*")
    assert svc.ctx.lookups.known_keys.wait_ready(10)
    svc.app.get("/never.pdb/ABCDEF/never.sym", status=404)
    # A stored key is, and that fails.
    svc.ctx.lookups.forget(KEY, stored=True)
    resp = svc.app.get(f"/{KEY}", status=503)
    assert "storage" in resp.json["error"]
    assert resp.headers["Retry-After"] == "5"
    body = svc.app.get("/__heartbeat__", status=500).json
    assert body["checks"]["storage_regular"] == "error"
    assert body["checks"]["database"] == "ok"


def test_read_only_storage_directory_fails_heartbeat(make_service, tmp_path):
    root = tmp_path / "ro"
    root.mkdir()
    svc = make_service({"SYMBOLS_STORAGE_URL": f"file://{root}"})
    root.chmod(0o500)
    try:
        import os

        if os.geteuid() == 0:  # root ignores permissions; use a file where a dir should be
            root.chmod(0o700)
            for p in root.iterdir():
                p.unlink()
            root.rmdir()
            root.write_text("not a directory")
        body = svc.app.get("/__heartbeat__", status=500).json
        assert body["checks"]["storage_regular"] == "error"
        assert "regular storage" in body["errors"][0]["msg"]
    finally:
        if root.is_dir():
            root.chmod(0o700)


def test_database_down(make_service, tmp_path):
    svc = make_service(
        database_url=f"postgresql://nobody@127.0.0.1:{free_port()}/x",
        env={"SYMBOLS_DATABASE_AUTOMIGRATE": "false", "SYMBOLS_DATABASE_CONNECT_TIMEOUT": "1"},
    )
    body = svc.app.get("/__heartbeat__", status=500).json
    assert body["checks"]["database"] == "error"
    assert "database unreachable" in body["errors"][0]["msg"]
    # Endpoints that need the database answer 503, never a 500.
    for path in ("/missingsymbols/", "/missingsymbols.csv", "/api/syminfo/xul.pdb/ABCDEF"):
        resp = svc.app.get(path, status=503)
        assert resp.json == {"error": "The database could not be reached; try again shortly."}
        assert resp.headers["Retry-After"] == "5"
    svc.app.post("/upload/", params=b"x", headers={"Auth-Token": "a" * 32}, status=503)


def test_database_down_at_start_up(make_service):
    # Automigrate fails: logged; the service starts and serves downloads.
    svc = make_service(
        database_url=f"postgresql://nobody@127.0.0.1:{free_port()}/x",
        env={"SYMBOLS_DATABASE_CONNECT_TIMEOUT": "1"},
    )
    svc.app.get("/__heartbeat__", status=500)
    # Downloads do not need the database (the code-id fallback fails soft).
    svc.ctx.storages.regular.storage.put(KEY, b"x")
    svc.app.get(f"/{KEY}", status=302)
    svc.app.get("/xul.exe/ABC/xul.sym", status=404)
    svc.ctx.missing.flush()  # logged, kept


def test_redis_client_pause(make_service, private_redis):
    import redis

    svc = make_service(redis_env(private_redis.url))
    svc.ctx.storages.regular.storage.put(KEY, b"x")
    svc.app.get(f"/{KEY}", status=302)
    redis.Redis.from_url(private_redis.url).execute_command("CLIENT", "PAUSE", "1500", "ALL")
    started = time.monotonic()
    for _ in range(10):
        svc.app.get(f"/{KEY}", status=302)
        svc.app.get("/other.pdb/ABCDEF/other.sym", status=404)
    assert time.monotonic() - started < 1.5
    assert svc.ctx.cache.errors == 1
