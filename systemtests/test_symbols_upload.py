# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Black-box tests of symbol uploads (SYMBOLS_URL).

Without SYSTEMTEST_ALLOW_WRITES=1 only refusals are checked (nothing is
stored). With it and SYSTEMTEST_SYMBOLS_TOKEN (a token with upload_symbols or
upload_try_symbols), small generated symbols with a random debug id are
uploaded as **try** uploads (they expire with the try retention)."""

import gzip
import hashlib
import io
import os
import uuid
import zipfile

import pytest
import requests


def post(url, **kwargs):
    return requests.post(url, timeout=60, **kwargs)


def zip_of(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def sym(debug_file, debug_id):
    return (
        f"MODULE Linux x86_64 {debug_id} {debug_file}\n"
        "INFO GENERATOR tecken-systemtest\n"
        "FILE 0 systemtest.c\n"
        "FUNC 1000 10 0 systemtest_function\n"
        "1000 10 1 0\n"
        "PUBLIC 2000 0 systemtest_public\n"
    ).encode()


@pytest.fixture(scope="module")
def token(allow_writes):
    value = os.environ.get("SYSTEMTEST_SYMBOLS_TOKEN", "")
    if not allow_writes or not value:
        pytest.skip("set SYSTEMTEST_ALLOW_WRITES=1 and SYSTEMTEST_SYMBOLS_TOKEN for upload tests")
    return value


@pytest.fixture
def fresh():
    debug_id = uuid.uuid4().hex.upper() + "0"
    debug_file = "tecken-systemtest.dbg"
    key = f"{debug_file}/{debug_id}/tecken-systemtest.sym"
    return key, sym(debug_file, debug_id)


def test_upload_without_token_refused(symbols_url):
    resp = post(f"{symbols_url}/upload/", files={"x.zip": ("x.zip", b"PK")})
    assert resp.status_code in (401, 403)
    assert resp.json()["error"] == "This requires an Auth-Token to authenticate the request"


def test_upload_with_unknown_token_refused(symbols_url):
    resp = post(
        f"{symbols_url}/upload/",
        files={"x.zip": ("x.zip", b"PK")},
        headers={"Auth-Token": "0" * 32},
    )
    assert resp.status_code == 403 and resp.json() == {"error": "API Token not matched"}


def test_upload_get_not_allowed(symbols_url):
    assert requests.get(f"{symbols_url}/upload/", timeout=30).status_code == 405


def test_v2_and_api_need_a_token(symbols_url):
    assert post(f"{symbols_url}/upload/v2/", json={"files": []}).status_code in (401, 403)
    assert requests.get(f"{symbols_url}/api/uploads/", timeout=30).status_code in (401, 403)


def test_try_upload_round_trip(symbols_url, token, fresh):
    key, data = fresh
    h = {"Auth-Token": token}
    archive = zip_of({key: data})
    resp = post(
        f"{symbols_url}/upload/",
        files={"systemtest.zip": ("systemtest.zip", archive)},
        data={"try": "true"},
        headers=h,
    )
    assert resp.status_code == 201, resp.text
    upload = resp.json()["upload"]
    assert upload["try_symbols"] is True and upload["skipped_keys"] == []
    got = requests.get(f"{symbols_url}/try/{key}", allow_redirects=False, timeout=30)
    assert got.status_code == 302
    target = requests.get(got.headers["Location"], timeout=30)
    assert target.status_code == 200
    assert target.content == data or gzip.decompress(target.content) == data
    again = post(
        f"{symbols_url}/upload/",
        files={"systemtest.zip": ("systemtest.zip", archive)},
        data={"try": "true"},
        headers=h,
    )
    assert again.status_code == 201 and again.json()["upload"]["skipped_keys"] == [key]
    one = requests.get(f"{symbols_url}/api/uploads/upload/{upload['id']}", headers=h, timeout=30)
    assert one.status_code == 200 and [f["key"] for f in one.json()["upload"]["file_uploads"]] == [
        key
    ]


def test_invalid_archives_refused(symbols_url, token):
    h = {"Auth-Token": token}
    resp = post(
        f"{symbols_url}/upload/",
        files={"x.zip": ("x.zip", b"not a zip")},
        data={"try": "1"},
        headers=h,
    )
    assert resp.status_code == 400 and resp.json()["error"] == "File is not a zip file"
    bad = zip_of({"xpcshell.sym": b"x"})
    resp = post(
        f"{symbols_url}/upload/", files={"x.zip": ("x.zip", bad)}, data={"try": "1"}, headers=h
    )
    assert resp.status_code == 400 and "Unrecognized file pattern" in resp.json()["error"]


def test_v2_try_round_trip(symbols_url, token, fresh):
    key, data = fresh
    h = {"Auth-Token": token}
    declared = {"key": key, "size": len(data), "md5_hash": hashlib.md5(data).hexdigest()}
    resp = post(f"{symbols_url}/upload/v2/", json={"files": [declared]}, headers=h)
    assert resp.status_code == 201, resp.text
    action = resp.json()["files"][0]["action"]
    if action["type"] == "upload" and resp.json()["upload_protocol"] == "tecken-put":
        body = gzip.compress(data) if action["content_encoding"] == "gzip" else data
        put = requests.put(action["url"], data=body, headers=h, timeout=60)
        assert put.status_code == 200 and put.json()["upload_completed"] is True
