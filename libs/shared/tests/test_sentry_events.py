# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Sentry wired for real: an error in a Falcon app reaches a Sentry-compatible
ingest endpoint on 127.0.0.1, without secrets, addresses or the request body."""

import falcon
import sentry_sdk
import webtest

from tecken_shared.sentry import setup_sentry


class Explode:
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.bounded_stream.read()
        raise RuntimeError("kaboom from the test")


def test_error_event_is_sent_scrubbed(sentry_ingest):
    port, received = sentry_ingest
    assert setup_sentry(f"http://publickey@127.0.0.1:{port}/42", "1.2.3", "host-a", "svc")
    app = falcon.App()
    app.add_route("/boom", Explode())
    client = webtest.TestApp(app)
    response = client.post(
        "/boom",
        params=b"ProductName=Firefox&Email=someone@example.com",
        headers={
            "Auth-Token": "0123456789abcdef0123456789abcdef",
            "X-Forwarded-For": "203.0.113.9",
            "Cookie": "session=abc",
        },
        extra_environ={"REMOTE_ADDR": "198.51.100.7"},
        expect_errors=True,
    )
    assert response.status_int == 500
    sentry_sdk.flush(timeout=5)
    payload = b"".join(received)
    assert b"kaboom from the test" in payload
    assert b'"release":"1.2.3"' in payload.replace(b" ", b"")
    for secret in (
        b"0123456789abcdef0123456789abcdef",
        b"203.0.113.9",
        b"198.51.100.7",
        b"session=abc",
        b"someone@example.com",
    ):
        assert secret not in payload, secret


def test_a_failing_scrubber_drops_the_event_and_says_so(sentry_ingest):
    port, received = sentry_ingest
    failures: list[int] = []

    def broken(event, hint):
        raise ValueError("scrubber bug")

    assert setup_sentry(
        f"http://publickey@127.0.0.1:{port}/42",
        "1.2.3",
        "host-a",
        "svc",
        scrubber=broken,
        on_scrub_error=lambda: failures.append(1),
    )
    app = falcon.App()
    app.add_route("/boom", Explode())
    response = webtest.TestApp(app).post(
        "/boom", params=b"Email=someone@example.com", expect_errors=True
    )
    assert response.status_int == 500
    sentry_sdk.flush(timeout=5)
    assert failures == [1]
    assert b"kaboom from the test" not in b"".join(received)
