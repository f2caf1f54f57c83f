# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The in-memory splitter and Falcon's streaming parser must treat every body
the same way: good ones and hundreds of randomly broken ones (seeded)."""

from __future__ import annotations

import random

import pytest
from collector_helpers import crash_id_of, read_raw_crash

from tecken_collector.multipart import encode_multipart

VOLATILE = {"uuid", "submitted_timestamp"}


def bodies() -> list[bytes]:
    annotations = {
        "ProductName": "Firefox",
        "ReleaseChannel": "nightly",
        "Text": "caf\u00e9 \x00 \u2603",
        "Comments": "a\r\nb",
    }
    plain, _ = encode_multipart(
        annotations,
        {"upload_file_minidump": bytes(range(256)) * 8, "memory": b"m"},
        boundary="BOUNDARY",
    )
    as_json, _ = encode_multipart(
        annotations,
        {"upload_file_minidump": b"MDMP\r\n--BOUNDAR"},
        as_json=True,
        boundary="BOUNDARY",
    )
    return [plain, as_json]


def mutate(rng: random.Random, body: bytes) -> bytes:
    kind = rng.randrange(7)
    i = rng.randrange(len(body))
    j = min(len(body), i + rng.randrange(1, 40))
    if kind == 0:
        return body[:i]
    if kind == 1:
        return body[:i] + body[j:]
    if kind == 2:
        return body[:i] + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8))) + body[i:]
    if kind == 3:
        k = body.find(b"\r\n", i)
        return body if k < 0 else body[:k] + b"\n" + body[k + 2 :]
    if kind == 4:
        return body[:j] + body[i:]
    if kind == 5:
        k = body.find(b"BOUNDARY", i)
        return body if k < 0 else body[:k] + b"BOUNDARX" + body[k + 8 :]
    return body[:i] + b"\r\n--BOUNDARY" + rng.choice([b"", b"--", b"\r\n", b"\r\n\r\n"]) + body[i:]


def outcome(app, root, body: bytes) -> tuple[int, str, dict | None]:
    resp = app.post(
        "/submit",
        body,
        headers={"Content-Type": "multipart/form-data; boundary=BOUNDARY"},
        expect_errors=True,
    )
    if resp.status_int == 200 and resp.text.startswith("CrashID="):
        raw = read_raw_crash(root, crash_id_of(resp.text))
        return 200, "CrashID", {k: v for k, v in raw.items() if k not in VOLATILE}
    return resp.status_int, resp.text, None


@pytest.mark.parametrize("seed", range(4))
def test_parsers_agree_on_random_bodies(make_app, roots, tmp_path, seed):
    memory = make_app(parse_in_memory_max="1MiB", throttler_rules="accept_all")
    streaming = make_app(parse_in_memory_max="0", throttler_rules="accept_all")
    rng = random.Random(seed)
    seen = set()
    for body in bodies():
        assert outcome(memory, roots[0], body) == outcome(streaming, roots[0], body)
        for _ in range(75):
            broken = mutate(rng, body)
            a = outcome(memory, roots[0], broken)
            b = outcome(streaming, roots[0], broken)
            assert a == b, (broken, a, b)
            seen.add(a[1])
    # The mutations reach both acceptance and several refusals.
    assert "CrashID" in seen and "Discarded=malformed_invalid_payload_structure" in seen
