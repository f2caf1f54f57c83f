# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""POST /upload/v2/ and the tecken-put completion."""

import gzip
import hashlib

import pytest

from tecken_symbols.upload.testing import DEBUG_ID, make_token, sym_key, sym_text


def declare(data: bytes, key: str) -> dict:
    return {"key": key, "size": len(data), "md5_hash": hashlib.md5(data).hexdigest()}


@pytest.fixture
def svc(make_service):
    return make_service()


def test_v2_full_cycle(service):
    svc = service
    token = make_token(svc.ctx, ["upload_symbols"])
    data = sym_text(code_id="6A4B9A365000", code_file="ssl.exe")
    pd = b"cabinet bytes"
    files = [declare(data, sym_key()), declare(pd, f"ssltunnel/{DEBUG_ID}/ssltunnel.pd_")]
    resp = svc.app.post_json(
        "/upload/v2/", {"files": files}, headers={"Auth-Token": token}, status=201
    )
    body = resp.json
    assert body["upload_protocol"] == "tecken-put" and body["try_symbols"] is False
    assert body["user"] == "uploader@example.com" and isinstance(body["created_at"], int)
    sym_action, pd_action = (f["action"] for f in body["files"])
    assert sym_action["type"] == "upload" and sym_action["content_encoding"] == "gzip"
    assert pd_action["content_encoding"] is None
    path = sym_action["url"].replace("http://symbols.test", "")
    up = svc.ctx.db.fetchone("SELECT completed_at FROM uploads WHERE id = ?", (body["id"],))
    assert up["completed_at"] is None
    r = svc.app.put(path, gzip.compress(data), headers={"Auth-Token": token})
    assert r.json["upload_completed"] is False
    r = svc.app.put(
        pd_action["url"].replace("http://symbols.test", ""), pd, headers={"Auth-Token": token}
    )
    assert r.json["upload_completed"] is True
    regular = svc.ctx.storages.regular.storage
    info = regular.metadata(sym_key())
    assert (
        info.content_encoding == "gzip"
        and info.metadata["original_md5_hash"] == files[0]["md5_hash"]
    )
    assert regular.get(f"ssltunnel/{DEBUG_ID}/ssltunnel.pd_") == pd
    # The code-id lookup works for v2 uploads.
    r = svc.app.get("/ssl.exe/6A4B9A365000/ssl.sym", status=302)
    assert r.headers["Location"].startswith(f"/ssltunnel/{DEBUG_ID}/")
    # Declared again: skipped.
    again = svc.app.post_json("/upload/v2/", {"files": files}, headers={"Auth-Token": token}).json
    assert [f["action"] for f in again["files"]] == [{"type": "skip"}, {"type": "skip"}]
    row = svc.ctx.db.fetchone(
        "SELECT completed_at, skipped_keys FROM uploads WHERE id = ?", (again["id"],)
    )
    assert row["completed_at"] is not None


def test_v2_errors(svc):
    token = make_token(svc.ctx, ["upload_try_symbols"])
    h = {"Auth-Token": token}
    for bad in (
        {},
        {"files": "x"},
        {"files": [{"key": "a"}]},
        {"files": [{"key": "a", "size": "1", "md5_hash": "x"}]},
        {"files": [{"key": "a/AB/b.sym", "size": 2**63, "md5_hash": "0" * 32}]},
        {"files": [{"key": "a/AB/b.sym", "size": -1, "md5_hash": "0" * 32}]},
        [1],
    ):
        assert svc.app.post_json("/upload/v2/", bad, headers=h, status=400).json == {
            "error": "malformed JSON request body"
        }
    assert (
        svc.app.post("/upload/v2/", b"{nope", headers=h, status=400).json["error"]
        == "malformed JSON request body"
    )
    many = {
        "files": [{"key": f"a/AB/{i}.sym", "size": 1, "md5_hash": "0" * 32} for i in range(1025)]
    }
    assert svc.app.post_json("/upload/v2/", many, headers=h, status=400).json == {
        "error": "too many files"
    }
    resp = svc.app.post_json(
        "/upload/v2/",
        {
            "files": [
                {"key": "bad", "size": 1, "md5_hash": "0" * 32},
                {"key": "a/AB/b.sym", "size": 1, "md5_hash": "XYZ"},
            ]
        },
        headers=h,
        status=201,
    )
    assert resp.json["try_symbols"] is True
    assert [f["action"] for f in resp.json["files"]] == [
        {"type": "error", "msg": "invalid key"},
        {"type": "error", "msg": "invalid MD5 hex digest"},
    ]
    # Sizes that each fit a BIGINT but not their sum: the total is capped.
    huge = [{"key": f"a/AB/{i}.sym", "size": 2**62, "md5_hash": "0" * 32} for i in range(2)]
    resp = svc.app.post_json("/upload/v2/", {"files": huge}, headers=h, status=201)
    row = svc.ctx.db.fetchone("SELECT size FROM uploads WHERE id = ?", (resp.json["id"],))
    assert row["size"] == 2**63 - 1
    # An upload id beyond a BIGINT matches no route.
    svc.app.put(f"/upload/v2/files/{'9' * 30}/a/AB/b.sym", b"x", headers=h, status=404)


def test_v2_put_checks_content(svc):
    token = make_token(svc.ctx, ["upload_symbols"])
    data = sym_text()
    body = svc.app.post_json(
        "/upload/v2/", {"files": [declare(data, sym_key())]}, headers={"Auth-Token": token}
    ).json
    path = body["files"][0]["action"]["url"].replace("http://symbols.test", "")
    h = {"Auth-Token": token}
    assert "not valid gzip" in svc.app.put(path, data, headers=h, status=400).json["error"]
    assert (
        "does not match"
        in svc.app.put(path, gzip.compress(data[:-1]), headers=h, status=400).json["error"]
    )
    assert svc.ctx.storages.regular.storage.metadata(sym_key()) is None
    other = make_token(svc.ctx, ["upload_symbols"], email="other@example.com")
    assert svc.app.put(path, gzip.compress(data), headers={"Auth-Token": other}, status=404)
    assert svc.app.put(f"/upload/v2/files/{body['id']}/a/AB/c.sym", b"x", headers=h, status=404)
    svc.app.put(path, gzip.compress(data), headers=h, status=200)


def test_v2_put_validates_sym(svc):
    token = make_token(svc.ctx, ["upload_symbols"])
    data = sym_text(stack_between=True)
    body = svc.app.post_json(
        "/upload/v2/", {"files": [declare(data, sym_key())]}, headers={"Auth-Token": token}
    ).json
    path = body["files"][0]["action"]["url"].replace("http://symbols.test", "")
    resp = svc.app.put(path, gzip.compress(data), headers={"Auth-Token": token}, status=400)
    assert "STACK" in resp.json["error"]
