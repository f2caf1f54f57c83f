# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Unhandled exceptions go through logging (RT-25), in the JSON format."""

import io
import json
import logging
import socket

import falcon
import pytest
import webtest

from tecken_shared.logging import (
    UNHANDLED_LOGGER,
    JsonFormatter,
    LoggerStream,
    log_unhandled_exceptions,
)
from tecken_shared.service import json_error_serializer
from tecken_shared.testing.services import SERVICES, running_service


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


def test_logger_stream_logs_each_write(caplog):
    with caplog.at_level(logging.ERROR, logger=UNHANDLED_LOGGER):
        LoggerStream().write("2026 [FALCON] [ERROR] GET /x => Traceback ...\n")
    assert [r.getMessage() for r in caplog.records] == [
        "2026 [FALCON] [ERROR] GET /x => Traceback ..."
    ]


@pytest.mark.slow
@pytest.mark.parametrize("service", SERVICES)
def test_under_gunicorn_a_500_is_logged_as_json(service, tmp_path):
    extra = {f"{service.upper()}_LOG_FORMAT": "json", f"{service.upper()}_LOGGING_LEVEL": "INFO"}
    with running_service(service, tmp_path, workers=1, extra_env=extra) as svc:
        with socket.create_connection((svc.host, svc.port), timeout=30) as sock:
            sock.sendall(b"GET /__broken__ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
    assert answer.startswith(b"HTTP/1.1 500 ")
    log = (tmp_path / f"{service}-gunicorn.log").read_text()
    traced = [line for line in log.splitlines() if "intentional exception" in line]
    assert traced
    for line in traced:
        record = json.loads(line)  # every line about it is JSON
        assert record["Severity"] == "ERROR"
