# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""symsrv, SSQP and debuginfod keys answered from one Tecken-style v1 upload
of the shared fixtures (CAB-compressed PE and PDB files, a gzipped and a plain
ELF debug file, a dSYM tarball), on every database and storage backend.
The real clients are driven in test_protocol_clients.py."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import zipfile
from urllib.parse import urlsplit

import pytest
import requests
from cabarchive import CabArchive

from tecken_shared.testing.servers import wsgi_server
from tecken_symbols import identities
from tecken_symbols.cli import main as admin
from tecken_symbols.upload.testing import make_token, make_zip

from .conftest import SYMBOLS_DIR

PDB_KEY = "qipcap64.pdb/293A285ED25871934C4C44205044422E1/qipcap64.pd_"
DLL_KEY = "libEGL.dll/6A4B8EEE10000/libEGL.dl_"
EXE_KEY = "ShowSSEConfig.exe/6A4B9A365000/ShowSSEConfig.ex_"
DBG_GZ_KEY = "ssltunnel/8A07C88A3DA44E20A3490D88791183060/ssltunnel.dbg.gz"
DSYM_KEY = (
    "libxul_correct_buildid.dylib/BE555D35C9A93D7FBC23ED48502277E30/"
    "libxul_correct_buildid.dylib.dSYM.tar.bz2"
)
SYM_KEY = "ssltunnel/8A07C88A3DA44E20A3490D88791183060/ssltunnel.sym"
BUILD_ID = "8ac8078aa43d204ea3490d88791183066c426696"
KEYS = [PDB_KEY, DLL_KEY, EXE_KEY, DBG_GZ_KEY, DSYM_KEY, SYM_KEY]


def fixture(key: str) -> bytes:
    return (SYMBOLS_DIR / key).read_bytes()


def expanded(key: str) -> bytes:
    (member,) = CabArchive(fixture(key)).values()
    return member.buf


def upload(svc, keys=KEYS) -> None:
    token = make_token(svc.ctx, ["upload_symbols"])
    svc.app.post(
        "/upload/",
        upload_files=[("f.zip", "f.zip", make_zip({k: fixture(k) for k in keys}))],
        headers={"Auth-Token": token},
        status=201,
    )


def fetch(location: str, svc) -> bytes:
    """The bytes behind a redirect: from this app for /files/, else over HTTP."""
    parts = urlsplit(location)
    if parts.path.startswith("/files/"):
        return svc.app.get(parts.path, status=200).body
    resp = requests.get(location, timeout=10)
    resp.raise_for_status()
    return resp.content


@pytest.fixture
def svc(service):
    upload(service)
    return service


def test_symsrv_pdb_and_pe_keys_any_case(svc):
    app = svc.app
    # The CAB form is the stored object itself.
    pd_ = app.get("/symsrv/" + PDB_KEY, status=302)
    assert fetch(pd_.headers["Location"], svc) == fixture(PDB_KEY)
    assert pd_.headers["Access-Control-Allow-Origin"] == "*"
    # The plain .pdb is the CAB expanded (once, into a derived object).
    for path in (
        "qipcap64.pdb/293A285ED25871934C4C44205044422E1/qipcap64.pdb",
        "QIPCAP64.PDB/293a285ed25871934c4c44205044422e1/qipcap64.pdb",
    ):
        resp = app.get("/symsrv/" + path, status=302)
        assert "/_derived/" in resp.headers["Location"]
        assert fetch(resp.headers["Location"], svc) == expanded(PDB_KEY)
    assert (
        app.head("/symsrv/qipcap64.pdb/293A285ED25871934C4C44205044422E1/qipcap64.pdb").status_int
        == 200
    )
    for key, plain in ((DLL_KEY, "libEGL.dll"), (EXE_KEY, "ShowSSEConfig.exe")):
        name, code_id, _ = key.split("/")
        resp = app.get(f"/symsrv/{name}/{code_id}/{plain}", status=302)
        assert fetch(resp.headers["Location"], svc) == expanded(key)
        assert app.get(f"/symsrv/{name.upper()}/{code_id.lower()}/{key.split('/')[2]}", status=302)
    # Two-tier paths.
    resp = app.get("/symsrv/li/libEGL.dll/6A4B8EEE10000/libEGL.dll", status=302)
    assert fetch(resp.headers["Location"], svc) == expanded(DLL_KEY)
    app.get("/symsrv/xx/libEGL.dll/6A4B8EEE10000/libEGL.dll", status=404)


def test_symsrv_store_files_and_misses(svc):
    app = svc.app
    assert app.get("/symsrv/pingme.txt", status=200).body == b""
    app.get("/symsrv/index2.txt", status=404)
    resp = app.get("/symsrv/qipcap64.pdb/293A285ED25871934C4C44205044422E1/file.ptr", status=404)
    assert resp.text == "Symbol Not Found (and ignored)"
    app.get("/symsrv/nope.pdb/293A285ED25871934C4C44205044422E1/nope.pdb", status=404)
    app.get("/symsrv/bad%5Cname/ABC/x.pdb", status=404)
    app.get("/symsrv/a.pdb/" + "A" * 200 + "/a.pdb", status=404)
    # The Tecken route and its keys are unchanged.
    assert app.get("/" + PDB_KEY, status=302)
    app.get("/qipcap64.pdb/293A285ED25871934C4C44205044422E1/qipcap64.pdb", status=404)
    svc.ctx.missing.flush()
    rows = app.get("/api/missingsymbols/").json["missing_symbols"]
    assert {(r["debug_file"], r["protocol"]) for r in rows} == {("nope.pdb", "symsrv")}


def test_ssqp_keys(svc):
    app = svc.app
    resp = app.get(f"/ssqp/_.debug/elf-buildid-sym-{BUILD_ID}/_.debug", status=302)
    assert fetch(resp.headers["Location"], svc) == gzip.decompress(fixture(DBG_GZ_KEY))
    dwarf = app.get(
        "/ssqp/_.dwarf/mach-uuid-sym-be555d35c9a93d7fbc23ed48502277e3/_.dwarf", status=302
    )
    body = fetch(dwarf.headers["Location"], svc)
    assert body[:4] in (b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe")
    # PE and PDB keys, as dotnet-symbol sends them (lower case).
    app.get("/ssqp/libegl.dll/6a4b8eee10000/libegl.dll", status=302)
    app.get("/ssqp/qipcap64.pdb/293a285ed25871934c4c44205044422e1/qipcap64.pdb", status=302)
    app.get(f"/ssqp/_.debug/elf-buildid-sym-{'0' * 40}/_.debug", status=404)
    svc.ctx.missing.flush()
    rows = app.get("/api/missingsymbols/").json["missing_symbols"]
    assert [r["protocol"] for r in rows] == ["ssqp"]


def test_debuginfod(svc):
    app = svc.app
    resp = app.get(f"/buildid/{BUILD_ID}/debuginfo", status=302)
    data = gzip.decompress(fixture(DBG_GZ_KEY))
    assert fetch(resp.headers["Location"], svc) == data
    assert resp.headers["X-DEBUGINFOD-SIZE"] == str(len(data))
    assert resp.headers["X-DEBUGINFOD-FILE"] == "ssltunnel.dbg"
    assert resp.headers["X-DEBUGINFOD-ARCHIVE"] == DBG_GZ_KEY
    head = app.head(f"/buildid/{BUILD_ID.upper()}/debuginfo", status=200)
    assert head.headers["X-DEBUGINFOD-SIZE"] == str(len(data))
    app.get(
        f"/buildid/{BUILD_ID}/debuginfo",
        headers={"X-DEBUGINFOD-MAXSIZE": "1000"},
        status=406,
    )
    app.get(f"/buildid/{BUILD_ID}/executable", status=404)
    app.get(f"/buildid/{BUILD_ID}/source/usr/src/a.c", status=404)
    app.get(f"/buildid/{BUILD_ID}/section/.debug_info", status=503)
    app.get("/buildid/xyz/debuginfo", status=404)
    app.get(f"/buildid/{BUILD_ID}/other", status=404)
    svc.ctx.missing.flush()
    rows = app.get("/api/missingsymbols/").json["missing_symbols"]
    assert sorted((r["debug_id"], r["symbols_file"], r["protocol"]) for r in rows) == [
        (BUILD_ID.upper(), "executable", "debuginfod"),
        (BUILD_ID.upper(), "source", "debuginfod"),
    ]


def source_bundle(files: dict[str, bytes]) -> bytes:
    """A source bundle as sentry-cli writes one: ``SYSB``, version 2, a zip
    with the files and a manifest naming their original paths."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        manifest = {"files": {}, "code_id": BUILD_ID, "object_name": "ssltunnel"}
        manifest["debug_id"] = "8a07c88a-3da4-4e20-a349-0d8879118306"
        for path, data in files.items():
            member = "files" + path
            zf.writestr(member, data)
            manifest["files"][member] = {"type": "source", "path": path}
        zf.writestr("manifest.json", json.dumps(manifest))
    return b"SYSB\x02\x00\x00\x00" + buf.getvalue()


def test_debuginfod_sources_from_a_source_bundle(fs_service, tmp_path):
    svc = fs_service
    key = "ssltunnel/8A07C88A3DA44E20A3490D88791183060/ssltunnel.src.zip"
    bundle = source_bundle({"/build/src/ssl tunnel.c": b"int main() {}\n"})
    token = make_token(svc.ctx, ["upload_symbols"])
    svc.app.post(
        "/upload/",
        upload_files=[("f.zip", "f.zip", make_zip({key: bundle}))],
        headers={"Auth-Token": token},
        status=201,
    )
    for path in ("/build/src/ssl%20tunnel.c", "/build/./src//x/../ssl%20tunnel.c"):
        resp = svc.app.get(f"/buildid/{BUILD_ID}/source{path}", status=200)
        assert resp.body == b"int main() {}\n"
        assert resp.headers["X-DEBUGINFOD-ARCHIVE"] == key
        assert resp.headers["X-DEBUGINFOD-FILE"] == "/build/src/ssl tunnel.c"
    assert svc.app.head(f"/buildid/{BUILD_ID}/source/build/src/ssl%20tunnel.c").status_int == 200
    svc.app.get(f"/buildid/{BUILD_ID}/source/build/src/other.c", status=404)
    # A damaged bundle is a 404, never a 5xx.
    svc.ctx.storages.regular.storage.put(key, b"SYSB\x02\x00\x00\x00not a zip")
    svc.app.get(f"/buildid/{BUILD_ID}/source/build/src/ssl%20tunnel.c", status=404)


def test_a_deleted_object_is_a_miss_and_a_reupload_is_seen(fs_service):
    svc = fs_service
    upload(svc, [DBG_GZ_KEY])
    svc.app.get(f"/buildid/{BUILD_ID}/debuginfo", status=302)
    svc.ctx.writer.delete(DBG_GZ_KEY, try_symbols=False)
    svc.app.get(f"/buildid/{BUILD_ID}/debuginfo", status=404)
    upload(svc, [DBG_GZ_KEY])
    svc.app.get(f"/buildid/{BUILD_ID}/debuginfo", status=302)


def test_backfill_indexes_objects_stored_before(make_service, tmp_path, monkeypatch):
    svc = make_service({"SYMBOLS_CACHE_INVALIDATION_POLL_INTERVAL": "0"})
    backend = svc.ctx.storages.regular
    for key in (PDB_KEY, DBG_GZ_KEY, SYM_KEY):
        backend.storage.put(key, fixture(key))
    svc.app.get(f"/buildid/{BUILD_ID}/debuginfo", status=404)
    for name, value in {
        "SYMBOLS_DATABASE_URL": f"sqlite:///{tmp_path}/symbols.db",
        "SYMBOLS_STORAGE_URL": f"file://{tmp_path}/storage/v1?durable=false",
        "SYMBOLS_TRY_STORAGE_URL": f"file://{tmp_path}/storage/try/v1?durable=false",
    }.items():
        monkeypatch.setenv(name, value)
    assert admin(["index-identities"]) == 0
    # The service's caches (its misses cached) learn it through the invalidation log.
    svc.app.get(f"/buildid/{BUILD_ID}/debuginfo", status=302)
    svc.app.get("/symsrv/qipcap64.pdb/293A285ED25871934C4C44205044422E1/qipcap64.pdb", status=302)
    assert identities.find(
        svc.ctx.db, "qipcap64.pdb/293a285ed25871934c4c44205044422e1/qipcap64.pd_"
    )


def test_over_the_size_limit_windows_files_get_their_key_names(make_service):
    svc = make_service({"SYMBOLS_IDENTITY_MAX_SIZE": "1kb"})
    upload(svc, [PDB_KEY, DBG_GZ_KEY])
    svc.app.get("/symsrv/" + PDB_KEY, status=302)
    svc.app.get(f"/buildid/{BUILD_ID}/debuginfo", status=404)
    # Too big to expand: a 404, never a 5xx.
    svc.app.get("/symsrv/qipcap64.pdb/293A285ED25871934C4C44205044422E1/qipcap64.pdb", status=404)


def test_a_real_http_server_answers_too(fs_service):
    upload(fs_service)
    with wsgi_server(fs_service.app.app) as base:
        resp = requests.get(
            f"{base}/buildid/{BUILD_ID}/debuginfo", timeout=10, allow_redirects=False
        )
        assert resp.status_code == 302
        assert resp.headers["X-DEBUGINFOD-FILE"] == "ssltunnel.dbg"
        path = urlsplit(resp.headers["Location"]).path
        body = requests.get(base + path, timeout=10).content
        assert body == gzip.decompress(fixture(DBG_GZ_KEY))


def test_v2_uploads_are_indexed_too(fs_service):
    """A v2 PUT (the body stored as sent) gets its identities like a v1 member."""
    svc = fs_service
    token = make_token(svc.ctx, ["upload_symbols"])
    data = fixture(DBG_GZ_KEY)
    declared = {"key": DBG_GZ_KEY, "size": len(data), "md5_hash": hashlib.md5(data).hexdigest()}
    body = svc.app.post_json(
        "/upload/v2/", {"files": [declared]}, headers={"Auth-Token": token}, status=201
    ).json
    (action,) = (f["action"] for f in body["files"])
    svc.app.put(
        action["url"].replace("http://symbols.test", ""), data, headers={"Auth-Token": token}
    )
    resp = svc.app.get(f"/buildid/{BUILD_ID}/debuginfo", status=302)
    assert fetch(resp.headers["Location"], svc) == gzip.decompress(data)
