# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Every malformed-input case of the spec: exact status and body, nothing stored."""

from __future__ import annotations

import gzip
import io
import zlib

import pytest
import webtest
from collector_helpers import ANNOTATIONS, crash_files

from tecken_collector.multipart import encode_multipart

GOOD, GOOD_CT = encode_multipart(ANNOTATIONS, {"upload_file_minidump": b"MDMP" * 10})
BOUNDARY = GOOD_CT.split("boundary=")[1]


@pytest.fixture(params=["in-memory", "streaming"])
def app(request, make_app):
    """Every test runs against both body parsers."""
    return make_app(parse_in_memory_max="2MiB" if request.param == "in-memory" else "0")


def post(app, data, **headers):
    headers.setdefault("Content-Type", GOOD_CT)
    return app.post("/submit", data, headers=headers, expect_errors=True)


def assert_malformed(resp, reason, status=400):
    assert resp.status_int == status, resp.text
    assert resp.content_type == "text/plain"
    assert resp.body == f"Discarded=malformed_{reason}".encode()


@pytest.mark.parametrize(
    "content_type,reason",
    [
        (None, "no_content_type"),
        ("", "no_content_type"),
        ("text/plain", "wrong_content_type"),
        ("application/json; boundary=x", "wrong_content_type"),
        ("multipart/form-data", "no_boundary"),
        ("multipart/form-data; charset=utf-8", "no_boundary"),
    ],
)
def test_content_type_checks(app, roots, content_type, reason):
    req = webtest.TestRequest.blank("/submit", method="POST", body=GOOD)
    if content_type is not None:
        req.headers["Content-Type"] = content_type
    elif "Content-Type" in req.headers:
        del req.headers["Content-Type"]
    resp = app.do_request(req, expect_errors=True)
    assert_malformed(resp, reason)
    assert crash_files(roots[0]) == []


def test_no_content_length(app, roots):
    req = webtest.TestRequest.blank("/submit", method="POST")
    req.environ["wsgi.input"] = io.BytesIO(GOOD)
    req.environ["CONTENT_TYPE"] = GOOD_CT
    req.environ.pop("CONTENT_LENGTH", None)
    assert_malformed(app.do_request(req, expect_errors=True), "no_content_length")
    req.environ["CONTENT_LENGTH"] = "0"
    assert_malformed(app.do_request(req, expect_errors=True), "no_content_length")


def test_content_length_shorter_than_body(app, roots):
    req = webtest.TestRequest.blank("/submit", method="POST")
    req.environ["wsgi.input"] = io.BytesIO(GOOD)
    req.environ["CONTENT_TYPE"] = GOOD_CT
    req.environ["CONTENT_LENGTH"] = str(len(GOOD) - 30)
    assert_malformed(app.do_request(req, expect_errors=True), "invalid_payload_structure")
    assert crash_files(roots[0]) == []


def test_content_length_longer_than_body(app, roots):
    # The input ends early (client hung up): a truncated multipart, never a 5xx.
    req = webtest.TestRequest.blank("/submit", method="POST")
    req.environ["wsgi.input"] = io.BytesIO(GOOD[:-100])
    req.environ["CONTENT_TYPE"] = GOOD_CT
    req.environ["CONTENT_LENGTH"] = str(len(GOOD))
    assert_malformed(app.do_request(req, expect_errors=True), "invalid_payload_structure")


def test_oversize_body_413(make_app, roots):
    app = make_app(max_request_size="1KiB")
    data, ctype = encode_multipart(ANNOTATIONS, {"upload_file_minidump": b"x" * 2000})
    assert_malformed(post(app, data, **{"Content-Type": ctype}), "payload_too_large", 413)
    small, ctype = encode_multipart(ANNOTATIONS, {"upload_file_minidump": b"x"})
    assert post(app, small, **{"Content-Type": ctype}).text.startswith("CrashID=")


def test_exactly_at_limit_accepted(make_app, roots):
    data, ctype = encode_multipart(ANNOTATIONS, {"upload_file_minidump": b"x" * 100})
    app = make_app(max_request_size=str(len(data)))
    assert post(app, data, **{"Content-Type": ctype}).text.startswith("CrashID=")


def test_oversize_answered_without_reading_body(make_app):
    app = make_app(max_request_size="1KiB")

    class Exploding(io.RawIOBase):
        def read(self, size=-1):
            raise AssertionError("the body must not be read")

        readinto = read

    req = webtest.TestRequest.blank("/submit", method="POST")
    req.environ["wsgi.input"] = Exploding()
    req.environ["CONTENT_TYPE"] = GOOD_CT
    req.environ["CONTENT_LENGTH"] = str(10 * 1024 * 1024)
    req.environ["webtest.lint"] = False
    resp = app.app  # bypass webtest's lint, which reads the input itself
    status = []
    out = b"".join(resp(req.environ, lambda s, h, e=None: status.append(s)))
    assert status[0].startswith("413")
    assert out == b"Discarded=malformed_payload_too_large"


@pytest.mark.parametrize(
    "wire",
    [
        b"not gzip at all",
        gzip.compress(GOOD)[:-12],  # truncated trailer
        gzip.compress(GOOD)[: len(gzip.compress(GOOD)) // 2],  # truncated in the middle
        zlib.compress(GOOD),  # zlib, not gzip
    ],
    ids=["garbage", "truncated-trailer", "truncated-middle", "zlib-not-gzip"],
)
def test_bad_gzip(app, roots, wire):
    assert_malformed(post(app, wire, **{"Content-Encoding": "gzip"}), "bad_gzip")
    assert crash_files(roots[0]) == []


def test_gzip_bomb(make_app, roots):
    app = make_app(max_decompressed_size="1MiB")
    bomb_body, ctype = encode_multipart(
        ANNOTATIONS, {"upload_file_minidump": b"\0" * (40 * 1024 * 1024)}
    )
    wire = gzip.compress(bomb_body, 9)
    assert len(wire) < 100 * 1024
    resp = post(app, wire, **{"Content-Type": ctype, "Content-Encoding": "gzip"})
    assert_malformed(resp, "decompressed_too_large", 413)
    assert crash_files(roots[0]) == []


def test_content_encoding_not_exactly_gzip_is_not_decompressed(app):
    resp = post(app, gzip.compress(GOOD), **{"Content-Encoding": "GZIP"})
    assert_malformed(resp, "invalid_payload_structure")


@pytest.mark.parametrize(
    "data",
    [
        b"no boundaries here",
        GOOD.replace(b"\r\n", b"\n"),
        GOOD[: GOOD.rindex(b"--" + BOUNDARY.encode())],  # no final boundary
        GOOD.replace(f"--{BOUNDARY}".encode(), b"--otherboundary"),
    ],
    ids=["garbage", "no-crlf", "no-final-boundary", "wrong-boundary"],
)
def test_invalid_payload_structure(app, roots, data):
    assert_malformed(post(app, data), "invalid_payload_structure")
    assert crash_files(roots[0]) == []


def json_part(value: bytes) -> bytes:
    return (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="extra"\r\n'
            "Content-Type: application/json\r\n\r\n"
        ).encode()
        + value
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


@pytest.mark.parametrize(
    "value",
    [b"{not json", b"\xff{}", b'{"a": ', b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"],
)
def test_invalid_json(app, value):
    assert_malformed(post(app, json_part(value)), "invalid_json")


@pytest.mark.parametrize("value", [b"[]", b'"string"', b"5", b"null"])
def test_invalid_json_value(app, value):
    assert_malformed(post(app, json_part(value)), "invalid_json_value")


def test_no_annotations(app, roots):
    assert_malformed(post(app, json_part(b"{}")), "no_annotations")
    only_dump, ctype = encode_multipart({}, {"upload_file_minidump": b"x"})
    assert_malformed(post(app, only_dump, **{"Content-Type": ctype}), "no_annotations")
    assert crash_files(roots[0]) == []


@pytest.mark.parametrize("name", ["dump_names", "raw_crash", "processed_crash", "!!!"])
def test_invalid_dump_name(app, roots, name):
    data, ctype = encode_multipart(ANNOTATIONS, {name: b"x"})
    assert_malformed(post(app, data, **{"Content-Type": ctype}), "invalid_dump_name")
    assert crash_files(roots[0]) == []


def test_too_many_dumps(make_app, roots):
    app = make_app(max_dumps="3")
    dumps = {f"dump{i}": b"x" for i in range(4)}
    data, ctype = encode_multipart(ANNOTATIONS, dumps)
    assert_malformed(post(app, data, **{"Content-Type": ctype}), "too_many_dumps")
    assert crash_files(roots[0]) == []
    # A repeated dump name replaces the earlier one and does not count twice.
    twice = data.replace(b"dump3", b"dump0")  # 4 dump parts, 3 names
    resp = post(app, twice, **{"Content-Type": ctype})
    assert resp.status_int == 200, resp.text


def test_annotations_too_large(make_app):
    app = make_app(max_annotations_size="1KiB")
    data, ctype = encode_multipart(dict(ANNOTATIONS, Big="x" * 2000), {})
    assert_malformed(post(app, data, **{"Content-Type": ctype}), "invalid_payload_structure")


@pytest.mark.parametrize(
    "headers",
    [
        b'Content-Disposition: form-data; name="\xff\xfe"\r\n',
        b'Content-Disposition: form-data; name="dump"; filename="\xff.dmp"\r\n'
        b"Content-Type: application/octet-stream\r\n",
        b'Content-Disposition: form-data; name="x"\r\nContent-Type: text/\xffplain\r\n',
    ],
    ids=["name", "filename", "content-type"],
)
def test_undecodable_part_headers(app, roots, headers):
    data = (
        f"--{BOUNDARY}\r\n".encode()
        + headers
        + b"\r\nvalue\r\n"
        + GOOD[GOOD.index(f"--{BOUNDARY}".encode()) :]
    )
    assert_malformed(post(app, data), "invalid_payload_structure")
    assert crash_files(roots[0]) == []
