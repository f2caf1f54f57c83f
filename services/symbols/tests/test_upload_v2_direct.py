# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""v2 uploads straight to the storage: GCS resumable sessions on the GCS
emulator, S3 presigned PUTs on the moto server, each object verified and
recorded on the completion call or on its first lookup."""

import gzip
import hashlib

import pytest
import requests

from tecken_symbols.upload.testing import DEBUG_ID, make_token, send_v2_file, sym_key, sym_text

PD_KEY = f"ssltunnel/{DEBUG_ID}/ssltunnel.pd_"


def declare(data: bytes, key: str) -> dict:
    return {"key": key, "size": len(data), "md5_hash": hashlib.md5(data).hexdigest()}


@pytest.fixture
def svc(make_service, direct_storage_env):
    return make_service(direct_storage_env)


def start(svc, files, token):
    return svc.app.post_json(
        "/upload/v2/", {"files": files}, headers={"Auth-Token": token}, status=201
    ).json


def complete(svc, upload_id, token):
    return svc.app.post(
        f"/upload/v2/complete/{upload_id}", headers={"Auth-Token": token}, status=200
    ).json


def file_row(svc, key):
    return svc.ctx.db.fetchone(
        "SELECT completed_at, debug_id, code_id, size FROM file_uploads WHERE key = ? "
        "ORDER BY id DESC LIMIT 1",
        (key,),
    )


def test_answers_name_the_backends_protocol(svc):
    token = make_token(svc.ctx, ["upload_symbols"])
    data = sym_text()
    body = start(svc, [declare(data, sym_key()), declare(b"pd", PD_KEY)], token)
    protocol = svc.ctx.storages.regular.storage.direct_upload_protocol
    assert body["upload_protocol"] == protocol
    sym_action, pd_action = (f["action"] for f in body["files"])
    if protocol == "gcs-resumable":
        # Exactly Tecken's answer: a resumable session URL per file.
        assert set(sym_action) == {"type", "url", "content_encoding"}
        assert "uploadType=resumable" in sym_action["url"]
    else:
        assert sym_action["method"] == "PUT" and "X-Amz-Signature" in sym_action["url"]
        assert sym_action["headers"]["Content-Encoding"] == "gzip"
        assert (
            sym_action["headers"]["x-amz-meta-original_md5_hash"] == hashlib.md5(data).hexdigest()
        )
    assert sym_action["content_encoding"] == "gzip" and pd_action["content_encoding"] is None
    row = svc.ctx.db.fetchone("SELECT upload_protocol FROM uploads WHERE id = ?", (body["id"],))
    assert row["upload_protocol"] == protocol


def test_other_objects_are_found_without_the_database(svc, monkeypatch):
    """Only objects a direct upload wrote (their metadata names it) make a
    lookup query the database."""
    svc.put(PD_KEY, b"stored by v1", metadata={"original_size": "12"})
    calls = []
    real = svc.ctx.direct.settle
    monkeypatch.setattr(svc.ctx.direct, "settle", lambda *a: calls.append(a) or real(*a))
    svc.app.get(f"/{PD_KEY}", status=302)
    assert calls == []


def test_tecken_client_unchanged_is_recorded_on_first_lookup(svc):
    """A Tecken v2 client PUTs the body and never calls back: the first
    download verifies and records the file, so the code-id lookup works."""
    token = make_token(svc.ctx, ["upload_symbols"])
    data = sym_text(code_id="6A4B9A365000", code_file="ssl.exe")
    body = start(svc, [declare(data, sym_key())], token)
    action = body["files"][0]["action"]
    send_v2_file(svc.app, action, gzip.compress(data), token)
    assert file_row(svc, sym_key())["completed_at"] is None
    # Not recorded yet: the code-id lookup cannot find it.
    svc.app.get("/ssl.exe/6A4B9A365000/ssl.sym", status=404)
    r = svc.app.get(f"/{sym_key()}", status=302)
    row = file_row(svc, sym_key())
    assert row["completed_at"] is not None and row["debug_id"] == DEBUG_ID
    assert row["code_id"] == "6A4B9A365000"
    up = svc.ctx.db.fetchone("SELECT completed_at FROM uploads WHERE id = ?", (body["id"],))
    assert up["completed_at"] is not None
    got = requests.get(r.headers["Location"], timeout=10)
    assert got.status_code == 200
    content = got.content
    assert (gzip.decompress(content) if content[:2] == b"\x1f\x8b" else content) == data
    svc.ctx.lookups.forget(None, None)
    r = svc.app.get("/ssl.exe/6A4B9A365000/ssl.sym", status=302)
    assert r.headers["Location"].startswith(f"/ssltunnel/{DEBUG_ID}/")
    # The completion call afterwards has nothing left to do.
    assert complete(svc, body["id"], token) == {
        "id": body["id"],
        "upload_protocol": body["upload_protocol"],
        "upload_completed": True,
        "error": None,
        "files": [],
    }


def test_completion_verifies_and_records(svc, metricsmock):
    token = make_token(svc.ctx, ["upload_symbols"])
    data = sym_text()
    pd = b"cabinet bytes" * 100
    body = start(svc, [declare(data, sym_key()), declare(pd, PD_KEY)], token)
    sym_action, pd_action = (f["action"] for f in body["files"])
    send_v2_file(svc.app, sym_action, gzip.compress(data), token)
    done = complete(svc, body["id"], token)
    assert done["upload_completed"] is False
    assert {f["key"]: f["status"] for f in done["files"]} == {
        sym_key(): "completed",
        PD_KEY: "pending",
    }
    send_v2_file(svc.app, pd_action, pd, token)
    done = complete(svc, body["id"], token)
    assert done["upload_completed"] is True and done["files"] == [
        {"key": PD_KEY, "status": "completed"}
    ]
    assert file_row(svc, PD_KEY)["size"] == len(pd)
    assert metricsmock.filter_records("incr", stat="tecken.upload_v2_verified")


def test_bad_sym_is_deleted_and_the_upload_fails(svc):
    token = make_token(svc.ctx, ["upload_symbols"])
    data = sym_text(stack_between=True)
    body = start(svc, [declare(data, sym_key())], token)
    send_v2_file(svc.app, body["files"][0]["action"], gzip.compress(data), token)
    done = complete(svc, body["id"], token)
    assert done["upload_completed"] is False
    assert done["files"][0]["status"] == "failed" and "STACK" in done["files"][0]["reason"]
    assert "STACK" in done["error"]
    assert svc.ctx.storages.regular.storage.metadata(sym_key()) is None
    assert file_row(svc, sym_key()) is None
    svc.app.get(f"/{sym_key()}", status=404)


def test_wrong_bytes_fail_on_first_lookup(svc):
    """Bytes that are not the declared ones (md5 from the storage's metadata)
    are deleted when a lookup first finds them: the download is a 404."""
    token = make_token(svc.ctx, ["upload_symbols"])
    body = start(svc, [declare(b"the declared bytes", PD_KEY)], token)
    action = body["files"][0]["action"]
    send_v2_file(svc.app, action, b"other bytes, same size", token)
    svc.app.get(f"/{PD_KEY}", status=404)
    assert svc.ctx.storages.regular.storage.metadata(PD_KEY) is None
    up = svc.ctx.db.fetchone("SELECT completed_at, error FROM uploads WHERE id = ?", (body["id"],))
    assert up["completed_at"] is None and "does not match" in up["error"]


def test_gzip_body_larger_than_declared_fails(svc):
    token = make_token(svc.ctx, ["upload_symbols"])
    data = sym_text()
    body = start(svc, [declare(data, sym_key())], token)
    send_v2_file(
        svc.app, body["files"][0]["action"], gzip.compress(data + b"FUNC 1 1 0 x\n"), token
    )
    done = complete(svc, body["id"], token)
    assert done["files"][0]["status"] == "failed"
    assert "more bytes than the declared size" in done["files"][0]["reason"]
    assert svc.ctx.storages.regular.storage.metadata(sym_key()) is None


def test_an_older_object_is_left_alone_until_replaced(svc):
    token = make_token(svc.ctx, ["upload_symbols"])
    svc.put(PD_KEY, b"old bytes", metadata={"original_size": "9", "original_md5_hash": "0" * 32})
    new = b"new bytes!"
    body = start(svc, [declare(new, PD_KEY)], token)
    done = complete(svc, body["id"], token)
    assert done["files"][0]["status"] == "pending"
    assert svc.ctx.storages.regular.storage.get(PD_KEY) == b"old bytes"
    svc.app.get(f"/{PD_KEY}", status=302)  # still the old object, still pending
    send_v2_file(svc.app, body["files"][0]["action"], new, token)
    assert complete(svc, body["id"], token)["upload_completed"] is True


def test_oversized_file_is_refused_when_declared(make_service, direct_storage_env):
    svc = make_service({**direct_storage_env, "SYMBOLS_UPLOAD_MAX_SIZE": "1000"})
    token = make_token(svc.ctx, ["upload_symbols"])
    body = start(svc, [{"key": PD_KEY, "size": 1001, "md5_hash": "0" * 32}], token)
    action = body["files"][0]["action"]
    assert action["type"] == "error" and "larger than the limit" in action["msg"]


def test_complete_is_for_the_uploader_only(svc):
    token = make_token(svc.ctx, ["upload_symbols"])
    body = start(svc, [declare(b"x", PD_KEY)], token)
    other = make_token(svc.ctx, ["upload_symbols"], email="other@example.com")
    svc.app.post(f"/upload/v2/complete/{body['id']}", headers={"Auth-Token": other}, status=404)
    svc.app.post(f"/upload/v2/complete/{body['id']}", status=403)


def test_tecken_put_when_configured(make_service, direct_storage_env):
    svc = make_service({**direct_storage_env, "SYMBOLS_UPLOAD_V2_PROTOCOL": "tecken-put"})
    token = make_token(svc.ctx, ["upload_symbols"])
    body = start(svc, [declare(b"x", PD_KEY)], token)
    assert body["upload_protocol"] == "tecken-put"
    assert body["files"][0]["action"]["url"].startswith("http://symbols.test/upload/v2/files/")


def test_try_upload_goes_to_try_storage_and_is_verified_on_a_try_lookup(svc):
    token = make_token(svc.ctx, ["upload_try_symbols"])
    data = sym_text()
    body = start(svc, [declare(data, sym_key())], token)
    assert body["try_symbols"] is True
    send_v2_file(svc.app, body["files"][0]["action"], gzip.compress(data), token)
    assert svc.ctx.storages.regular.storage.metadata(sym_key()) is None
    svc.app.get(f"/{sym_key()}", status=404)  # regular downloads don't see try symbols
    svc.app.get(f"/try/{sym_key()}", status=302)
    row = file_row(svc, sym_key())
    assert row["completed_at"] is not None and row["debug_id"] == DEBUG_ID
