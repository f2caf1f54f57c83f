# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Cache invalidation reaches every worker: the symbol writer's invalidation
log, read by each worker at most SYMBOLS_CACHE_INVALIDATION_POLL_INTERVAL
seconds apart (docs/symbols.rst, "Lookup cache invalidation").

The last test is the deployed shape: the real service under gunicorn with
several workers, each warmed with cached hits, then ``tecken-symbols-admin
cleanup-uploads`` deletes the object and every worker answers 404 within the
documented bound, with the per-process ``memory://`` cache and with Redis."""

import json
import os
import re
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from tecken_shared.testing.servers import free_port, wait_for_port
from tecken_symbols.db import utcnow
from tecken_symbols.upload.testing import make_token, make_zip, sym_key, sym_text

REPO = Path(__file__).parents[3]
KEY = "xul.pdb/ABCDEF0123/xul.sym"
AT_ONCE = {"SYMBOLS_CACHE_INVALIDATION_POLL_INTERVAL": "0"}


def test_delete_in_one_worker_reaches_the_memory_of_another(make_service):
    one = make_service(AT_ONCE)
    two = make_service(AT_ONCE)  # another worker process: same database and storage
    one.put(KEY, b"x")
    two.app.get(f"/{KEY}", status=302)
    two.app.get(f"/{KEY}", status=302)  # a hit in two's memory now
    assert two.ctx.cache.get("r:" + KEY) is not None
    one.ctx.writer.delete(KEY, try_symbols=False)
    two.app.get(f"/{KEY}", status=404)


def test_upload_in_one_worker_reaches_a_cached_miss_in_another(
    make_service, moto_server, s3_bucket
):
    q = f"endpoint_url={moto_server.endpoint_url}&region=us-east-1"
    env = {
        "SYMBOLS_STORAGE_URL": f"s3://{s3_bucket}/v1?{q}",
        "SYMBOLS_TRY_STORAGE_URL": f"s3://{s3_bucket}/try/v1?{q}",
        **AT_ONCE,
    }
    one = make_service(env)
    two = make_service(env)
    assert two.ctx.lookups.caches_misses(False)  # remote storage: misses are cached
    two.app.get(f"/{sym_key('a')}", status=404)
    token = make_token(one.ctx, ["upload_symbols"])
    one.app.post(
        "/upload/",
        upload_files=[("s.zip", "s.zip", make_zip({sym_key("a"): sym_text("a")}))],
        headers={"Auth-Token": token},
        status=201,
    )
    two.app.get(f"/{sym_key('a')}", status=302)


def test_workers_heal_a_lost_redis_delete(make_service, redis_url, redis_prefix):
    env = {"SYMBOLS_CACHE_URL": redis_url, "SYMBOLS_CACHE_PREFIX": redis_prefix, **AT_ONCE}
    one = make_service(env)
    two = make_service(env)
    one.put(KEY, b"x")
    two.app.get(f"/{KEY}", status=302)
    # The writer deletes the object, but its Redis delete is lost (here: a
    # stale hit written back, as a slow lookup or a Redis time-out would leave).
    one.ctx.writer.delete(KEY, try_symbols=False)
    one.ctx.cache.set("r:" + KEY, "regular|", 3600)
    # Reading the log, a worker drops the key from memory and from Redis.
    two.app.get(f"/{KEY}", status=404)
    one.app.get(f"/{KEY}", status=404)


def test_log_unreadable_means_memory_unused(make_service):
    svc = make_service(AT_ONCE)
    svc.put(KEY, b"x")
    svc.app.get(f"/{KEY}", status=302)
    svc.ctx.db.execute("ALTER TABLE cache_invalidations RENAME TO gone")
    try:
        # The log cannot be read: nothing is answered from memory.
        svc.ctx.storages.regular.storage.delete(KEY)
        svc.app.get(f"/{KEY}", status=404)
        svc.ctx.storages.regular.storage.put(KEY, b"x")
        svc.app.get(f"/{KEY}", status=302)
    finally:
        svc.ctx.db.execute("ALTER TABLE gone RENAME TO cache_invalidations")


def _age(db, upload_id: int, days: int) -> None:
    when = utcnow() - timedelta(days=days)
    db.execute("UPDATE uploads SET created_at = ? WHERE id = ?", (when, upload_id))
    db.execute("UPDATE file_uploads SET created_at = ? WHERE upload_id = ?", (when, upload_id))


WORKERS = 3
POLL_INTERVAL = 1.0  # the documented bound (the option's default)
LINE_RE = re.compile(r"^<(\d+)> (\d{3})$")


@pytest.mark.slow
@pytest.mark.parametrize("cache", ["memory", "redis"])
def test_cleanup_reaches_every_gunicorn_worker(cache, make_service, tmp_path, request):
    cache_env = {"SYMBOLS_CACHE_URL": "memory://"}
    if cache == "redis":
        cache_env = {
            "SYMBOLS_CACHE_URL": request.getfixturevalue("redis_url"),
            "SYMBOLS_CACHE_PREFIX": request.getfixturevalue("redis_prefix"),
        }
    svc = make_service(cache_env)  # migrates the database; records an old try upload
    token = make_token(svc.ctx, ["upload_symbols"])
    key = sym_key("a")
    upload = svc.app.post(
        "/upload/",
        params=[("try", "1")],
        upload_files=[("s.zip", "s.zip", make_zip({key: sym_text("a")}))],
        headers={"Auth-Token": token},
        status=201,
    ).json["upload"]
    _age(svc.ctx.db, upload["id"], 40)

    port = free_port()
    access_log = tmp_path / "access.log"
    env = {
        **os.environ,
        "TECKEN_ENV_FILE": str(tmp_path / "none.env"),
        "SYMBOLS_DATABASE_URL": svc.ctx.db.url,
        "SYMBOLS_STORAGE_URL": f"file://{tmp_path}/storage/v1?durable=false",
        "SYMBOLS_TRY_STORAGE_URL": f"file://{tmp_path}/storage/try/v1?durable=false",
        "SYMBOLS_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "SYMBOLS_METRICS_BACKEND": "none",
        "SYMBOLS_LOGGING_LEVEL": "WARNING",
        "SYMBOLS_CACHE_INVALIDATION_POLL_INTERVAL": str(POLL_INTERVAL),
        "SYMBOLS_GUNICORN_BIND": f"127.0.0.1:{port}",
        "SYMBOLS_GUNICORN_WORKERS": str(WORKERS),
        **cache_env,
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(REPO / "deploy" / "gunicorn-symbols.conf.py"),
            "--access-logfile",
            str(access_log),
            "--access-logformat",
            "%(p)s %(s)s",
            "tecken_symbols.wsgi:application",
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/{key}?try"

    def answers(count: int) -> None:
        for _ in range(count):
            # A new connection each time, so the workers take turns.
            requests.get(url, allow_redirects=False, timeout=60).close()

    def seen() -> dict[str, set[int]]:
        by_pid: dict[str, set[int]] = {}
        for line in access_log.read_text().splitlines():
            match = LINE_RE.match(line.strip())
            if match:
                by_pid.setdefault(match.group(1), set()).add(int(match.group(2)))
        return by_pid

    try:
        wait_for_port("127.0.0.1", port, 30)
        # Warm every worker: each has answered 302, so each holds the hit.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            answers(20)
            warm = seen()
            if len(warm) == WORKERS and all(codes == {302} for codes in warm.values()):
                break
        assert len(warm) == WORKERS and all(codes == {302} for codes in warm.values()), warm

        cli = subprocess.run(
            [str(Path(sys.executable).parent / "tecken-symbols-admin"), "cleanup-uploads"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert cli.returncode == 0, cli.stderr
        assert json.loads(cli.stdout)["objects_deleted"] == 1
        access_log.write_text("")  # gunicorn appends: only answers after the bound count
        time.sleep(POLL_INTERVAL)  # the documented bound, nothing more

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            answers(20)
            after = seen()
            if len(after) == WORKERS:
                break
        assert len(after) == WORKERS, after
        assert all(codes == {404} for codes in after.values()), (after, cli.stderr)
    finally:
        proc.terminate()
        proc.wait(30)
