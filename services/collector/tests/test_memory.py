# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Bounded memory per request: big dumps are spooled to disk and gzip bodies
are decompressed as a stream, never held whole (measured with tracemalloc)."""

from __future__ import annotations

import gzip
import io
import os
import tempfile
import tracemalloc

import falcon.testing
import pytest
from collector_helpers import ANNOTATIONS

from tecken_collector.multipart import encode_multipart
from tecken_collector.payload import PayloadLimits, check_headers, parse_crash

BIG = os.urandom(1024 * 1024) * 10  # 10 MiB


def parse(body: bytes, ctype: str, limits: PayloadLimits, gzipped: bool = False):
    headers = {"Content-Type": ctype, "Content-Length": str(len(body))}
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    req = falcon.testing.create_req(
        method="POST", path="/submit", headers=headers, body=b"", wsgierrors=io.StringIO()
    )
    req.env["wsgi.input"] = io.BytesIO(body)
    req.stream = req.env["wsgi.input"]
    boundary, length = check_headers(req, limits)
    return parse_crash(req, limits, boundary=boundary, content_length=length)


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
def test_big_dump_parsed_in_bounded_memory(tmp_path, gzipped):
    body, ctype = encode_multipart(ANNOTATIONS, {"upload_file_minidump": BIG})
    if gzipped:
        body = gzip.compress(body, 1)
    limits = PayloadLimits(spool_dir=str(tmp_path))
    tracemalloc.start()
    try:
        crash = parse(body, ctype, limits, gzipped)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    try:
        dump = crash.dumps["upload_file_minidump"]
        assert dump.size == len(BIG)
        assert dump.read() == BIG
        assert peak < 4 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB for a 10 MiB dump"
    finally:
        crash.close()


def test_small_dumps_stay_in_memory_within_budget(tmp_path):
    dumps = {f"dump{i}": os.urandom(600 * 1024) for i in range(20)}
    body, ctype = encode_multipart(ANNOTATIONS, dumps)
    limits = PayloadLimits(
        spool_dir=str(tmp_path), spool_memory_size=1024 * 1024, spool_memory_total=3 * 1024 * 1024
    )
    crash = parse(body, ctype, limits)
    try:
        in_memory = [
            d
            for d in crash.dumps.values()
            if isinstance(d.file, tempfile.SpooledTemporaryFile) and not d.file._rolled
        ]
        assert len(in_memory) * 600 * 1024 <= 3 * 1024 * 1024 + 600 * 1024
        assert len(in_memory) >= 1
        for name, data in dumps.items():
            assert crash.dumps[name].read() == data
    finally:
        crash.close()
