# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""gunicorn's settings, read like every other option: the process environment
first, then ``.env`` (see :mod:`tecken_shared.config`), under the service's
namespace (``SYMBOLS_GUNICORN_BIND``, ``ELIOT_GUNICORN_WORKERS``, ...).

``deploy/gunicorn-<service>.conf.py`` is one call::

    globals().update(gunicorn_settings("symbols", bind="0.0.0.0:3000", timeout=900))

The keyword arguments are the service's defaults where they differ from
:class:`GunicornConfig`'s."""

from __future__ import annotations

from typing import Any

from everett.manager import ConfigManager, Option

from tecken_shared.config import build_config_manager

#: The defaults every service shares (see each service's conf file for its own).
DEFAULTS: dict[str, Any] = {
    "bind": "0.0.0.0:8000",
    "workers": 2,
    "threads": 1,
    "timeout": 300,
    "graceful_timeout": 30,
    "max_requests": 0,
    "max_requests_jitter": 0,
    "worker_class": "sync",
    "accesslog": "-",
    "loglevel": "info",
    "control_socket": "",
}


#: The options of :class:`tecken_shared.gunicorn_worker.BufferingWorker`, read
#: with gunicorn's (gunicorn itself does not know them).
WORKER_DEFAULTS: dict[str, Any] = {
    "request_read_timeout": 60,
    "request_stall_timeout": 0,
    "timeout_body": "",
    "timeout_content_type": "application/json",
    "idle_timeout": 30,
    "connection_limit": 1000,
    "max_request_body_size": 64 * 1024 * 1024,
    "max_request_header_size": 64 * 1024,
    "inbuf_overflow": 512 * 1024,
}

#: The worker options read by the last :func:`gunicorn_settings` call (in the
#: gunicorn master, whose workers are forked from it).
WORKER_OPTIONS: dict[str, Any] = {}


class GunicornConfig:
    """gunicorn options, read with the service's namespace plus ``GUNICORN_``:
    ``SYMBOLS_GUNICORN_BIND``, ``ELIOT_GUNICORN_BIND``, ``COLLECTOR_GUNICORN_BIND``.
    The defaults shown are the shared ones; a service's conf file may set
    others (symbols: bind ``0.0.0.0:3000``, timeout 900; eliot: bind
    ``0.0.0.0:8050``; collector: bind ``0.0.0.0:8000``, threads 4)."""

    class Config:
        bind = Option(
            default=DEFAULTS["bind"],
            doc="Address and port to listen on (``host:port``, or ``unix:PATH``).",
        )
        workers = Option(default=str(DEFAULTS["workers"]), parser=int, doc="Worker processes.")
        threads = Option(
            default=str(DEFAULTS["threads"]),
            parser=int,
            doc="Threads per worker (above 1 with the ``sync`` class means ``gthread``).",
        )
        timeout = Option(
            default=str(DEFAULTS["timeout"]),
            parser=int,
            doc="Seconds a request may take before its worker is killed and restarted.",
        )
        graceful_timeout = Option(
            default=str(DEFAULTS["graceful_timeout"]),
            parser=int,
            doc="Seconds workers get to finish their requests on a restart or shutdown.",
        )
        max_requests = Option(
            default=str(DEFAULTS["max_requests"]),
            parser=int,
            doc="Restart a worker after this many requests (0: never).",
        )
        max_requests_jitter = Option(
            default=str(DEFAULTS["max_requests_jitter"]),
            parser=int,
            doc="Up to this many requests added at random to ``max_requests``.",
        )
        worker_class = Option(
            default=DEFAULTS["worker_class"],
            doc=(
                "gunicorn worker class. The default reads every request whole, "
                "within ``request_read_timeout``, before a thread runs it, so a "
                "slow client costs a connection, not a worker (see "
                ":mod:`tecken_shared.gunicorn_worker`); ``sync`` gives each "
                "connection a worker and is only safe behind a buffering proxy."
            ),
        )
        request_read_timeout = Option(
            default=str(WORKER_DEFAULTS["request_read_timeout"]),
            parser=int,
            doc=(
                "Seconds a client gets to send one whole request (headers and "
                "body) before it is answered 408 and disconnected (default worker)."
            ),
        )
        request_stall_timeout = Option(
            default=str(WORKER_DEFAULTS["request_stall_timeout"]),
            parser=float,
            doc=(
                "Seconds without a byte in the middle of a request before the same "
                "408; 0: only ``request_read_timeout`` applies (default worker)."
            ),
        )
        timeout_body = Option(
            default=WORKER_DEFAULTS["timeout_body"],
            doc="Body of that 408; empty: the shared JSON error shape (default worker).",
        )
        timeout_content_type = Option(
            default=WORKER_DEFAULTS["timeout_content_type"],
            doc="Content-Type of that 408 (default worker).",
        )
        idle_timeout = Option(
            default=str(WORKER_DEFAULTS["idle_timeout"]),
            parser=int,
            doc="Seconds an idle keep-alive connection is kept (default worker).",
        )
        connection_limit = Option(
            default=str(WORKER_DEFAULTS["connection_limit"]),
            parser=int,
            doc=(
                "Connections one worker holds at once; past it new connections "
                "wait in the listen backlog (default worker)."
            ),
        )
        max_request_body_size = Option(
            default=str(WORKER_DEFAULTS["max_request_body_size"]),
            parser=int,
            doc=(
                "Bytes of request body the worker reads; a request declaring "
                "more reaches the service without its body (the service refuses "
                "it), a chunked body growing past it is answered 413 (default worker)."
            ),
        )
        max_request_header_size = Option(
            default=str(WORKER_DEFAULTS["max_request_header_size"]),
            parser=int,
            doc="Bytes of request line and headers; more is answered 431 (default worker).",
        )
        inbuf_overflow = Option(
            default=str(WORKER_DEFAULTS["inbuf_overflow"]),
            parser=int,
            doc="Request bodies larger than this are spooled to a temporary file (default worker).",
        )
        accesslog = Option(
            default=DEFAULTS["accesslog"],
            doc="Access log: ``-`` for stdout, a file path, or empty for none.",
        )
        loglevel = Option(default=DEFAULTS["loglevel"], doc="gunicorn's own log level.")
        control_socket = Option(
            default=DEFAULTS["control_socket"],
            doc=(
                "Path of gunicorn's control socket; empty turns it off (several "
                "services on one host would otherwise share ``~/.gunicorn/gunicorn.ctl``)."
            ),
        )


def gunicorn_settings(
    service: str, manager: ConfigManager | None = None, **defaults: Any
) -> dict[str, Any]:
    """gunicorn's module-level settings for ``service`` (``symbols``, ...),
    from ``<SERVICE>_GUNICORN_*`` in the environment or ``.env``, else
    ``defaults``, else :data:`DEFAULTS`."""
    unknown = set(defaults) - set(DEFAULTS) - set(WORKER_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown gunicorn settings {sorted(unknown)}")
    manager = manager or build_config_manager()
    config = manager.with_namespace(service).with_namespace("gunicorn")
    values: dict[str, Any] = {}
    for name, shared_default in {**DEFAULTS, **WORKER_DEFAULTS, **defaults}.items():
        option = getattr(GunicornConfig.Config, name)
        raw = config(name, default=str(shared_default), parser=option.parser)
        values[name] = raw
    WORKER_OPTIONS.clear()
    WORKER_OPTIONS.update({name: values.pop(name) for name in WORKER_DEFAULTS})
    settings: dict[str, Any] = {k: v for k, v in values.items() if k != "control_socket"}
    settings["accesslog"] = values["accesslog"] or None
    if values["control_socket"]:
        settings["control_socket"] = values["control_socket"]
    else:
        settings["control_socket_disable"] = True
    return settings
