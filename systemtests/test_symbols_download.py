# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Black-box tests of symbol downloads (SYMBOLS_URL). Read-only: misses are
probed with HEAD (which records nothing) or on ignored paths.

``SYSTEMTEST_SYMBOLS_KEY`` names a symbol known to exist in regular storage
(``debug_file/DEBUG_ID/file.sym``) for the found-path tests; without it they
are skipped."""

import os

import pytest
import requests

MISSING = (
    "tecken-systemtest-missing.pdb/0123456789ABCDEF0123456789ABCDEF1/tecken-systemtest-missing.sym"
)
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET",
}


def get(url, method="GET", **kwargs):
    return requests.request(method, url, allow_redirects=False, timeout=30, **kwargs)


def assert_cors(resp):
    for name, value in CORS.items():
        assert resp.headers.get(name) == value


@pytest.fixture(scope="module")
def known_key():
    key = os.environ.get("SYSTEMTEST_SYMBOLS_KEY", "").strip("/")
    if not key:
        pytest.skip("set SYSTEMTEST_SYMBOLS_KEY to a symbol that exists to test found downloads")
    return key


def test_heartbeat(symbols_url):
    body = get(symbols_url + "/__heartbeat__").json()
    assert body["status"] == "ok", body


def test_missing_is_404_with_cors(symbols_url):
    resp = get(f"{symbols_url}/{MISSING}", method="HEAD")
    assert resp.status_code == 404
    assert_cors(resp)
    resp = get(f"{symbols_url}/try/{MISSING}", method="HEAD", headers={"Debug": "true"})
    assert resp.status_code == 404
    assert float(resp.headers["Debug-Time"]) >= 0


@pytest.mark.parametrize(
    "path",
    [
        "/xul.pdb/ABCDEF0123456789/file.ptr",
        "/xul.pdb/000000000000000000000000000000000/xul.sym",
        "/xul.pdb/ABCDEF0123456789/XUL.SYM",
    ],
)
def test_ignored(symbols_url, path):
    resp = get(symbols_url + path, headers={"Debug": "1"})
    assert resp.status_code == 404
    assert resp.text == "Symbol Not Found (and ignored)"
    assert resp.headers["Debug-Time"] == "0"


def test_invalid_path_is_json_404(symbols_url):
    resp = get(symbols_url + "/xul.pdb/NOTHEX/xul.sym")
    assert resp.status_code == 404
    assert resp.json()["error"] == "Not Found"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_other_methods(symbols_url, method):
    resp = get(f"{symbols_url}/{MISSING}", method=method)
    assert resp.status_code == 405
    assert resp.json() == {"error": f"Method Not Allowed ({method}): /{MISSING}"}


def test_syminfo_miss(symbols_url):
    resp = get(symbols_url + "/api/syminfo/tecken-systemtest-missing.exe/ABCDEF0123")
    assert resp.status_code == 404
    assert resp.text == "Code file / id Not Found"


def test_missing_symbols_reports(symbols_url):
    resp = get(symbols_url + "/missingsymbols.csv")
    assert resp.status_code == 200
    assert resp.text.splitlines()[0] == "debug_file,debug_id,code_file,code_id"
    body = get(symbols_url + "/missingsymbols/?batch_size=5").json()
    assert {"missing_symbols", "total", "has_next"} <= set(body)
    assert get(symbols_url + "/missingsymbols/?page=0").status_code == 400


def test_found(symbols_url, known_key):
    resp = get(f"{symbols_url}/{known_key}")
    assert resp.status_code == 302
    assert_cors(resp)
    location = resp.headers["Location"]
    assert get(f"{symbols_url}/{known_key}", method="HEAD").status_code == 200
    debug_file, debug_id, name = known_key.split("/")
    lower = get(f"{symbols_url}/{debug_file}/{debug_id.lower()}/{name}")
    assert lower.status_code == 302
    assert get(f"{symbols_url}/try/{known_key}").status_code == 302
    target = requests.get(location, timeout=60)
    assert target.status_code == 200
    if name.endswith(".sym"):
        assert target.text.startswith("MODULE ")
