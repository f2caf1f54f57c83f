# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The services together: a symbol file uploaded to symbols is downloadable
and symbolicates through eliot (which must be configured with this symbols
service in ELIOT_SYMBOL_URLS, as ``make run`` is).

Writes, so it needs SYSTEMTEST_ALLOW_WRITES=1 and SYSTEMTEST_SYMBOLS_TOKEN
with upload_symbols (a regular upload: eliot does not read try storage). The
module has a random debug id and a name no real build uses."""

import io
import os
import uuid
import zipfile

import pytest
import requests

DEBUG_FILE = "tecken-systemtest-e2e.so"


def sym_text(debug_id: str) -> str:
    return (
        f"MODULE Linux x86_64 {debug_id} {DEBUG_FILE}\n"
        "INFO CODE_ID 00112233445566778899AABBCCDDEEFF\n"
        "FILE 0 /build/e2e/main.c\n"
        "FUNC 1000 20 0 e2e_outer\n"
        "1000 10 10 0\n"
        "1010 10 11 0\n"
        "FUNC 1100 30 0 e2e_second\n"
        "1100 30 20 0\n"
        "PUBLIC 2000 0 e2e_public\n"
    )


@pytest.fixture
def token(allow_writes):
    value = os.environ.get("SYSTEMTEST_SYMBOLS_TOKEN", "")
    if not (allow_writes and value):
        pytest.skip("needs SYSTEMTEST_ALLOW_WRITES=1 and SYSTEMTEST_SYMBOLS_TOKEN")
    return value


def test_upload_download_symbolicate(symbols_url, eliot_url, token):
    debug_id = uuid.uuid4().hex.upper() + "0"
    member = f"{DEBUG_FILE}/{debug_id}/{DEBUG_FILE}.sym"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(member, sym_text(debug_id))

    upload = requests.post(
        f"{symbols_url}/upload/",
        headers={"Auth-Token": token},
        files={"e2e.zip": ("e2e.zip", buf.getvalue(), "application/zip")},
        timeout=60,
    )
    if upload.status_code == 403:
        pytest.skip(f"the token cannot make regular uploads: {upload.text}")
    assert upload.status_code == 201, upload.text

    head = requests.head(f"{symbols_url}/{member}", timeout=10)
    assert head.status_code == 200
    download = requests.get(f"{symbols_url}/{member}", timeout=10, allow_redirects=False)
    assert download.status_code == 302
    assert "e2e_outer" in requests.get(download.headers["Location"], timeout=10).text

    job = {
        "memoryMap": [[DEBUG_FILE, debug_id]],
        "stacks": [[[0, 0x1012], [0, 0x1105], [0, 0x2004]]],
    }
    answer = requests.post(f"{eliot_url}/symbolicate/v5", json={"jobs": [job]}, timeout=60)
    assert answer.status_code == 200, answer.text
    result = answer.json()["results"][0]
    assert result["found_modules"] == {f"{DEBUG_FILE}/{debug_id}": True}
    frames = result["stacks"][0]
    assert [f.get("function") for f in frames] == ["e2e_outer", "e2e_second", "e2e_public"]
    assert frames[0]["line"] == 11 and frames[0]["function_offset"] == "0x12"
    assert frames[0]["file"] == "/build/e2e/main.c"
