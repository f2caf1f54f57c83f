# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The upload-history JSON API (uploads, one upload, files, one file, stats)."""

import pytest

from tecken_symbols.upload.testing import FIXTURES, make_token, make_zip, sym_key, sym_text


def post(svc, token, data, name="s.zip", **kw):
    return svc.app.post(
        "/upload/", upload_files=[(name, name, data)], headers={"Auth-Token": token}, **kw
    )


@pytest.fixture
def world(make_service, database_url):
    """Two uploaders and an auditor, with a few uploads (both databases)."""
    svc = make_service(database_url=database_url)
    alice = make_token(svc.ctx, ["upload_symbols"], email="alice@example.com")
    bob = make_token(svc.ctx, ["upload_try_symbols"], email="bob@example.com")
    auditor = make_token(svc.ctx, ["view_all_uploads"], email="auditor@example.com")
    post(svc, alice, make_zip({sym_key("a"): sym_text("a")}), name="a.zip")
    post(svc, alice, make_zip({sym_key("b"): sym_text("b", funcs=2000)}), name="b.zip")
    post(svc, bob, make_zip({sym_key("c"): sym_text("c")}), name="c.zip")
    return svc, alice, bob, auditor


def get(svc, path, token, **kw):
    return svc.app.get(path, headers={"Auth-Token": token}, **kw).json


def test_uploads_list_own_and_all(world):
    svc, alice, bob, auditor = world
    mine = get(svc, "/api/uploads/", alice)
    assert [u["filename"] for u in mine["uploads"]] == ["b.zip", "a.zip"]
    assert mine["can_view_all"] is False and mine["total"] == 2 and mine["has_next"] is False
    first = mine["uploads"][0]
    assert first["user"] == {"email": "alice@example.com"} and first["files_count"] == 1
    assert first["files_incomplete_count"] == 0 and first["ignored_keys"] == []
    everyone = get(svc, "/api/uploads/", auditor)
    assert everyone["total"] == 3 and everyone["can_view_all"] is True
    assert [u["try_symbols"] for u in everyone["uploads"]] == [True, False, False]


def test_uploads_filters(world):
    svc, alice, bob, auditor = world
    assert get(svc, "/api/uploads/?user=bob@example.com", auditor)["total"] == 1
    assert get(svc, "/api/uploads/?user=!bob@example.com", auditor)["total"] == 2
    assert get(svc, "/api/uploads/?user=ALI", auditor)["total"] == 2
    big = get(svc, "/api/uploads/?size=>5kb", auditor)
    assert [u["filename"] for u in big["uploads"]] == ["b.zip"]
    assert get(svc, "/api/uploads/?size=<=5kb", auditor)["total"] == 2
    assert get(svc, "/api/uploads/?created_at=today", auditor)["total"] == 3
    assert get(svc, "/api/uploads/?created_at=yesterday", auditor)["total"] == 0
    assert get(svc, "/api/uploads/?completed_at=null", auditor)["total"] == 0
    asc = get(svc, "/api/uploads/?sort=size&reverse=false", auditor)
    assert asc["uploads"][-1]["filename"] == "b.zip"
    assert asc["order_by"] == {"sort": "size", "reverse": False}
    for bad in ("size=huge", "created_at=soon", "sort=name", "page=0"):
        assert "error" in get(svc, f"/api/uploads/?{bad}", auditor, status=400)


def test_out_of_range_numbers_are_4xx(world):
    # Values the database cannot hold (beyond a BIGINT) or dates past 9999-12-30
    # were a 500 (OverflowError in the driver or in datetime arithmetic).
    svc, alice, bob, auditor = world
    big = "9" * 30
    for bad in (
        f"page={big}",
        f"size=>{big}gb",
        f"size=<{big}",
        "created_at=9999-12-31",
        "completed_at=>9999-12-31",
        "created_at=<=9999-12-31",
    ):
        assert "error" in get(svc, f"/api/uploads/?{bad}", auditor, status=400), bad
    for bad in (f"page={big}", f"size={big}"):
        assert "error" in get(svc, f"/api/uploads/files/?{bad}", auditor, status=400), bad
    assert get(svc, f"/api/uploads/?page={big}", auditor, status=400) == {
        "error": f"Invalid page '{big}' (1 to 1000000000)"
    }
    for path in (f"/api/uploads/upload/{big}", f"/api/uploads/files/file/{big}"):
        get(svc, path, auditor, status=404)
    assert get(svc, f"/api/uploads/upload/{2**63 - 1}", auditor, status=404) == {
        "error": "Upload not found"
    }


def test_pagination(make_service):
    svc = make_service({"SYMBOLS_UPLOAD_VALIDATE_CONTENT": "false"})
    token = make_token(svc.ctx, ["upload_symbols"])
    data = (FIXTURES / "sample.zip").read_bytes()
    for _ in range(21):
        post(svc, token, data)
    page1 = get(svc, "/api/uploads/", token)
    assert len(page1["uploads"]) == 20 and page1["has_next"] is True and page1["total"] == 21
    page2 = get(svc, "/api/uploads/?page=2", token)
    assert len(page2["uploads"]) == 1 and page2["has_next"] is False


def test_one_upload(world):
    svc, alice, bob, auditor = world
    uploads = get(svc, "/api/uploads/", alice)["uploads"]
    upload_id = uploads[1]["id"]
    one = get(svc, f"/api/uploads/upload/{upload_id}", alice)["upload"]
    assert one["user"]["email"] == "alice@example.com" and "id" in one["user"]
    assert [f["key"] for f in one["file_uploads"]] == [sym_key("a")]
    assert one["file_uploads"][0]["compressed"] is True and one["related"] == []
    assert get(svc, f"/api/uploads/upload/{upload_id}", auditor)["upload"]["id"] == upload_id
    assert get(svc, f"/api/uploads/upload/{upload_id}", bob, status=403) == {
        "error": "Insufficient access to view this upload"
    }
    assert get(svc, "/api/uploads/upload/99999", alice, status=404)


def test_related_uploads(make_service):
    svc = make_service({"SYMBOLS_UPLOAD_VALIDATE_CONTENT": "false"})
    token = make_token(svc.ctx, ["upload_symbols"])
    data = (FIXTURES / "sample.zip").read_bytes()
    first = post(svc, token, data).json["upload"]["id"]
    second = post(svc, token, data).json["upload"]["id"]
    related = get(svc, f"/api/uploads/upload/{second}", token)["upload"]["related"]
    assert [r["id"] for r in related] == [first]


def test_files_list_and_one_file(world):
    svc, alice, bob, auditor = world
    assert get(svc, "/api/uploads/files/", alice, status=403) == {"error": "Forbidden"}
    files = get(svc, "/api/uploads/files/", auditor)
    assert files["total"] == 3 and files["batch_size"] == 40
    assert files["files"][0]["upload"]["upload_type"] == "try"
    assert get(svc, "/api/uploads/files/?upload_type=regular", auditor)["total"] == 2
    assert get(svc, "/api/uploads/files/?key=a/,ssl", auditor)["total"] == 0
    assert get(svc, "/api/uploads/files/?key=c/", auditor)["total"] == 1
    bucket = files["files"][0]["bucket_name"]
    assert get(svc, f"/api/uploads/files/?bucket_name=!{bucket}", auditor)["total"] == 2
    try_file = files["files"][0]["id"]
    one = get(svc, f"/api/uploads/files/file/{try_file}", bob)["file"]
    assert one["url"] == f"/{sym_key('c')}?try" and one["debug_filename"] == "c"
    assert one["code_id"] == "8AC8078AA43D204EA3490D88791183066C426696"
    assert get(svc, f"/api/uploads/files/file/{try_file}", alice, status=403)
    assert get(svc, f"/api/uploads/files/file/{try_file}", auditor)["file"]["id"] == try_file


def test_stats(world):
    svc, alice, bob, auditor = world
    mine = get(svc, "/api/stats/", alice)["stats"]["uploads"]
    assert mine["all_uploads"] is False and mine["today"]["count"] == 2
    assert mine["yesterday"] == {"count": 0, "total_size": 0}
    assert get(svc, "/api/stats/", auditor)["stats"]["uploads"]["last_30_days"]["count"] == 3


def test_api_needs_a_token(world):
    svc = world[0]
    assert svc.app.get("/api/uploads/", status=403).json == {
        "error": "This requires an Auth-Token to authenticate the request"
    }


def test_auth_info(world):
    svc, alice, bob, auditor = world
    info = svc.app.post("/upload/auth_info/", headers={"Auth-Token": bob}).json
    assert info["email"] == "bob@example.com" and info["try_symbols"] is True
    assert info["upload_api_version"] == 1 and isinstance(info["token_expires_at"], int)
    assert svc.app.post("/upload/auth_info/", headers={"Auth-Token": auditor}, status=403)


@pytest.mark.parametrize(
    "path",
    [
        "/api/uploads/?page=1&page=2",
        "/api/uploads/?user=a&user=b",
        "/api/uploads/files/?key=a&key=b",
        "/api/uploads/?size=" + "1" * 400,
        "/api/uploads/files/?size=" + "1" * 400,
        "/api/uploads/?size=1" + "0" * 25 + "gb",
        "/api/uploads/?created_at=0001-01-01T00:00:00%2B14:00",
        "/api/uploads/?completed_at=9999-12-31T23:00:00-05:00",
        "/api/uploads/files/?created_at=0001-01-01T00:00:00%2B14:00",
        "/api/uploads/?created_at=%3E9999-12-31",
    ],
)
def test_upload_history_api_bad_filters_are_client_errors(make_service, path):
    """RT-10: each of these was a 500."""
    svc = make_service()
    token = make_token(svc.ctx, ["view_all_uploads"])
    resp = svc.app.get(path, headers={"Auth-Token": token}, status="*")
    assert resp.status_int in (200, 400), (path, resp.status_int, resp.text)
    if resp.status_int == 400:
        assert resp.json["error"]


def test_upload_with_chunked_multipart_body_is_stored(make_service):
    """RT-10/RT-24: a chunked multipart upload (no Content-Length) is read."""
    import io

    import webtest

    svc = make_service()
    token = make_token(svc.ctx, ["upload_symbols"])
    data = make_zip({sym_key(): sym_text()})
    boundary = "tecken-chunked-test"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="s.zip"; filename="s.zip"\r\n'
            "Content-Type: application/zip\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    req = webtest.TestRequest.blank("/upload/", method="POST")
    req.environ["CONTENT_TYPE"] = f"multipart/form-data; boundary={boundary}"
    req.environ["CONTENT_LENGTH"] = "0"
    req.environ["wsgi.input"] = io.BytesIO(body)
    del req.environ["CONTENT_LENGTH"]
    req.environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    req.environ["HTTP_AUTH_TOKEN"] = token
    resp = svc.app.do_request(req, status="*")
    assert resp.status_int == 201, resp.text
    assert resp.json["upload"]["filename"] == "s.zip"


@pytest.mark.parametrize(
    "recorded, shown",
    [
        ("publicbucket", "publicbucket"),
        ("regular", "regular"),
        ("s3://publicbucket/v1/", "publicbucket"),
        ("gs://symbols/try/v1", "symbols"),
        ("file:///srv/tecken/storage/v1", "filesystem"),
    ],
)
def test_rows_recorded_with_a_storage_url_show_the_bucket_alone(make_service, recorded, shown):
    # Rows written before bucket names were Tecken's bare names still answer
    # with one: no scheme, key prefix or host path (RT-18).
    svc = make_service({"SYMBOLS_UPLOAD_VALIDATE_CONTENT": "false"})
    token = make_token(svc.ctx, ["upload_symbols", "view_all_uploads"])
    post(svc, token, make_zip({sym_key("a"): sym_text("a")}))
    svc.ctx.db.execute("UPDATE uploads SET bucket_name = ?", (recorded,))
    svc.ctx.db.execute("UPDATE file_uploads SET bucket_name = ?", (recorded,))
    assert get(svc, "/api/uploads/", token)["uploads"][0]["bucket_name"] == shown
    upload = get(svc, "/api/uploads/", token)["uploads"][0]["id"]
    detail = get(svc, f"/api/uploads/upload/{upload}", token)["upload"]
    assert detail["bucket_name"] == shown and detail["file_uploads"][0]["bucket_name"] == shown
    assert get(svc, "/api/uploads/files/", token)["files"][0]["bucket_name"] == shown
