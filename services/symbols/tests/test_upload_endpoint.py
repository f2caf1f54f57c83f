# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""POST /upload/ (v1) through the whole app: every fixture zip against every
rule, try by field and by token, records, dedupe, cache invalidation."""

import gzip
import threading

import pytest

from tecken_shared.testing.servers import wsgi_server
from tecken_symbols.upload.testing import (
    DEBUG_ID,
    FIXTURES,
    make_token,
    make_zip,
    sym_key,
    sym_text,
)

SYM = "xpcshell.dbg/A7D6F1BB18CD4CB48/xpcshell.sym"
JPEG = "flag/DEADBEEF/flag.jpeg"
NO_VALIDATION = {"SYMBOLS_UPLOAD_VALIDATE_CONTENT": "false"}


def post_zip(svc, token, data, name="sample.zip", fields=None, status="*"):
    return svc.app.post(
        "/upload/",
        params=list((fields or {}).items()),
        upload_files=[(name, name, data)],
        headers={"Auth-Token": token},
        status=status,
    )


def fixture(name):
    return (FIXTURES / name).read_bytes()


@pytest.fixture
def svc(make_service):
    return make_service(NO_VALIDATION)


@pytest.fixture
def token(svc):
    return make_token(svc.ctx, ["upload_symbols"])


def test_sample_zip_happy_path(service, tmp_path):
    # Every database x storage combination.
    svc = service
    svc.app.app  # noqa: B018
    svc.ctx.upload.validate_content = False
    key = make_token(svc.ctx, ["upload_symbols"])
    resp = post_zip(svc, key, fixture("sample.zip"))
    assert resp.status_int == 201
    upload = resp.json["upload"]
    assert upload["filename"] == "sample.zip" and upload["size"] == 70398
    assert upload["try_symbols"] is False and upload["skipped_keys"] == []
    assert upload["user"] == "uploader@example.com" and upload["redirect_urls"] == []
    assert (
        upload["completed_at"].endswith("Z") and upload["bucket"] == svc.ctx.storages.regular.name
    )
    # Tecken's shape: the bucket's bare name (or the label on the filesystem),
    # never a storage URL, key prefix or path; the API views show the same.
    storage_name = svc.ctx.storages.regular.storage.name
    bare = "regular" if storage_name.startswith("file://") else storage_name[5:].split("/")[0]
    assert upload["bucket"] == bare
    listed = svc.app.get("/api/uploads/", headers={"Auth-Token": key}).json["uploads"][0]
    assert listed["bucket_name"] == bare
    regular = svc.ctx.storages.regular.storage
    info = regular.metadata(SYM)
    assert info.content_encoding == "gzip" and info.metadata["original_size"] == "1156"
    assert gzip.decompress(regular.get(SYM)).startswith(b"MODULE mac")
    assert regular.metadata(JPEG).size == 69183
    # Download of the .sym works now.
    assert svc.app.get(f"/{SYM}", status=302)
    # Retry: both skipped.
    again = post_zip(svc, key, fixture("sample.zip")).json["upload"]
    assert sorted(again["skipped_keys"]) == [JPEG, SYM]
    rows = svc.ctx.db.fetchall("SELECT key, debug_id, compressed FROM file_uploads ORDER BY key")
    assert [(r["key"], r["debug_id"], bool(r["compressed"])) for r in rows] == [
        (JPEG, None, False),
        (SYM, "BBACA09FD1C13F6C84254BFD8732AF400", True),
    ]
    up = svc.ctx.db.fetchone("SELECT * FROM uploads WHERE id = ?", (upload["id"],))
    assert up["ignored_keys"] == '["build-symbols.txt"]' and up["error"] is None


def test_sample_rejected_with_validation_on(make_service):
    svc = make_service()
    key = make_token(svc.ctx, ["upload_symbols"])
    resp = post_zip(svc, key, fixture("sample.zip"), status=400)
    assert "debug id BBACA09FD1C13F6C84254BFD8732AF400 does not match" in resp.json["error"]
    assert svc.ctx.db.fetchval("SELECT COUNT(*) FROM uploads") == 0
    assert list(svc.ctx.storages.regular.storage.list("")) == []
    ok = make_zip(
        {sym_key(): sym_text(), "ssltunnel/" + DEBUG_ID + "/ssltunnel.dbg.gz": b"\x1f\x8b"}
    )
    assert post_zip(svc, key, ok, name="ok.zip").status_int == 201


@pytest.mark.parametrize(
    "name,status,message",
    [
        ("sample-with-ignorable-files.zip", 201, None),
        ("duplicated-same-size.zip", 201, None),
        ("invalid.zip", 400, "(First unrecognized pattern was 'xpcshell.sym')"),
        ("invalid-characters.zip", 400, "'xpcfoo.dbg/A7D6F1BB18CD4CB48/p%eter.sym'"),
        ("notazipdespiteitsname.zip", 400, "File is not a zip file"),
        ("duplicated-different-size.zip", 400, "difference sizes (24 != 39)"),
    ],
)
def test_fixture_rules(svc, token, name, status, message):
    resp = post_zip(svc, token, fixture(name), name=name, status=status)
    if message:
        assert message in resp.json["error"]


def test_validation_rejects_plain_text_sym(make_service):
    svc = make_service()
    key = make_token(svc.ctx, ["upload_symbols"])
    resp = post_zip(svc, key, fixture("duplicated-same-size.zip"), status=400)
    assert resp.json["error"].startswith(
        "Invalid symbol file 'foo.pdb/50FEB8DBDC024C66B42193D881CE80E12/ntdll.sym': "
        "does not start with a MODULE line"
    )


def test_stack_before_func_rejected(make_service):
    svc = make_service()
    key = make_token(svc.ctx, ["upload_symbols"])
    bad = make_zip({sym_key(): sym_text(stack_between=True)})
    resp = post_zip(svc, key, bad, name="bad.zip", status=400)
    assert "comes after a STACK record" in resp.json["error"] and sym_key() in resp.json["error"]


def test_generated_rules(svc, token):
    assert post_zip(svc, token, b"x", name="x.tar.gz", status=400).json == {
        "error": 'Unrecognized archive file extension ".gz"'
    }
    assert "no files" in post_zip(svc, token, make_zip({}), status=400).json["error"]
    evil = make_zip({"../etc/ABC/passwd": b"x"})
    assert "outside the archive" in post_zip(svc, token, evil, status=400).json["error"]
    snippet = make_zip({"qcom/proprietary/ABC/x.sym": b"x"})
    assert "'qcom/proprietary'" in post_zip(svc, token, snippet, status=400).json["error"]
    # Paths storage cannot hold were a 503 ("retry") from the storage write.
    for name in ("a/" + "A" * 256 + "/x.sym", "a" * 256 + "/AB/x.sym", "a/AB/" + "x" * 256):
        long = make_zip({name: b"x"})
        assert post_zip(svc, token, long, status=400).json == {
            "error": f"Archive member '{name}' has a path too long to store "
            "(at most 255 characters per part)"
        }


def test_multipart_headers_not_utf8(svc, token):
    body = (
        b'--xx\r\nContent-Disposition: form-data; name="\xff.zip"; filename="\xff.zip"\r\n'
        b"\r\n" + make_zip({SYM: b"x"}) + b"\r\n--xx--\r\n"
    )
    resp = svc.app.post(
        "/upload/",
        body,
        headers={"Auth-Token": token, "Content-Type": "multipart/form-data; boundary=xx"},
        status=400,
    )
    assert resp.json == {"error": "Malformed multipart form data: part headers must be UTF-8"}


def test_no_file(svc, token):
    resp = svc.app.post("/upload/", params={"x": "1"}, headers={"Auth-Token": token}, status=400)
    assert resp.json == {"error": "Must be multipart form data with at least one file"}
    resp = svc.app.post("/upload/", b"", headers={"Auth-Token": token}, status=400)
    assert resp.json["error"] == "Must be multipart form data with at least one file"


def test_size_limit(make_service):
    svc = make_service({**NO_VALIDATION, "SYMBOLS_UPLOAD_MAX_SIZE": "1000"})
    key = make_token(svc.ctx, ["upload_symbols"])
    resp = post_zip(svc, key, fixture("sample.zip"), status=413)
    assert "limit" in resp.json["error"]


def test_auth_refusals(svc):
    assert post_zip(svc, "", fixture("sample.zip"), status=403).json == {
        "error": "This requires an Auth-Token to authenticate the request"
    }
    assert post_zip(svc, "f" * 32, fixture("sample.zip"), status=403).json == {
        "error": "API Token not matched"
    }
    other = make_token(svc.ctx, ["view_all_uploads"], email="auditor@example.com")
    assert post_zip(svc, other, fixture("sample.zip"), status=403).json == {"error": "Forbidden"}


def test_expired_token(svc):
    key = make_token(svc.ctx, ["upload_symbols"])
    svc.ctx.db.execute("UPDATE tokens SET expires_at = ?", ("2020-01-01T00:00:00.000000Z",))
    assert post_zip(svc, key, fixture("sample.zip"), status=403).json == {
        "error": "API Token found but expired"
    }


def test_get_not_allowed(svc):
    assert svc.app.get("/upload/", status=405)


def stored_in(svc, key):
    return (
        svc.ctx.storages.regular.storage.metadata(key) is not None,
        svc.ctx.storages.try_.storage.metadata(key) is not None,
    )


@pytest.mark.parametrize(
    "perms,fields,expect",
    [
        (["upload_symbols"], {}, (True, False)),
        (["upload_symbols"], {"try": "true"}, (False, True)),
        (["upload_symbols"], {"try": "1"}, (False, True)),
        (["upload_symbols"], {"try": ""}, (True, False)),
        (["upload_symbols"], {"try": "0"}, (True, False)),
        (["upload_try_symbols"], {}, (False, True)),
        (["upload_try_symbols"], {"try": "yes"}, (False, True)),
    ],
)
def test_try_decision(svc, perms, fields, expect):
    key = make_token(svc.ctx, perms)
    resp = post_zip(svc, key, fixture("sample.zip"), fields=fields, status=201)
    assert resp.json["upload"]["try_symbols"] is expect[1]
    assert stored_in(svc, SYM) == expect


@pytest.mark.parametrize("value", ["", "0", "false", "no"])
def test_try_only_token_never_writes_regular(svc, value):
    key = make_token(svc.ctx, ["upload_try_symbols"])
    resp = post_zip(svc, key, fixture("sample.zip"), fields={"try": value}, status=403)
    assert "only upload try symbols" in resp.json["error"]
    assert stored_in(svc, SYM) == (False, False)


def test_bad_try_value(svc, token):
    resp = post_zip(svc, token, fixture("sample.zip"), fields={"try": "maybe"}, status=400)
    assert "Invalid 'try' value" in resp.json["error"]


def test_try_field_after_file_part(svc):
    key = make_token(svc.ctx, ["upload_symbols"])
    boundary = "XyZ"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="sample.zip"; filename="s.zip"\r\n'
            "Content-Type: application/zip\r\n\r\n"
        ).encode()
        + fixture("sample.zip")
        + (
            f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="try"\r\n\r\ntrue\r\n--{boundary}--\r\n'
        ).encode()
    )
    resp = svc.app.post(
        "/upload/",
        body,
        headers={"Auth-Token": key, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert (
        resp.json["upload"]["try_symbols"] is True
        and resp.json["upload"]["filename"] == "sample.zip"
    )


def test_upload_invalidates_cached_miss(svc, token):
    svc.app.get(f"/{SYM}", status=404)  # cached as missing
    post_zip(svc, token, fixture("sample.zip"), status=201)
    svc.app.get(f"/{SYM}", status=302)


def test_code_id_lookup_after_upload(make_service):
    svc = make_service()
    key = make_token(svc.ctx, ["upload_symbols"])
    data = sym_text(
        debug_file="ShowSSEConfig.pdb", code_id="6A4B9A365000", code_file="ShowSSEConfig.exe"
    )
    zipped = make_zip({sym_key("ShowSSEConfig.pdb"): data})
    svc.app.get("/ShowSSEConfig.exe/6A4B9A365000/ShowSSEConfig.sym", status=404)
    post_zip(svc, key, zipped, name="s.zip", status=201)
    resp = svc.app.get("/ShowSSEConfig.exe/6A4B9A365000/ShowSSEConfig.sym", status=302)
    assert f"ShowSSEConfig.pdb/{DEBUG_ID}/ShowSSEConfig.sym" in resp.headers["Location"]


def test_concurrent_uploads_of_the_same_files(make_service):
    svc = make_service(NO_VALIDATION)
    key = make_token(svc.ctx, ["upload_symbols"])
    members = {
        sym_key(debug_file=f"m{i}"): sym_text(debug_file=f"m{i}", funcs=200) for i in range(8)
    }
    data = make_zip(members)
    import requests

    results = []
    with wsgi_server(svc.app.app) as url:

        def go():
            r = requests.post(
                f"{url}/upload/",
                files={"s.zip": ("s.zip", data)},
                headers={"Auth-Token": key},
                timeout=60,
            )
            results.append((r.status_code, r.json()))

        threads = [threading.Thread(target=go) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert [s for s, _ in results] == [201] * 4
    regular = svc.ctx.storages.regular.storage
    for k, v in members.items():
        assert gzip.decompress(regular.get(k)) == v
    assert svc.ctx.db.fetchval("SELECT COUNT(*) FROM uploads WHERE completed_at IS NOT NULL") == 4


def test_filename_from_part_when_field_name_is_not_a_zip(svc, token):
    resp = svc.app.post(
        "/upload/",
        upload_files=[("file", "sample.zip", fixture("sample.zip"))],
        headers={"Auth-Token": token},
    )
    assert resp.status_int == 201 and resp.json["upload"]["filename"] == "sample.zip"
    resp = svc.app.post(
        "/upload/",
        upload_files=[("file", "sample.tgz", b"x")],
        headers={"Auth-Token": token},
        status=400,
    )
    assert resp.json == {"error": 'Unrecognized archive file extension ""'}


def test_upload_invalidates_shared_redis_cache(make_service, redis_url, redis_prefix):
    """Two workers sharing Redis: a miss cached by one is forgotten when the
    other stores the key (workers keep only hits in their own memory, so the
    upload is seen at once)."""
    env = {
        **NO_VALIDATION,
        "SYMBOLS_CACHE_URL": redis_url,
        "SYMBOLS_CACHE_PREFIX": redis_prefix,
    }
    downloader = make_service(env)
    uploader = make_service(env)
    key = make_token(uploader.ctx, ["upload_symbols"])
    downloader.app.get(f"/{SYM}", status=404)
    post_zip(uploader, key, fixture("sample.zip"), status=201)
    downloader.app.get(f"/{SYM}", status=302)


def _patched_zip(tmp_path, name, data, *, method=None, flags=None, cd_offset=0):
    """A one-member zip with its header fields patched (deflate64, encrypted,
    a central directory offset pointing elsewhere)."""
    import struct
    import zipfile

    path = tmp_path / "patched.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(name, data)
    raw = bytearray(path.read_bytes())
    local = raw.find(b"PK\x03\x04")
    central = raw.find(b"PK\x01\x02")
    if method is not None:
        struct.pack_into("<H", raw, local + 8, method)
        struct.pack_into("<H", raw, central + 10, method)
    if flags is not None:
        struct.pack_into("<H", raw, local + 6, flags)
        struct.pack_into("<H", raw, central + 8, flags)
    if cd_offset:
        eocd = raw.rfind(b"PK\x05\x06")
        (offset,) = struct.unpack_from("<I", raw, eocd + 16)
        struct.pack_into("<I", raw, central + 42, 1000)  # the local header offset
        struct.pack_into("<I", raw, eocd + 16, offset)
    return bytes(raw)


@pytest.mark.parametrize(
    "name,kw,message",
    [
        (sym_key(), {"method": 9}, "compression method 9"),
        ("a.dll/AB/a.dll", {"method": 9}, "compression method 9"),
        (sym_key(), {"flags": 1}, "encrypted"),
        ("a.dll/AB/a.dll", {"flags": 1}, "encrypted"),
        ("a.dll/AB/a.dll", {"cd_offset": 1000}, "the archive is damaged"),
        ("./AB/x.dll", {}, "'.' is not allowed"),
        (".tecken-meta/AB/x.dll", {}, "'.tecken-meta' is not allowed"),
        ("a.dll/AB/.", {}, "'.' is not allowed"),
    ],
)
def test_bad_archive_members_are_400_not_5xx(svc, token, tmp_path, name, kw, message):
    """RT-11: archives that can never be stored are 400 naming the member, not
    500 or a 503 inviting a retry."""
    data = _patched_zip(tmp_path, name, sym_text(), **kw)
    resp = post_zip(svc, token, data, name="bad.zip", status=400)
    assert message in resp.json["error"] and "retry" not in resp.json["error"]


def test_corrupt_member_data_is_400(svc, token, tmp_path):
    import zipfile

    path = tmp_path / "crc.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("a.dll/AB/a.dll", b"x" * 1000)
    raw = bytearray(path.read_bytes())
    raw[raw.find(b"x" * 10) + 5] = ord("y")  # the CRC no longer matches
    resp = post_zip(svc, token, bytes(raw), name="crc.zip", status=400)
    assert "damaged" in resp.json["error"] and "a.dll/AB/a.dll" in resp.json["error"]


def test_upload_answers_do_not_reveal_local_paths(make_service, tmp_path):
    """RT-18: no path of this host in answers, records or the API."""
    svc = make_service()
    token = make_token(svc.ctx, ["upload_symbols", "view_all_uploads"])
    data = make_zip({sym_key(): sym_text()})
    resp = post_zip(svc, token, data, name="p.zip", status=201)
    assert resp.json["upload"]["bucket"] == "regular"
    listing = svc.app.get("/api/uploads/", headers={"Auth-Token": token}).text
    files = svc.app.get("/api/uploads/files/", headers={"Auth-Token": token}).text
    for text in (resp.text, listing, files):
        assert "file://" not in text and str(tmp_path) not in text


def test_locally_served_files_are_nosniff(make_service):
    """RT-19."""
    svc = make_service()
    token = make_token(svc.ctx, ["upload_symbols"])
    post_zip(svc, token, make_zip({sym_key(): sym_text()}), name="n.zip", status=201)
    location = svc.app.get(f"/{sym_key()}", status=302).headers["Location"]
    resp = svc.app.get(location.replace("http://symbols.test", ""), status=200)
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


def test_code_id_redirect_is_never_open(make_service):
    """RT-16: with content checks off, a MODULE line naming //evil.example
    gives no redirect off the service."""
    svc = make_service(NO_VALIDATION)
    token = make_token(svc.ctx, ["upload_symbols"])
    text = (
        f"MODULE windows x86_64 {DEBUG_ID} //evil.example/x\n"
        "INFO CODE_ID 1234ABCD lure.dll\nFUNC 1000 10 0 f\n"
    ).encode()
    post_zip(svc, token, make_zip({f"lure.pdb/{DEBUG_ID}/lure.sym": text}), status=201)
    resp = svc.app.get("/lure.dll/1234ABCD/lure.sym", status="*")
    assert resp.status_int == 404, resp.headers.get("Location")
    assert svc.app.get("/api/syminfo/lure.dll/1234ABCD", status="*").status_int == 404
