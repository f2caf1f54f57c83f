# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The database is authoritative for downloads (issue 17): a key no upload
stored is answered 404 without asking a cache or storage, and an upload is
found at once in its own worker and within the invalidation log's poll
interval in every other; operators with objects the service never recorded
ask storage (SYMBOLS_DOWNLOAD_ASK_STORAGE_FOR_UNKNOWN_KEYS) or import them
(``tecken-symbols-admin import-keys``)."""

import time
from datetime import timedelta

from tecken_symbols.cli import main
from tecken_symbols.db import utcnow
from tecken_symbols.upload.cleanup import cleanup_uploads
from tecken_symbols.upload.testing import make_token, make_zip, sym_key, sym_text

from .conftest import fs_storage_env

AT_ONCE = {"SYMBOLS_CACHE_INVALIDATION_POLL_INTERVAL": "0"}
ASK_STORAGE = {"SYMBOLS_DOWNLOAD_ASK_STORAGE_FOR_UNKNOWN_KEYS": "true"}


def loaded(svc):
    """The service after its first lookup loaded the filter of stored keys."""
    svc.app.get("/nothing.pdb/ABCDEF/nothing.sym", status=404)
    assert svc.ctx.lookups.known_keys.wait_ready(10)
    return svc


def upload(svc, name: str, *, try_symbols: bool = False) -> str:
    token = make_token(svc.ctx, ["upload_try_symbols" if try_symbols else "upload_symbols"])
    svc.app.post(
        "/upload/",
        params=[("try", "1")] if try_symbols else [],
        upload_files=[("s.zip", "s.zip", make_zip({sym_key(name): sym_text(name)}))],
        headers={"Auth-Token": token},
        status=201,
    )
    return sym_key(name)


def lookups_by_result(metricsmock) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in metricsmock.get_records():
        if record.key == "tecken.symboldownloader.cache":
            for tag in record.tags:
                counts[tag] = counts.get(tag, 0) + 1
    return counts


def test_unknown_keys_are_not_asked_of_storage(database_url, storage_env, make_service):
    from markus.testing import MetricsMock

    svc = loaded(make_service({**storage_env, **AT_ONCE}, database_url=database_url))
    # An object put behind the service's back: no upload stored it.
    svc.ctx.storages.regular.storage.put("a.pdb/ABC/a.sym", b"x")
    with MetricsMock() as mm:
        svc.app.get("/a.pdb/ABC/a.sym", status=404)
        svc.app.get("/never.pdb/ABCDEF/never.sym", status=404)
        svc.app.get("/try/never.pdb/ABCDEF/never.sym", status=404)
        assert lookups_by_result(mm) == {"result:unknown_key": 3}
    # An upload is found at once in the worker that stored it.
    key = upload(svc, "b")
    svc.app.get(f"/{key}", status=302)
    svc.app.get(f"/try/{key}", status=302)
    key = upload(svc, "c", try_symbols=True)
    svc.app.get(f"/try/{key}", status=302)
    svc.app.get(f"/{key}", status=404)  # a try upload: not for regular requests


def test_upload_in_one_worker_reaches_another(make_service, database_url):
    one = loaded(make_service(AT_ONCE, database_url=database_url))
    two = loaded(make_service(AT_ONCE, database_url=database_url))
    key = sym_key("a")
    two.app.get(f"/{key}", status=404)
    assert upload(one, "a") == key
    two.app.get(f"/{key}", status=302)  # poll interval 0: at once


def test_upload_reaches_another_worker_within_the_poll_interval(make_service):
    env = {"SYMBOLS_CACHE_INVALIDATION_POLL_INTERVAL": "0.2"}
    one = loaded(make_service(env))
    two = loaded(make_service(env))
    key = upload(one, "a")
    time.sleep(0.25)
    two.app.get(f"/{key}", status=302)


def test_a_new_worker_loads_what_was_stored(make_service, database_url):
    one = make_service(AT_ONCE, database_url=database_url)
    key = upload(one, "a")
    v2_like = sym_key("b")
    one.put(v2_like, b"x")  # stored and logged, without a FileUpload row
    two = loaded(make_service(AT_ONCE, database_url=database_url))
    two.app.get(f"/{key}", status=302)
    two.app.get(f"/{v2_like}", status=302)
    assert two.ctx.lookups.known_keys.may_exist("x.pdb/ABC/x.sym") is False


def test_stored_keys_outlive_upload_records(make_service, database_url):
    svc = make_service(AT_ONCE, database_url=database_url)
    key = upload(svc, "a")
    long_ago = utcnow() - timedelta(days=800)
    svc.ctx.db.execute("UPDATE uploads SET created_at = ?", (long_ago,))
    svc.ctx.db.execute("UPDATE file_uploads SET created_at = ?", (long_ago,))
    svc.ctx.db.execute("DELETE FROM cache_invalidations")
    report = cleanup_uploads(svc.ctx.db, try_days=30, regular_days=730)
    assert report.regular_files == 1
    assert svc.ctx.db.fetchval("SELECT COUNT(*) FROM file_uploads") == 0
    fresh = loaded(make_service(AT_ONCE, database_url=database_url))
    fresh.app.get(f"/{key}", status=302)


def test_ask_storage_for_unknown_keys(make_service):
    svc = make_service({**ASK_STORAGE, **AT_ONCE})
    assert svc.ctx.lookups.known_keys is None
    svc.ctx.storages.regular.storage.put("a.pdb/ABC/a.sym", b"x")
    svc.app.get("/a.pdb/ABC/a.sym", status=302)


def test_import_keys_makes_a_migrated_bucket_known(make_service, tmp_path, capsys, monkeypatch):
    from tecken_shared.storage import storage_from_url

    legacy = f"file://{tmp_path}/legacy?durable=false"
    storage_from_url(legacy).put("old.pdb/ABC/old.sym", b"legacy")
    env = {"SYMBOLS_EXTRA_STORAGE_URLS": legacy, **AT_ONCE}
    svc = loaded(make_service(env))
    svc.ctx.storages.regular.storage.put("mig.pdb/ABC/mig.sym", b"migrated")
    svc.app.get("/mig.pdb/ABC/mig.sym", status=404)
    svc.app.get("/old.pdb/ABC/old.sym", status=404)

    # The command reads the service's configuration.
    for name, value in {
        **fs_storage_env(tmp_path),
        "SYMBOLS_EXTRA_STORAGE_URLS": legacy,
        "TECKEN_ENV_FILE": str(tmp_path / "none.env"),
    }.items():
        monkeypatch.setenv(name, value)
    code = main(["--database-url", svc.ctx.db.url, "import-keys"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.splitlines() == [
        "regular (regular): 1 keys recorded",
        "try (try): 0 keys recorded",
        "extra1 (extra1): 1 keys recorded",
    ]
    # The running worker learns them through the invalidation log.
    svc.app.get("/mig.pdb/ABC/mig.sym", status=302)
    svc.app.get("/old.pdb/ABC/old.sym", status=302)

    code = main(["--database-url", svc.ctx.db.url, "import-keys", "--backend", "nope"])
    assert code == 1 and "no storage backend 'nope'" in capsys.readouterr().err


def test_database_unreachable_means_storage_is_asked(make_service):
    svc = loaded(make_service(AT_ONCE))
    svc.ctx.storages.regular.storage.put("a.pdb/ABC/a.sym", b"x")
    svc.app.get("/a.pdb/ABC/a.sym", status=404)
    svc.ctx.db.execute("ALTER TABLE cache_invalidations RENAME TO gone")
    try:
        # The log cannot be read: the filter may be stale, so storage answers.
        svc.app.get("/a.pdb/ABC/a.sym", status=302)
    finally:
        svc.ctx.db.execute("ALTER TABLE gone RENAME TO cache_invalidations")
    # Readable again (the log is tried again 5 s after a failure): the filter
    # is loaded again before it answers.
    known = svc.ctx.lookups.known_keys
    assert not known.ready
    deadline = time.monotonic() + 15
    while not known.ready and time.monotonic() < deadline:
        svc.app.get("/a.pdb/ABC/a.sym", status=302)
        time.sleep(0.2)
    assert known.wait_ready(10)
    svc.app.get("/a.pdb/ABC/a.sym", status=404)


def test_a_full_filter_is_loaded_again(make_service, monkeypatch):
    from tecken_symbols import stored_keys

    monkeypatch.setattr(stored_keys, "MIN_CAPACITY", 3)
    svc = loaded(make_service(AT_ONCE))
    count = 5
    keys = [upload(svc, f"k{i}") for i in range(count)]
    svc.app.get("/nothing.pdb/ABCDEF/nothing.sym", status=404)  # the poll that reloads
    assert svc.ctx.lookups.known_keys.wait_ready(10)
    for key in keys:
        svc.app.get(f"/{key}", status=302)
    assert svc.ctx.lookups.known_keys._capacity >= 2 * count


def test_with_redis_an_upload_is_found_at_once_on_every_node(make_service, redis_url, redis_prefix):
    # The default poll interval (1 s): the filter of the other worker does not
    # have the key yet; the writer's marker in Redis answers.
    env = {"SYMBOLS_CACHE_URL": redis_url, "SYMBOLS_CACHE_PREFIX": redis_prefix}
    downloader = loaded(make_service(env))
    uploader = make_service(env)
    key = sym_key("a")
    downloader.app.get(f"/{key}", status=404)
    upload(uploader, "a")
    assert downloader.ctx.lookups.known_keys.may_exist(key) is False
    downloader.app.get(f"/{key}", status=302)
