# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""One call sets up logging: JSON lines in production, readable lines in local dev."""

from __future__ import annotations

import json
import logging
import logging.config
import socket
import time
from typing import Any

_RESERVED = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}

#: ``json.dumps(data, default=str)`` without building an encoder per line.
_ENCODER = json.JSONEncoder(default=str)


class JsonFormatter(logging.Formatter):
    """One JSON object per line with timestamp, level, logger, message, host
    and any ``extra=`` fields passed to the logging call."""

    def __init__(self, host_id: str = "") -> None:
        super().__init__()
        self.host_id = host_id or socket.gethostname()

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "Timestamp": int(record.created * 1_000_000_000),
            "Time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "Type": record.name,
            "Severity": record.levelname,
            "Hostname": self.host_id,
            "Pid": record.process,
            "Message": record.getMessage(),
        }
        fields = {k: v for k, v in vars(record).items() if k not in _RESERVED}
        if record.exc_info:
            fields["traceback"] = self.formatException(record.exc_info)
        if fields:
            data["Fields"] = fields
        return _ENCODER.encode(data)


def setup_logging(
    service: str, level: str = "INFO", json_format: bool = True, host_id: str = ""
) -> None:
    """Configure the root logger for ``service`` (its loggers at ``level``;
    noisy libraries at WARNING)."""
    handler: dict[str, Any] = {"class": "logging.StreamHandler", "formatter": "main"}
    formatter: dict[str, Any]
    if json_format:
        formatter = {"()": JsonFormatter, "host_id": host_id}
    else:
        formatter = {"format": "%(asctime)s %(levelname)-5s [%(name)s] %(message)s"}
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"main": formatter},
            "handlers": {"console": handler},
            "root": {"handlers": ["console"], "level": "WARNING"},
            "loggers": {
                service: {"level": level.upper()},
                "tecken_shared": {"level": level.upper()},
                "gunicorn.error": {"level": "INFO"},
                "markus": {"level": "INFO"},
                "botocore": {"level": "WARNING"},
                "urllib3": {"level": "WARNING"},
            },
        }
    )


def log_unhandled_exceptions(app: Any, logger: logging.Logger) -> None:
    """Make ``app`` (a ``falcon.App``) log an unhandled exception through
    ``logger`` (so it is a JSON line like every other, traceback included)
    and answer a JSON 500, instead of Falcon's own text logger writing the
    traceback to ``wsgi.errors``. HTTP errors keep their own handlers."""
    import falcon

    def handle(req: falcon.Request, resp: falcon.Response, ex: Exception, params: dict) -> None:
        if isinstance(ex, falcon.HTTPError):
            raise ex
        logger.error(
            "unhandled exception in %s %s",
            req.method,
            req.path,
            exc_info=(type(ex), ex, ex.__traceback__),
        )
        raise falcon.HTTPInternalServerError(
            title="500 Internal Server Error",
            description="The server failed to answer; the error is logged. Try again later.",
        )

    app.add_error_handler(Exception, handle)


#: The logger of unhandled exceptions (every service's, and what a framework
#: writes to ``wsgi.errors`` under the shared gunicorn worker).
UNHANDLED_LOGGER = "tecken_shared.unhandled"


class LoggerStream:
    """A write-only text stream whose every write is one log record at ERROR:
    given as ``wsgi.errors``, what Falcon (or any framework) writes there goes
    through logging, so in the service's log format (JSON in production)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger(UNHANDLED_LOGGER)

    def write(self, text: str) -> int:
        message = text.rstrip("\n")
        if message:
            self.logger.error("%s", message)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        pass
