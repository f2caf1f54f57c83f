# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The worker's logging: its access log writes the line gunicorn's ``Logger.access``
writes, for any format, computing only the atoms the format names."""

import datetime
import io
import logging

import pytest
from gunicorn.config import Config
from gunicorn.glogging import Logger

from tecken_shared.gunicorn_worker import AccessLog, EveryFewSeconds, _Request, _Response

EVERY_ATOM = " ".join(f"%({key})s" for key in "h l u t r s m U q H b B f a T D M L p".split()) + (
    ' "%({x-forwarded-for}i)s" %({X-Request-Id}i)s %({x_request_id}i)s %({missing}i)s'
    " %({content-type}o)s %({X-Empty}o)s %({none}o)s %({remote_port}e)s"
    " %({WSGI.URL_SCHEME}e)s %({nothing}e)s %(unknown)s %(z)s"
)


class FixedTimeLogger(Logger):
    def now(self) -> str:
        return "[02/Dec/2026:00:00:00 +0000]"


def lines(fmt: str, environ: dict, response: _Response, elapsed: float) -> tuple[str, str]:
    cfg = Config()
    cfg.set("accesslog", "-")
    cfg.set("access_log_format", fmt)
    log = FixedTimeLogger(cfg)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    log.access_log.handlers = [handler]
    log.access(response, _Request(environ), environ, datetime.timedelta(seconds=elapsed))
    AccessLog(log).write(response, environ, elapsed)
    gunicorns, ours = stream.getvalue().splitlines()
    return gunicorns, ours


ENVIRON = {
    "REQUEST_METHOD": "POST",
    "RAW_URI": '/symbolicate/v5?a="b"',
    "PATH_INFO": "/symbolicate/v5",
    "QUERY_STRING": 'a="b"',
    "SERVER_PROTOCOL": "HTTP/1.1",
    "REMOTE_ADDR": "127.0.0.1",
    "REMOTE_PORT": "5555",
    "wsgi.url_scheme": "http",
    "HTTP_USER_AGENT": 'curl/8 "quoted"',
    "HTTP_X_FORWARDED_FOR": "10.0.0.1",
    "HTTP_X_REQUEST_ID": "abc",
    "HTTP_AUTHORIZATION": "Basic dXNlcjpwYXNz",
    "CONTENT_TYPE": "application/json",
}


@pytest.mark.parametrize(
    "fmt", [Config().access_log_format, EVERY_ATOM, "no atoms at all", "%(s)s %(s)s"]
)
@pytest.mark.parametrize("elapsed", [0.0, 0.0012345, 3.5, 86_400 + 1.25])
def test_the_same_line_as_gunicorn(fmt, elapsed):
    response = _Response()
    response.status = "200 OK"
    response.headers = [("Content-Type", "application/json"), ("X-Empty", "")]
    response.sent = 1234
    gunicorns, ours = lines(fmt, ENVIRON, response, elapsed)
    assert ours == gunicorns


def test_the_same_line_for_a_bare_request():
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": "/", "SERVER_PROTOCOL": "HTTP/1.0"}
    gunicorns, ours = lines(EVERY_ATOM, environ, _Response(), 0.5)
    assert ours == gunicorns


def test_a_logger_class_of_its_own_keeps_its_access():
    class OwnLogger(Logger):
        def access(self, resp, req, environ, request_time):
            self.access_log.info("own %s", resp.status)

    cfg = Config()
    cfg.set("accesslog", "-")
    log = OwnLogger(cfg)
    stream = io.StringIO()
    log.access_log.handlers = [logging.StreamHandler(stream)]
    AccessLog(log).write(_Response(), ENVIRON, 0.1)
    assert stream.getvalue() == "own 500\n"


def test_waitress_queue_warnings_are_thinned():
    """One ``Task queue depth`` warning per interval; the next says how many
    were held back."""
    clock = [100.0]
    logger = logging.getLogger("test.queue")
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    logger.handlers = [Keep()]
    logger.propagate = False
    logger.addFilter(EveryFewSeconds(10, clock=lambda: clock[0]))
    for step in range(30):
        logger.warning("Task queue depth is %d", step)
        clock[0] += 1
    assert [r.getMessage() for r in records] == [
        "Task queue depth is 0",
        "Task queue depth is 10",
        "Task queue depth is 20",
    ]
    assert [getattr(r, "suppressed", None) for r in records] == [None, 9, 9]
