# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Black-box tests of the collector at COLLECTOR_URL.

Without SYSTEMTEST_ALLOW_WRITES only requests that can never store a crash
are sent (malformed submissions, wrong methods). With it, real crashes are
submitted (ProductName "Firefox", nightly channel, so the Mozilla rules
accept them; they carry the annotation SystemTest=1)."""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tecken_collector.multipart import compress, encode_multipart

CRASH_ID = re.compile(
    r"^CrashID=bp-[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{6}[0-9]{6}\n$"
)


def annotations() -> dict[str, str]:
    return {
        "ProductName": "Firefox",
        "Version": "999.0a1",
        "ReleaseChannel": "nightly",
        "BuildID": "20991231000000",
        "SystemTest": "1",
    }


def dump_bytes() -> bytes:
    """SYSTEMTEST_CRASH_DUMP names a dump file; otherwise 300 KB of filler."""
    path = os.environ.get("SYSTEMTEST_CRASH_DUMP")
    if path:
        return Path(path).read_bytes()
    return b"MDMP" + bytes(300 * 1024)


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    req = urllib.request.Request(url + "/submit", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_get_submit_is_405(collector_url):
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(collector_url + "/submit", timeout=10)
    assert info.value.code == 405


@pytest.mark.parametrize(
    "headers,expected",
    [
        ({"Content-Type": "text/plain"}, b"Discarded=malformed_wrong_content_type"),
        ({"Content-Type": "multipart/form-data"}, b"Discarded=malformed_no_boundary"),
        (
            {"Content-Type": "multipart/form-data; boundary=x", "Content-Encoding": "gzip"},
            b"Discarded=malformed_bad_gzip",
        ),
        (
            {"Content-Type": "multipart/form-data; boundary=x"},
            b"Discarded=malformed_invalid_payload_structure",
        ),
    ],
)
def test_malformed_submissions(collector_url, headers, expected):
    status, body = post(collector_url, b"this is not a crash", headers)
    assert (status, body) == (400, expected)


def test_no_annotations(collector_url):
    body, ctype = encode_multipart({}, {"upload_file_minidump": b"MDMP"})
    assert post(collector_url, body, {"Content-Type": ctype}) == (
        400,
        b"Discarded=malformed_no_annotations",
    )


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
def test_submit_crash(collector_url, allow_writes, gzip):
    if not allow_writes:
        pytest.skip("submits a crash: set SYSTEMTEST_ALLOW_WRITES=1")
    body, ctype = encode_multipart(annotations(), {"upload_file_minidump": dump_bytes()})
    headers = {"Content-Type": ctype, "User-Agent": "tecken-systemtest"}
    if gzip:
        body = compress(body)
        headers["Content-Encoding"] = "gzip"
    status, text = post(collector_url, body, headers)
    assert status == 200
    assert CRASH_ID.match(text.decode()), text


def test_unsupported_product_discarded(collector_url, allow_writes):
    if not allow_writes:
        pytest.skip("would store a crash if the throttler accepts everything")
    body, ctype = encode_multipart({"ProductName": "NoSuchProductForSystemtests"}, {})
    status, text = post(collector_url, body, {"Content-Type": ctype})
    assert status == 200
    assert text in (b"Discarded=rule_unsupported_product",) or CRASH_ID.match(text.decode())
