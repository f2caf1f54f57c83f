# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""POST /upload/v2/, the tecken-put PUTs and the completion call."""

import gzip
import hashlib

import pytest

from tecken_symbols.upload.testing import DEBUG_ID, make_token, send_v2_file, sym_key, sym_text


def declare(data: bytes, key: str) -> dict:
    return {"key": key, "size": len(data), "md5_hash": hashlib.md5(data).hexdigest()}


@pytest.fixture
def svc(make_service):
    return make_service()


def test_v2_full_cycle(service):
    """Every backend's protocol: tecken-put (filesystem), s3-presigned-put."""
    svc = service
    token = make_token(svc.ctx, ["upload_symbols"])
    data = sym_text(code_id="6A4B9A365000", code_file="ssl.exe")
    pd = b"cabinet bytes"
    files = [declare(data, sym_key()), declare(pd, f"ssltunnel/{DEBUG_ID}/ssltunnel.pd_")]
    resp = svc.app.post_json(
        "/upload/v2/", {"files": files}, headers={"Auth-Token": token}, status=201
    )
    body = resp.json
    direct = svc.ctx.storages.regular.storage.direct_upload_protocol
    assert body["upload_protocol"] == (direct or "tecken-put") and body["try_symbols"] is False
    assert body["user"] == "uploader@example.com" and isinstance(body["created_at"], int)
    sym_action, pd_action = (f["action"] for f in body["files"])
    assert sym_action["type"] == "upload" and sym_action["content_encoding"] == "gzip"
    assert pd_action["content_encoding"] is None
    up = svc.ctx.db.fetchone("SELECT completed_at FROM uploads WHERE id = ?", (body["id"],))
    assert up["completed_at"] is None
    send_v2_file(svc.app, sym_action, gzip.compress(data), token)
    send_v2_file(svc.app, pd_action, pd, token)
    done = svc.app.post(
        f"/upload/v2/complete/{body['id']}", headers={"Auth-Token": token}, status=200
    ).json
    assert done["upload_completed"] is True and done["error"] is None
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
    # RT-12: sizes above SYMBOLS_UPLOAD_MAX_SIZE are refused per file (they
    # could never be PUT), so sums over uploads can't overflow.
    huge = [{"key": f"a/AB/{i}.sym", "size": 2**63 - 1, "md5_hash": "0" * 32} for i in range(2)]
    for _ in range(2):
        resp = svc.app.post_json("/upload/v2/", {"files": huge}, headers=h, status=201)
        assert [f["action"]["type"] for f in resp.json["files"]] == ["error", "error"]
        assert "larger than the limit" in resp.json["files"][0]["action"]["msg"]
    row = svc.ctx.db.fetchone("SELECT size FROM uploads WHERE id = ?", (resp.json["id"],))
    assert row["size"] == 0
    stats = svc.app.get("/api/stats/", headers=h, status=200).json
    assert stats["stats"]["uploads"]["today"]["count"] >= 2
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


def test_v2_put_gzip_bomb_is_bounded(svc):
    """RT-05: a small gzip body inflating far past the declared size is refused
    as soon as the declared size is passed, inflating a chunk at a time."""
    import resource
    import zlib

    h = {"Auth-Token": make_token(svc.ctx, ["upload_symbols"])}
    key = f"bomb.pdb/{DEBUG_ID}/bomb.sym"
    declared = {"key": key, "md5_hash": "0" * 32, "size": 10 * 1024 * 1024}
    resp = svc.app.post_json("/upload/v2/", {"files": [declared]}, headers=h, status=201)
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    body = comp.compress(f"MODULE windows x86_64 {DEBUG_ID} bomb.pdb\n".encode())
    body += b"".join(comp.compress(b"\n" * (1 << 20)) for _ in range(300)) + comp.flush()
    assert len(body) < 1024 * 1024
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    answer = svc.app.put(
        resp.json["files"][0]["action"]["url"].replace("http://symbols.test", ""),
        body,
        headers=h,
        status=400,
    )
    assert "more bytes than the declared size" in answer.json["error"]
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kb < 100 * 1024  # 300 MB inflated would show as far more


def test_v2_deeply_nested_json_is_400(svc):
    h = {"Auth-Token": make_token(svc.ctx, ["upload_symbols"])}
    body = '{"a":' * 100000 + "1" + "}" * 100000
    resp = svc.app.post(
        "/upload/v2/", body, headers={**h, "Content-Type": "application/json"}, status=400
    )
    assert resp.json["error"].startswith("malformed JSON request body")


@pytest.mark.parametrize(
    "key",
    [
        f"../{DEBUG_ID}/x.sym",
        f"./{DEBUG_ID}/x.sym",
        f".tecken-meta/{DEBUG_ID}/x.sym",
        f"a/{DEBUG_ID}/..",
        f"a/{DEBUG_ID}/.",
    ],
)
def test_upload_v2_unstorable_keys_are_refused_not_503(svc, key):
    h = {"Auth-Token": make_token(svc.ctx, ["upload_symbols"])}
    item = {"key": key, "md5_hash": "d41d8cd98f00b204e9800998ecf8427e", "size": 0}
    resp = svc.app.post_json("/upload/v2/", {"files": [item]}, headers=h, status=201)
    action = resp.json["files"][0]["action"]
    assert action["type"] == "error" and "invalid key" in action["msg"]


def test_try_only_token_cannot_complete_a_regular_v2_upload(svc):
    from tecken_symbols.upload.testing import make_token as mk

    regular = mk(svc.ctx, ["upload_symbols"], email="both@example.com")
    user_id = svc.ctx.db.fetchval("SELECT id FROM users WHERE email = ?", ("both@example.com",))
    assert user_id is not None
    try_only = mk(svc.ctx, ["upload_try_symbols"], email="both@example.com")
    data = sym_text()
    resp = svc.app.post_json(
        "/upload/v2/", {"files": [declare(data, sym_key())]}, headers={"Auth-Token": regular}
    )
    assert resp.json["try_symbols"] is False
    url = resp.json["files"][0]["action"]["url"].replace("http://symbols.test", "")
    put = svc.app.put(url, gzip.compress(data), headers={"Auth-Token": try_only}, status=403)
    assert "may only upload try symbols" in put.json["error"]


def test_v2_reads_chunked_bodies(svc):
    """RT-24: a chunked body (no Content-Length) is read, not taken as empty."""
    import io
    import json

    h = {"Auth-Token": make_token(svc.ctx, ["upload_symbols"])}
    body = json.dumps({"files": [declare(sym_text(), sym_key())]}).encode()
    env = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/upload/v2/",
        "CONTENT_TYPE": "application/json",
        "HTTP_TRANSFER_ENCODING": "chunked",
        "HTTP_AUTH_TOKEN": h["Auth-Token"],
        "wsgi.input": io.BytesIO(body),
    }
    import webtest

    resp = svc.app.do_request(webtest.TestRequest.blank("/upload/v2/", env), status="*")
    assert resp.status_int == 201, resp.text
