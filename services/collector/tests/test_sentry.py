# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Sentry wired for real: an error while a crash is handled reaches a
Sentry-compatible ingest endpoint on 127.0.0.1, and no personal annotation
(Email, URL, Comments, telemetry ids) nor a token gets there, wherever the
crash was in the event; a scrubber that fails drops the event and is counted."""

from __future__ import annotations

import pytest
import sentry_sdk
from collector_helpers import ANNOTATIONS

from tecken_collector import scrubber
from tecken_collector.multipart import encode_multipart
from tecken_collector.scrubber import scrub_text, scrub_value
from tecken_collector.settings import METRICS_YAML
from tecken_shared.metrics import load_registry, undocumented

EMAIL = "jane.doe@example.com"
PAGE = "https://intranet.example.org/private/page?session=1"
COMMENT = "my bank account was open"
CLIENT_ID = "5cd0e8a3-7b1d-4bde-9d54-33b01e1e3c51"
TOKEN = "0123456789abcdef0123456789abcdef"
QUERY_SECRET = "q5ecret9token8value7that6is5long4enough"
SECRETS = [EMAIL, "intranet.example.org", COMMENT, CLIENT_ID, TOKEN, QUERY_SECRET]
PERSONAL = {
    "Email": EMAIL,
    "URL": PAGE,
    "Comments": COMMENT,
    "TelemetryClientId": CLIENT_ID,
}


def post_exploding_crash(make_app, port: int):
    app = make_app(
        secret_sentry_dsn=f"http://publickey@127.0.0.1:{port}/42",
        throttler_rules="throttler_rules_for_tests:EXPLODE",
    )
    data, ctype = encode_multipart(
        dict(ANNOTATIONS, **PERSONAL), {"upload_file_minidump": b"MDMP" * 100}
    )
    return app.post(
        f"/submit?Email={EMAIL}&token={QUERY_SECRET}",
        data,
        headers={"Content-Type": ctype, "Authorization": f"Bearer {TOKEN}"},
        expect_errors=True,
    )


def test_annotations_never_reach_sentry(make_app, sentry_ingest):
    port, bodies = sentry_ingest
    assert post_exploding_crash(make_app, port).status_int == 500
    sentry_sdk.flush(timeout=5)
    payload = b"".join(bodies)
    assert b"kaboom from the test rule" in payload
    # The event carries the crash (frame variables, extra, contexts,
    # breadcrumbs), with the harmless annotations and the personal ones' names...
    for present in (b'"extra"', b'"breadcrumbs"', b'"vars"', b"ProductName", b"Firefox"):
        assert present in payload, present
    assert b"TelemetryClientId" in payload
    # ...but none of their values, nor the tokens.
    for secret in SECRETS:
        assert secret.encode() not in payload, secret
    assert b"%40example.com" not in payload


def test_failing_scrubber_drops_the_event_and_is_counted(
    make_app, sentry_ingest, metricsmock, monkeypatch
):
    def broken(value: object, name: str | None = None) -> object:
        raise ValueError("scrubber bug")

    monkeypatch.setattr(scrubber, "scrub_value", broken)
    port, bodies = sentry_ingest
    assert post_exploding_crash(make_app, port).status_int == 500
    sentry_sdk.flush(timeout=5)
    assert not any(b"kaboom" in body for body in bodies)
    metricsmock.assert_incr("collector.sentry_scrub_error")
    assert undocumented(metricsmock.get_records(), load_registry(METRICS_YAML)) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{'Email': 'a@b.org', 'Version': '1'}", "{'Email': [Scrubbed], 'Version': '1'}"),
        ('{"URL": "http://x/\\"y", "A": 1}', '{"URL": [Scrubbed], "A": 1}'),
        ("Email=a%40b.org&ProductName=Firefox", "Email=[Scrubbed]&ProductName=Firefox"),
        ("Authorization: Bearer abc", "Authorization: [Scrubbed] [Scrubbed]"),
        ("write to joe.doe@mail.example.co.uk now", "write to [Scrubbed] now"),
        (f"key {TOKEN}!", "key [Scrubbed]!"),
        ("'Comments': 'cut off by the seriali", "'Comments': [Scrubbed]"),
        # Crash ids, paths and plain words stay.
        ("bp-de1bb258-cbbf-4589-a673-34f800160918", "bp-de1bb258-cbbf-4589-a673-34f800160918"),
        ("/srv/collector/crashes/20260101/raw_crash", "/srv/collector/crashes/20260101/raw_crash"),
        ("the URL annotation", "the URL annotation"),
    ],
)
def test_scrub_text(text, expected):
    assert scrub_text(text) == expected


def test_scrub_value_keeps_code_and_ids():
    event = {
        "event_id": "0123456789abcdef0123456789abcdef",
        "contexts": {"trace": {"trace_id": "0123456789abcdef0123456789abcdef"}},
        "exception": {
            "values": [
                {
                    "type": "RuntimeError",
                    "stacktrace": {
                        "frames": [
                            {
                                "function": "_accept",
                                "context_line": "x = 1",
                                "vars": {"raw_crash": {"Email": EMAIL, "Version": "1"}},
                            }
                        ]
                    },
                }
            ]
        },
        "extra": {"auth_token": "abc", "email_address": ""},
    }
    scrubbed = scrub_value(event)
    assert scrubbed["event_id"] == event["event_id"]
    assert scrubbed["contexts"]["trace"] == event["contexts"]["trace"]
    frame = scrubbed["exception"]["values"][0]["stacktrace"]["frames"][0]
    assert frame["function"] == "_accept"
    assert frame["vars"] == {"raw_crash": {"Email": "[Scrubbed]", "Version": "1"}}
    assert scrubbed["extra"] == {"auth_token": "[Scrubbed]", "email_address": ""}
