# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Downloads on every combination of database (SQLite, PostgreSQL) and
storage (filesystem, S3 on moto)."""

import gzip
from urllib.parse import urlsplit

import pytest
import requests

from tecken_shared.breakpad import SymHeader
from tecken_shared.storage.gcs import GCSStorage
from tecken_shared.testing.servers import wsgi_server
from tecken_symbols.db import utcnow
from tecken_symbols.download import CORS_HEADERS

from .conftest import SYMBOLS_DIR

KEY = "ssltunnel/8A07C88A3DA44E20A3490D88791183060/ssltunnel.sym"
SYM = (SYMBOLS_DIR / KEY).read_bytes()


def put_sym(service, key=KEY, try_symbols=False):
    service.put(
        key,
        gzip.compress(SYM),
        try_symbols=try_symbols,
        content_type="text/plain",
        content_encoding="gzip",
        cache_control="no-transform",
        metadata={"original_size": str(len(SYM))},
    )


def loc(resp) -> str:
    """The redirect target without its query (presigned S3 URLs differ per request)."""
    parts = urlsplit(resp.headers["Location"])
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def assert_cors(resp):
    for name, value in CORS_HEADERS.items():
        assert resp.headers[name] == value


def test_found_regular(service):
    put_sym(service)
    app = service.app
    resp = app.get(f"/{KEY}", status=302)
    assert_cors(resp)
    location = loc(resp)
    assert location.endswith("/" + KEY)
    assert resp.body == b""
    # The debug id is upper-cased; HEAD answers 200, not 302.
    lower = "ssltunnel/8a07c88a3da44e20a3490d88791183060/ssltunnel.sym"
    assert loc(app.get(f"/{lower}", status=302)) == location
    head = app.head(f"/{lower}", status=200)
    assert "Location" not in head.headers
    assert_cors(head)
    # A regular object is found through /try/ too (regular first).
    assert loc(app.get(f"/try/{KEY}", status=302)) == location
    # Debug header.
    resp = app.get(f"/{KEY}", headers={"Debug": "TRUE"}, status=302)
    assert float(resp.headers["Debug-Time"]) >= 0
    assert "Debug-Time" not in app.get(f"/{KEY}", status=302).headers


def test_redirect_target_serves_the_object(service):
    put_sym(service)
    location = service.app.get(f"/{KEY}", status=302).headers["Location"]
    parts = urlsplit(location)
    if parts.netloc == "symbols.test":  # filesystem storage: served by the app itself
        with wsgi_server(service.app.app) as base:
            resp = requests.get(base + parts.path, timeout=10, stream=True)
            raw = resp.raw.read(decode_content=False)
            head = requests.head(base + parts.path, timeout=10)
        assert resp.status_code == 200
        assert resp.headers["Content-Encoding"] == "gzip"
        assert resp.headers["Content-Type"] == "text/plain"
        assert resp.headers["Cache-Control"] == "no-transform"
        assert gzip.decompress(raw) == SYM
        assert head.headers["Content-Length"] == str(len(raw))
    elif isinstance(service.ctx.storages.regular.storage, GCSStorage):
        # GCS: the redirect points at the bucket. gcp-storage-emulator serves
        # the stored bytes without the object's Content-Encoding (GCS sends
        # it), so the encoding is read from the object's metadata here.
        resp = requests.get(location, timeout=10)
        assert resp.status_code == 200
        info = service.ctx.storages.regular.storage.metadata(KEY)
        assert info is not None and info.content_encoding == "gzip"
        assert gzip.decompress(resp.content) == SYM
    else:  # S3: the redirect points at the bucket
        resp = requests.get(location, timeout=10)
        assert resp.status_code == 200
        assert resp.headers["Content-Encoding"] == "gzip"
        assert resp.content == SYM  # requests decodes Content-Encoding


def test_try_symbols(service):
    put_sym(service, try_symbols=True)
    app = service.app
    resp = app.get(f"/{KEY}", status=404)
    assert resp.text == "Symbol Not Found"
    assert resp.content_type == "text/html"
    assert_cors(resp)
    target = loc(app.get(f"/try/{KEY}", status=302))
    assert "/try/" in target
    assert loc(app.get(f"/{KEY}?try", status=302)) == target
    assert loc(app.get(f"/{KEY}?try=", status=302)) == target
    assert loc(app.get(f"/{KEY}?try=1", status=302)) == target
    app.head(f"/try/{KEY}", status=200)
    app.head(f"/{KEY}", status=404)


@pytest.mark.parametrize(
    "path",
    [
        "/xul.pdb/ABCDEF/file.ptr",
        "/xul.pdb/000000000000000000000000000000000/xul.sym",
        "/xul.pdb/ABCDEF/XUL.SYM",
        "/flag/deadbeef/flag.jpeg",
        "/ssltunnel/8A07C88A3DA44E20A3490D88791183060/a.dbg",
    ],
)
def test_ignored(fs_service, path):
    resp = fs_service.app.get(path, headers={"Debug": "1"}, status=404)
    assert resp.text == "Symbol Not Found (and ignored)"
    assert resp.headers["Debug-Time"] == "0"
    assert_cors(resp)


@pytest.mark.parametrize(
    "path",
    [
        "/xul.pdb/NOTHEX/xul.sym",
        "/xul%25.pdb/ABCDEF/xul.sym",
        "/xul.pdb/ABCDEF/x%7Cy.sym",
        "/xul.pdb/ABCDEF/x%C3%A9.sym",
        "/a/b/ABCDEF/xul.sym",
        "/try/xul.pdb/ZZ/xul.sym",
    ],
)
def test_invalid_paths_are_routing_404s(fs_service, path):
    resp = fs_service.app.get(path, status=404)
    assert resp.json["error"] == "Not Found"


def test_dots_are_allowed_components(fs_service):
    fs_service.app.get("/../ABCDEF/x.sym", status=404)
    # Longer than any storage key: not found, not a storage failure.
    fs_service.app.get(f"/xul.pdb/{'A' * 2000}/xul.sym", status=404)
    resp = fs_service.app.get("/xul.pdb/ABCDEF/xul.sym", status=404)
    assert resp.text == "Symbol Not Found"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_405(fs_service, method):
    path = f"/{KEY}"
    resp = fs_service.app.request(path, method=method, status=405)
    assert resp.json == {"error": f"Method Not Allowed ({method}): {path}"}
    assert resp.headers["Allow"] == "GET, HEAD"
    assert_cors(resp)


def add_file_upload(db, *, debug_filename, debug_id, code_file, code_id, try_symbols=False):
    db.execute(
        "INSERT INTO file_uploads (bucket_name, key, compressed, size, try_symbols, created_at, "
        "completed_at, debug_filename, debug_id, code_file, code_id, generator) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            "test",
            f"{debug_filename}/{debug_id}/{debug_filename[:-4]}.sym",
            True,
            100,
            try_symbols,
            utcnow(),
            utcnow(),
            debug_filename,
            debug_id,
            code_file,
            code_id,
            "mozilla/dump_syms 2.3.7",
        ),
    )


SSE_DEBUG = ("ShowSSEConfig.pdb", "D57F52D4A2FD56244C4C44205044422E1")
SSE_CODE = ("ShowSSEConfig.exe", "6A4B9A365000")


def test_code_id_fallback(service):
    app, db = service.app, service.ctx.db
    code_path = "/ShowSSEConfig.exe/6a4b9a365000/ShowSSEConfig.sym"
    app.get(code_path, status=404)  # nothing uploaded yet (a per-worker cache keeps no miss)
    add_file_upload(
        db,
        debug_filename=SSE_DEBUG[0],
        debug_id=SSE_DEBUG[1],
        code_file=SSE_CODE[0],
        code_id=SSE_CODE[1],
    )
    resp = app.get(code_path + "?_refresh=1&x=y", status=302)
    assert resp.headers["Location"] == (
        "/ShowSSEConfig.pdb/D57F52D4A2FD56244C4C44205044422E1/ShowSSEConfig.sym?_refresh=1&x=y"
    )
    assert_cors(resp)
    # Cached hit now; HEAD gets the 302 too; /try/ keeps the prefix.
    assert app.head(code_path, status=302).headers["Location"].startswith("/ShowSSEConfig.pdb/")
    loc = app.get("/try" + code_path, status=302).headers["Location"]
    assert loc == "/try/ShowSSEConfig.pdb/D57F52D4A2FD56244C4C44205044422E1/ShowSSEConfig.sym"
    # Only .sym requests and ids shorter than 33 characters fall back.
    app.get("/ShowSSEConfig.exe/6A4B9A365000/ShowSSEConfig.ex_", status=404)


def test_code_id_misses_cached_in_redis(make_service, redis_url, redis_prefix):
    svc = make_service({"SYMBOLS_CACHE_URL": redis_url, "SYMBOLS_CACHE_PREFIX": redis_prefix})
    code_path = "/ShowSSEConfig.exe/6A4B9A365000/ShowSSEConfig.sym"
    svc.app.get(code_path, status=404)
    add_file_upload(
        svc.ctx.db,
        debug_filename=SSE_DEBUG[0],
        debug_id=SSE_DEBUG[1],
        code_file=SSE_CODE[0],
        code_id=SSE_CODE[1],
    )
    svc.app.get(code_path, status=404)  # the cached miss
    svc.app.get(code_path + "?_refresh", status=302)
    svc.ctx.cache.delete("syminfo:r:ShowSSEConfig.exe//6A4B9A365000")
    svc.app.get(code_path, status=302)
    # What the upload side calls after recording a file:
    svc.app.get("/other.exe/ABC/other.sym", status=404)
    add_file_upload(
        svc.ctx.db,
        debug_filename="other.pdb",
        debug_id="DEF1",
        code_file="other.exe",
        code_id="ABC",
    )
    svc.ctx.lookups.forget(header=SymHeader(code_file="other.exe", code_id="abc"))
    svc.app.get("/other.exe/ABC/other.sym", status=302)


def test_code_id_fallback_ignores_try_uploads_for_regular(service):
    app, db = service.app, service.ctx.db
    add_file_upload(
        db,
        debug_filename=SSE_DEBUG[0],
        debug_id=SSE_DEBUG[1],
        code_file=SSE_CODE[0],
        code_id=SSE_CODE[1],
        try_symbols=True,
    )
    app.get("/ShowSSEConfig.exe/6A4B9A365000/ShowSSEConfig.sym", status=404)
    app.get("/ShowSSEConfig.exe/6A4B9A365000/ShowSSEConfig.sym?try", status=302)


def test_syminfo(service):
    app, db = service.app, service.ctx.db
    resp = app.get("/api/syminfo/ShowSSEConfig.exe/6A4B9A365000", status=404)
    assert resp.text == "Code file / id Not Found"
    add_file_upload(
        db,
        debug_filename=SSE_DEBUG[0],
        debug_id=SSE_DEBUG[1],
        code_file=SSE_CODE[0],
        code_id=SSE_CODE[1],
    )
    service.ctx.lookups.forget(header=SymHeader(code_file=SSE_CODE[0], code_id=SSE_CODE[1]))
    expected = {
        "debug_filename": "ShowSSEConfig.pdb",
        "debug_id": "D57F52D4A2FD56244C4C44205044422E1",
        "code_file": "ShowSSEConfig.exe",
        "code_id": "6A4B9A365000",
        "generator": "mozilla/dump_syms 2.3.7",
        "url": "http://symbols.test/ShowSSEConfig.pdb/D57F52D4A2FD56244C4C44205044422E1/ShowSSEConfig.sym",
    }
    resp = app.get("/api/syminfo/ShowSSEConfig.exe/6a4b9a365000")
    assert resp.json == expected
    assert_cors(resp)
    assert (
        app.get("/api/syminfo/ShowSSEConfig.pdb/D57F52D4A2FD56244C4C44205044422E1").json == expected
    )
    app.get("/api/syminfo/ShowSSEConfig.exe/XYZ", status=404)
    app.post("/api/syminfo/ShowSSEConfig.exe/6A4B9A365000", status=405)


def test_syminfo_url_of_a_non_pdb_module_is_its_sym_file(service):
    add_file_upload(
        service.ctx.db,
        debug_filename="libxul.so",
        debug_id="0FBE970321AB8CF14C4C44205044422E1",
        code_file="libxul.so",
        code_id="0397BE0FAB21F18C4C4C44205044422E",
    )
    resp = service.app.get("/api/syminfo/libxul.so/0397BE0FAB21F18C4C4C44205044422E")
    assert resp.json["url"].endswith("/libxul.so/0FBE970321AB8CF14C4C44205044422E1/libxul.so.sym")


def test_invalidate_after_upload(database_url, storage_env, make_service):
    # An object written behind the service's back is only found when storage
    # is asked about keys no upload recorded.
    env = {**storage_env, "SYMBOLS_DOWNLOAD_ASK_STORAGE_FOR_UNKNOWN_KEYS": "true"}
    service = make_service(env, database_url=database_url)
    app = service.app
    app.get(f"/{KEY}", status=404)
    backend = service.ctx.storages.regular
    backend.storage.put(KEY, b"x")  # written without invalidation
    if service.ctx.lookups.caches_misses(False):
        # Remote storage: the cached miss answers until ?_refresh or invalidate(key).
        app.get(f"/{KEY}", status=404)
        app.get(f"/{KEY}?_refresh", status=302)
    else:
        # Filesystem storage with a per-worker cache: misses are not cached.
        app.get(f"/{KEY}", status=302)
    backend.storage.delete(KEY)
    service.ctx.lookups.forget(KEY)
    app.get(f"/{KEY}", status=404)
    put_sym(service)  # invalidates
    app.get(f"/{KEY}", status=302)


def test_extra_read_only_backend(make_service, tmp_path):
    from tecken_shared.storage import storage_from_url

    extra_url = f"file://{tmp_path}/legacy?durable=false"
    storage_from_url(extra_url).put(KEY, b"legacy")
    svc = make_service(
        {
            "SYMBOLS_EXTRA_STORAGE_URLS": extra_url,
            # Its objects were never uploaded here (see test_stored_keys for import-keys).
            "SYMBOLS_DOWNLOAD_ASK_STORAGE_FOR_UNKNOWN_KEYS": "true",
        }
    )
    loc = svc.app.get(f"/{KEY}", status=302).headers["Location"]
    assert loc == f"http://symbols.test/files/extra1/{KEY}"
    assert svc.app.get(urlsplit(loc).path).body == b"legacy"
    assert svc.app.get("/__heartbeat__").json["checks"]["storage_extra1"] == "ok"


def test_files_route_rejects_bad_keys(fs_service):
    fs_service.app.get("/files/regular/.tecken-meta/x.json", status=404)
    fs_service.app.get("/files/regular/nothing/here.sym", status=404)
    fs_service.app.get("/files/nope/x/y/z.sym", status=404)


def test_route_precedence(fs_service):
    """Three-part symbol paths whose first part names another route still work."""
    for first in ("files", "try", "api", "missingsymbols"):
        fs_service.put(f"{first}/ABCDEF/{first}.sym", b"x")
        resp = fs_service.app.get(f"/{first}/abcdef/{first}.sym", status=302)
        assert resp.headers["Location"].endswith(f"/{first}/ABCDEF/{first}.sym")


# -- Tecken's details (issue 18) ------------------------------------------------


def test_redirects_and_heads_say_text_html_as_tecken(service):
    put_sym(service)
    for resp in (service.app.get(f"/{KEY}", status=302), service.app.head(f"/{KEY}", status=200)):
        assert resp.headers["Content-Type"] == "text/html; charset=utf-8"


def test_code_id_redirect_keeps_the_requests_try_form(service):
    add_file_upload(
        service.ctx.db,
        debug_filename=SSE_DEBUG[0],
        debug_id=SSE_DEBUG[1],
        code_file=SSE_CODE[0],
        code_id=SSE_CODE[1],
    )
    resp = service.app.get("/ShowSSEConfig.exe/6A4B9A365000/ShowSSEConfig.sym?try=1", status=302)
    assert resp.headers["Location"] == (
        "/try/ShowSSEConfig.pdb/D57F52D4A2FD56244C4C44205044422E1/ShowSSEConfig.sym?try=1"
    )
    assert resp.headers["Content-Type"] == "text/html; charset=utf-8"


def test_downloads_carry_security_headers(service, make_service):
    put_sym(service)
    for resp in (
        service.app.get(f"/{KEY}", status=302),
        service.app.get("/nothing.pdb/ABC/nothing.sym", status=404),
    ):
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert resp.headers["Strict-Transport-Security"].startswith("max-age=")
        assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    off = make_service({"SYMBOLS_DOWNLOAD_SECURITY_HEADERS": "false"})
    assert "X-Frame-Options" not in off.app.get("/nothing.pdb/ABC/nothing.sym", status=404).headers


def test_files_downloads_answer_conditional_requests(fs_service):
    put_sym(fs_service)
    location = urlsplit(fs_service.app.get(f"/{KEY}", status=302).headers["Location"]).path
    first = fs_service.app.get(location, status=200)
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert etag.startswith('"') and modified.endswith("GMT")
    assert first.headers["X-Frame-Options"] == "DENY"
    again = fs_service.app.get(location, headers={"If-None-Match": etag}, status=304)
    assert again.body == b""
    fs_service.app.get(location, headers={"If-Modified-Since": modified}, status=304)
    fs_service.app.head(location, headers={"If-None-Match": f'W/{etag}, "x"'}, status=304)
    fs_service.app.get(location, headers={"If-None-Match": '"other"'}, status=200)
    old = "Mon, 01 Jan 2001 00:00:00 GMT"
    fs_service.app.get(location, headers={"If-Modified-Since": old}, status=200)
    # Rewritten: a new ETag.
    put_sym(fs_service)
    fs_service.app.get(location, headers={"If-None-Match": etag}, status=200)
