# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The try-upload cleanup command."""

import json
from datetime import timedelta

from tecken_symbols.db import utcnow
from tecken_symbols.upload import cleanup
from tecken_symbols.upload.testing import make_token, make_zip, sym_key, sym_text


def post(svc, token, members, fields=None):
    return svc.app.post(
        "/upload/",
        params=list((fields or {}).items()),
        upload_files=[("s.zip", "s.zip", make_zip(members))],
        headers={"Auth-Token": token},
    ).json["upload"]


def age(svc, upload_id, days):
    when = utcnow() - timedelta(days=days)
    svc.ctx.db.execute("UPDATE uploads SET created_at = ? WHERE id = ?", (when, upload_id))
    svc.ctx.db.execute(
        "UPDATE file_uploads SET created_at = ? WHERE upload_id = ?", (when, upload_id)
    )


def test_cleanup(service):
    svc = service
    token = make_token(svc.ctx, ["upload_symbols"])
    try_storage = svc.ctx.storages.try_.storage
    writer = svc.ctx.writer
    old_try = post(
        svc, token, {sym_key("a"): sym_text("a"), sym_key("b"): sym_text("b")}, {"try": "1"}
    )
    age(svc, old_try["id"], 40)
    # A newer try upload skipped b: its object must stay.
    newer = post(svc, token, {sym_key("b"): sym_text("b")}, {"try": "1"})
    assert newer["skipped_keys"] == [sym_key("b")]
    old_regular = post(svc, token, {sym_key("r"): sym_text("r")})
    age(svc, old_regular["id"], 800)
    recent = post(svc, token, {sym_key("s"): sym_text("s")})

    dry = cleanup.cleanup_uploads(
        svc.ctx.db, try_days=30, regular_days=730, writer=writer, dry_run=True
    )
    assert dry.try_uploads == 1 and try_storage.metadata(sym_key("a")) is not None

    report = cleanup.cleanup_uploads(svc.ctx.db, try_days=30, regular_days=730, writer=writer)
    assert (report.try_uploads, report.try_files, report.regular_uploads, report.regular_files) == (
        1,
        2,
        1,
        1,
    )
    assert (report.objects_deleted, report.objects_kept) == (1, 1)
    assert try_storage.metadata(sym_key("a")) is None
    assert try_storage.metadata(sym_key("b")) is not None
    assert svc.ctx.storages.regular.storage.metadata(sym_key("r")) is not None  # symbols kept
    ids = {r["id"] for r in svc.ctx.db.fetchall("SELECT id FROM uploads")}
    assert ids == {newer["id"], recent["id"]}


def test_cleanup_command(make_service, tmp_path, monkeypatch, capsys):
    svc = make_service()
    token = make_token(svc.ctx, ["upload_symbols"])
    up = post(svc, token, {sym_key("a"): sym_text("a")}, {"try": "1"})
    age(svc, up["id"], 31)
    monkeypatch.setenv("SYMBOLS_DATABASE_URL", svc.ctx.db.url)
    monkeypatch.setenv("SYMBOLS_STORAGE_URL", f"file://{tmp_path}/storage/v1?durable=false")
    monkeypatch.setenv("SYMBOLS_TRY_STORAGE_URL", f"file://{tmp_path}/storage/try/v1?durable=false")
    monkeypatch.setenv("TECKEN_ENV_FILE", str(tmp_path / "none.env"))
    assert cleanup.main(["--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["try_uploads"] == 1
    assert cleanup.main([]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["try_uploads"] == 1 and out["objects_deleted"] == 1
    assert svc.ctx.storages.try_.storage.metadata(sym_key("a")) is None


def test_remove_orphaned_files(tmp_path):
    import os
    import time

    (tmp_path / "old.zip").write_bytes(b"x")
    (tmp_path / "new.zip").write_bytes(b"x")
    past = time.time() - 3600
    os.utime(tmp_path / "old.zip", (past, past))
    assert cleanup.remove_orphaned_files(str(tmp_path), 900) == 1
    assert os.listdir(tmp_path) == ["new.zip"]
    assert cleanup.remove_orphaned_files(str(tmp_path / "nope"), 900) == 0


def test_admin_subcommand(make_service, tmp_path, monkeypatch, capsys):
    from tecken_symbols import cli

    svc = make_service()
    monkeypatch.setenv("SYMBOLS_STORAGE_URL", f"file://{tmp_path}/storage/v1?durable=false")
    monkeypatch.setenv("SYMBOLS_TRY_STORAGE_URL", f"file://{tmp_path}/storage/try/v1?durable=false")
    monkeypatch.setenv("TECKEN_ENV_FILE", str(tmp_path / "none.env"))
    code = cli.main(["--database-url", svc.ctx.db.url, "cleanup-uploads", "--dry-run"])
    assert code == 0 and json.loads(capsys.readouterr().out)["try_uploads"] == 0


def test_abandoned_uploads_marked(make_service):
    svc = make_service()
    token = make_token(svc.ctx, ["upload_symbols"])
    done = post(svc, token, {sym_key("a"): sym_text("a")})
    svc.ctx.db.execute(
        "INSERT INTO uploads (user_id, filename, created_at) SELECT user_id, 'dead.zip', ? FROM uploads",
        (utcnow() - timedelta(hours=30),),
    )
    report = cleanup.cleanup_uploads(svc.ctx.db, try_days=30, regular_days=0, abandoned_hours=24)
    assert report.abandoned_marked == 1
    rows = {
        r["filename"]: r["error"]
        for r in svc.ctx.db.fetchall("SELECT filename, error FROM uploads")
    }
    assert rows["dead.zip"].startswith("abandoned") and rows["s.zip"] is None
    assert done["completed_at"]


def test_cleanup_forgets_cached_downloads_of_deleted_try_objects(service):
    svc = service
    token = make_token(svc.ctx, ["upload_symbols"])
    up = post(svc, token, {sym_key("a"): sym_text("a")}, {"try": "1"})
    age(svc, up["id"], 40)
    url = "/" + sym_key("a") + "?try"
    assert svc.app.get(url).status_int == 302  # now a cached hit
    cleanup.cleanup_uploads(
        svc.ctx.db,
        try_days=30,
        regular_days=0,
        writer=svc.ctx.writer,
    )
    assert svc.app.get(url, status=404).status_int == 404


def test_stale_storage_temp_files_are_swept(tmp_path):
    """RT-22: a worker killed mid-write leaves a dot-.tmp file in storage."""
    import os
    import time

    root = tmp_path / "storage"
    (root / "m.pdb" / "AB").mkdir(parents=True)
    stale = root / "m.pdb" / "AB" / ".m.sym.x1.tmp"
    fresh = root / "m.pdb" / "AB" / ".m.sym.x2.tmp"
    kept = root / "m.pdb" / "AB" / "m.sym"
    for path in (stale, fresh, kept):
        path.write_bytes(b"x")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    os.utime(kept, (old, old))
    assert cleanup.remove_stale_storage_temp_files(str(root), 900) == 1
    assert not stale.exists() and fresh.exists() and kept.exists()
