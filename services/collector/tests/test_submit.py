# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""POST /submit through WebTest: responses, raw crash contents, layout."""

from __future__ import annotations

import gzip
import hashlib
import json
import re

import pytest
import webtest
from collector_helpers import ANNOTATIONS, crash_files, crash_id_of, fixture_dump, read_raw_crash

from tecken_collector.crashid import is_valid_crash_id
from tecken_collector.multipart import encode_multipart

BOUNDARY = "01659896d5dc42cabd7f3d8a3dcdd3bb"
CT = f"multipart/form-data; boundary={BOUNDARY}"


@pytest.fixture(params=["in-memory", "streaming"])
def app(request, make_app):
    """Every test runs against both body parsers."""
    return make_app(parse_in_memory_max="2MiB" if request.param == "in-memory" else "0")


def part(name: str | None, value: bytes, headers: str = "") -> bytes:
    disp = "Content-Disposition: form-data" + (f'; name="{name}"' if name is not None else "")
    return f"--{BOUNDARY}\r\n{disp}\r\n{headers}\r\n".encode() + value + b"\r\n"


def body(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def dump_part(name: str, data: bytes, ctype: str = "application/octet-stream") -> bytes:
    disp = f'Content-Disposition: form-data; name="{name}"; filename="{name}.dmp"'
    return f"--{BOUNDARY}\r\n{disp}\r\nContent-Type: {ctype}\r\n\r\n".encode() + data + b"\r\n"


def post(app: webtest.TestApp, data: bytes, **headers: str) -> webtest.TestResponse:
    headers.setdefault("Content-Type", CT)
    return app.post("/submit", data, headers=headers, expect_errors=True)


def test_accept_stores_complete_crash(app, roots):
    dump = fixture_dump()
    data, ctype = encode_multipart(
        ANNOTATIONS, {"upload_file_minidump": dump, "memory_report": b"mem"}
    )
    resp = post(app, data, **{"Content-Type": ctype, "User-Agent": "Breakpad/1.0"})
    assert resp.status_int == 200
    assert resp.content_type == "text/plain"
    crash_id = crash_id_of(resp.text)
    assert is_valid_crash_id(crash_id)
    assert crash_id[-7] == "0"
    day = "20" + crash_id[-6:]
    assert crash_files(roots[0]) == sorted(
        [
            f"{day}/dump_names/{crash_id}.json",
            f"{day}/memory_report/{crash_id}",
            f"{day}/raw_crash/{crash_id}.json",
            f"{day}/upload_file_minidump/{crash_id}",
        ]
    )
    assert crash_files(roots[1]) == []
    assert (roots[0] / day / "upload_file_minidump" / crash_id).read_bytes() == dump
    names = json.loads((roots[0] / day / "dump_names" / f"{crash_id}.json").read_bytes())
    assert names == ["memory_report", "upload_file_minidump"]
    raw_path = roots[0] / day / "raw_crash" / f"{crash_id}.json"
    raw = json.loads(raw_path.read_bytes())
    # keys sorted, as json.dumps(sort_keys=True)
    assert raw_path.read_bytes() == json.dumps(raw, sort_keys=True).encode()
    assert raw["uuid"] == crash_id
    assert raw["version"] == 2
    assert raw["ProductName"] == "Firefox"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\+00:00$", raw["submitted_timestamp"])
    meta = raw["metadata"]
    assert meta == {
        "payload": "multipart",
        "payload_compressed": "0",
        "payload_size": len(data),
        "collector_notes": [],
        "dump_checksums": {
            "upload_file_minidump": hashlib.sha256(dump).hexdigest(),
            "memory_report": hashlib.sha256(b"mem").hexdigest(),
        },
        "user_agent": "Breakpad/1.0",
        "throttle_rule": "is_nightly",
    }


def test_gzip_submission(app, roots):
    data, ctype = encode_multipart(ANNOTATIONS, {"upload_file_minidump": b"MDMP" * 100})
    wire = gzip.compress(data)
    resp = post(app, wire, **{"Content-Type": ctype, "Content-Encoding": "gzip"})
    crash_id = crash_id_of(resp.text)
    raw = read_raw_crash(roots[0], crash_id)
    assert raw["metadata"]["payload_compressed"] == "1"
    assert raw["metadata"]["payload_size"] == len(wire)
    assert raw["metadata"]["user_agent"] == "None"


def test_json_annotations(app, roots):
    extra = {"ProductName": "Firefox", "ReleaseChannel": "nightly", "Number": 5, "Nested": {"a": 1}}
    data, ctype = encode_multipart(extra, {"upload_file_minidump": b"x"}, as_json=True)
    crash_id = crash_id_of(post(app, data, **{"Content-Type": ctype}).text)
    raw = read_raw_crash(roots[0], crash_id)
    assert raw["Number"] == 5 and raw["Nested"] == {"a": 1}
    assert raw["metadata"]["payload"] == "json"
    assert raw["metadata"]["collector_notes"] == []


def test_json_and_form_fields_merge_in_order(app, roots):
    data = body(
        part("Lost", b"before"),
        part(
            "extra",
            b'{"ProductName": "Firefox", "ReleaseChannel": "nightly"}',
            "Content-Type: application/json\r\n",
        ),
        part("Kept", b"after"),
    )
    crash_id = crash_id_of(post(app, data).text)
    raw = read_raw_crash(roots[0], crash_id)
    assert "Lost" not in raw and raw["Kept"] == "after"
    assert raw["metadata"]["payload"] == "json"
    assert raw["metadata"]["collector_notes"] == [
        "includes annotations in both json-encoded extra and formdata parts"
    ]


def test_multipart_mixed_and_quoted_boundary(app, roots):
    data = body(part("ProductName", b"Firefox"), part("ReleaseChannel", b"nightly"))
    resp = post(app, data, **{"Content-Type": f'multipart/mixed; boundary="{BOUNDARY}"'})
    assert resp.text.startswith("CrashID=bp-")


def test_duplicate_fields_last_wins(app, roots):
    data = body(
        part("ProductName", b"Firefox"),
        part("ReleaseChannel", b"nightly"),
        part("Dup", b"one"),
        part("Dup", b"two"),
        dump_part("upload_file_minidump", b"first"),
        dump_part("upload_file_minidump", b"second"),
    )
    crash_id = crash_id_of(post(app, data).text)
    raw = read_raw_crash(roots[0], crash_id)
    assert raw["Dup"] == "two"
    day = "20" + crash_id[-6:]
    assert (roots[0] / day / "upload_file_minidump" / crash_id).read_bytes() == b"second"


def test_non_utf8_value_dropped_with_note_and_nul_kept(app, roots):
    data = body(
        part("ProductName", b"Firefox"),
        part("ReleaseChannel", b"nightly"),
        part("Bad", b"\xff\xfe\xfa"),
        part("Nul", b"a\x00b"),
        part(
            "Latin", "caf\u00e9".encode("latin-1"), "Content-Type: text/plain; charset=latin-1\r\n"
        ),
    )
    crash_id = crash_id_of(post(app, data).text)
    raw = read_raw_crash(roots[0], crash_id)
    assert "Bad" not in raw
    assert raw["Nul"] == "a\x00b"
    assert raw["Latin"] == "caf\u00e9"
    assert raw["metadata"]["collector_notes"] == [
        "extract payload text part exception: invalid text or charset: utf-8"
    ]


def test_part_without_name_dropped_and_dump_names_sanitized(app, roots):
    data = body(
        part(None, b"nameless"),
        part("ProductName", b"Firefox"),
        part("ReleaseChannel", b"nightly"),
        dump_part("upload-file-minidump.x", b"d1"),
        dump_part("a" * 40, b"d2"),
        dump_part("gz", b"d3", "application/gzip"),
        part("textdump", b"d4", "Content-Type: text/plain\r\n"),
    )
    # a text/plain part with a filename is a dump
    data = data.replace(b'name="textdump"\r\n', b'name="textdump"; filename="t.txt"\r\n')
    crash_id = crash_id_of(post(app, data).text)
    raw = read_raw_crash(roots[0], crash_id)
    assert sorted(raw["metadata"]["dump_checksums"]) == sorted(
        ["uploadfileminidumpx", "a" * 30, "gz", "textdump"]
    )
    assert raw["metadata"]["collector_notes"] == [
        "unknown content type: gz application/gzip",
        "unknown content type: textdump text/plain",
    ]
    assert "textdump" not in raw


def test_removed_fields(app, roots):
    fields = dict(
        ANNOTATIONS,
        Email="a@b.c",
        TelemetryClientId="x",
        TelemetryServerURL="u",
        TelemetrySessionId="s",
    )
    data, ctype = encode_multipart(fields, {})
    crash_id = crash_id_of(post(app, data, **{"Content-Type": ctype}).text)
    raw = read_raw_crash(roots[0], crash_id)
    for name in ("Email", "TelemetryClientId", "TelemetryServerURL", "TelemetrySessionId"):
        assert name not in raw
    assert raw["metadata"]["collector_notes"] == [
        "Removed Email from raw crash.",
        "Removed TelemetryClientId from raw crash.",
        "Removed TelemetryServerURL from raw crash.",
        "Removed TelemetrySessionId from raw crash.",
    ]


def test_crash_without_dumps(app, roots):
    data, ctype = encode_multipart(ANNOTATIONS, {})
    crash_id = crash_id_of(post(app, data, **{"Content-Type": ctype}).text)
    day = "20" + crash_id[-6:]
    assert json.loads((roots[0] / day / "dump_names" / f"{crash_id}.json").read_bytes()) == []


# --- throttling outcomes ---------------------------------------------------------------


def test_rejected_by_rule(app, roots):
    data, ctype = encode_multipart({"ProductName": "NotAProduct"}, {"upload_file_minidump": b"x"})
    resp = post(app, data, **{"Content-Type": ctype})
    assert resp.status_int == 200
    assert resp.body == b"Discarded=rule_unsupported_product"
    assert crash_files(roots[0]) == []


@pytest.mark.parametrize(
    "extra",
    [
        {"SubmittedFromInfobar": "true", "Version": "\u00b2"},
        {
            "ReleaseChannel": "esr",
            "TelemetryEnvironment": '{"system": {"os": {"name": "Windows_NT", '
            '"windowsBuildNumber": Infinity}}}',
        },
        {"ReleaseChannel": "esr", "TelemetryEnvironment": "[" * 100_000},
    ],
    ids=["superscript-version", "infinite-build-number", "deep-telemetry-json"],
)
def test_odd_annotation_values_are_throttled_not_500(app, extra):
    data, ctype = encode_multipart(dict(ANNOTATIONS, **extra), {})
    resp = post(app, data, **{"Content-Type": ctype})
    assert resp.status_int == 200, resp.text
    assert resp.text.startswith(("CrashID=bp-", "Discarded=rule_"))


def test_fakeaccept_stores_nothing(app, roots):
    data, ctype = encode_multipart({"ProductName": "b2g"}, {"upload_file_minidump": b"x"})
    resp = post(app, data, **{"Content-Type": ctype})
    assert resp.status_int == 200
    assert is_valid_crash_id(crash_id_of(resp.text))
    assert crash_files(roots[0]) == []


def test_accept_all_ruleset(make_app, roots):
    app = make_app(throttler_rules="accept_all")
    data, ctype = encode_multipart({"ProductName": "Whatever"}, {})
    crash_id = crash_id_of(post(app, data, **{"Content-Type": ctype}).text)
    assert read_raw_crash(roots[0], crash_id)["metadata"]["throttle_rule"] == "accept_everything"


def test_defer_ruleset_sets_digit(make_app, roots):
    app = make_app(throttler_rules="throttler_rules_for_tests:DEFER_ALL")
    data, ctype = encode_multipart({"ProductName": "Firefox"}, {})
    crash_id = crash_id_of(post(app, data, **{"Content-Type": ctype}).text)
    assert crash_id[-7] == "1"
    assert read_raw_crash(roots[0], crash_id)["metadata"]["throttle_rule"] == "defer_everything"


# --- client-supplied crash ids -------------------------------------------------------------

GOOD_ID = "de1bb258-cbbf-4589-a673-34f800160918"


def test_uuid_without_token_is_401(app, roots):
    data, ctype = encode_multipart(dict(ANNOTATIONS, uuid=GOOD_ID), {})
    resp = post(app, data, **{"Content-Type": ctype, "Authorization": "Bearer guess"})
    assert resp.status_int == 401
    assert resp.body == b"Discarded=unauthorized_uuid"
    assert crash_files(roots[0]) == []


def test_uuid_with_token(make_app, roots):
    app = make_app(stage_submitter_bearer_token="s3cret")
    data, ctype = encode_multipart(dict(ANNOTATIONS, uuid=GOOD_ID), {})
    resp = post(app, data, **{"Content-Type": ctype, "Authorization": "Bearer s3cret"})
    assert resp.body == f"CrashID=bp-{GOOD_ID}\n".encode()
    assert read_raw_crash(roots[0], GOOD_ID)["uuid"] == GOOD_ID
    assert (roots[0] / "20160918" / "raw_crash" / f"{GOOD_ID}.json").is_file()

    bad_data, bad_ctype = encode_multipart(dict(ANNOTATIONS, uuid="not-a-crash-id"), {})
    bad = post(app, bad_data, **{"Content-Type": bad_ctype, "Authorization": "Bearer s3cret"})
    assert bad.status_int == 400
    assert bad.body == b"Discarded=malformed_invalid_uuid"
    wrong_token = post(app, data, **{"Content-Type": ctype, "Authorization": "Bearer s3cre"})
    assert wrong_token.status_int == 401


def test_uuid_with_bad_throttle_digit_rejected(make_app):
    app = make_app(stage_submitter_bearer_token="s3cret")
    data, ctype = encode_multipart(dict(ANNOTATIONS, uuid=GOOD_ID[:-7] + "2160918"), {})
    resp = post(app, data, **{"Content-Type": ctype, "Authorization": "Bearer s3cret"})
    assert resp.body == b"Discarded=malformed_invalid_uuid"


# --- other methods and dockerflow ------------------------------------------------------------


def test_get_submit_is_405(app):
    assert app.get("/submit", expect_errors=True).status_int == 405
    assert app.put("/submit", b"x", expect_errors=True).status_int == 405


def test_dockerflow(app, roots):
    assert app.get("/__lbheartbeat__").status_int == 200
    assert app.get("/__heartbeat__").json["errors"] == []
    assert app.get("/__version__").json == {}  # no version.json: Dockerflow says {}
    assert app.get("/__broken__", expect_errors=True).status_int == 500


def test_heartbeat_fails_below_the_free_space_or_inode_threshold(make_app, roots):
    app = make_app(crashstorage_min_free_space=str(2**60))
    resp = app.get("/__heartbeat__", expect_errors=True)
    assert resp.status_int == 503
    assert "COLLECTOR_CRASHSTORAGE_MIN_FREE_SPACE" in resp.json["errors"][0]["msg"]
    app = make_app(crashstorage_min_free_inodes=str(2**62))
    resp = app.get("/__heartbeat__", expect_errors=True)
    assert resp.status_int == 503
    assert "COLLECTOR_CRASHSTORAGE_MIN_FREE_INODES" in resp.json["errors"][0]["msg"]


def test_heartbeat_fails_when_root_missing(make_app, roots, tmp_path):
    app = make_app(crashstorage_root=str(tmp_path / "nope"))
    resp = app.get("/__heartbeat__", expect_errors=True)
    assert resp.status_int == 503
    assert "does not exist" in resp.json["errors"][0]["msg"]
