# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Unhandled exceptions go through logging (RT-25), in the JSON format."""

import io
import json
import logging

import falcon
import webtest

from tecken_shared.logging import JsonFormatter, log_unhandled_exceptions
from tecken_shared.service import json_error_serializer


class Boom:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        raise RuntimeError("boom")


class NotFound:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        raise falcon.HTTPNotFound(title="no such thing")


def test_an_unhandled_exception_is_one_json_log_line_and_a_json_500():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("host"))
    logger = logging.getLogger("test.unhandled")
    logger.addHandler(handler)
    errors = io.StringIO()
    try:
        app = falcon.App()
        app.set_error_serializer(json_error_serializer)
        log_unhandled_exceptions(app, logger)
        app.add_route("/boom", Boom())
        app.add_route("/missing", NotFound())
        client = webtest.TestApp(app, extra_environ={"wsgi.errors": errors})
        resp = client.get("/boom", expect_errors=True)
        assert resp.status_int == 500
        assert resp.json["error"]
        # HTTP errors keep their own status and message.
        resp = client.get("/missing", expect_errors=True)
        assert resp.status_int == 404 and resp.json["error"] == "no such thing"
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["Severity"] == "ERROR"
    assert record["Message"] == "unhandled exception in GET /boom"
    assert "RuntimeError: boom" in record["Fields"]["traceback"]
    assert errors.getvalue() == ""  # nothing through Falcon's own text logger
