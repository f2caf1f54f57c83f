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


class GunicornConfig:
    """gunicorn options, read with the service's namespace plus ``GUNICORN_``:
    ``SYMBOLS_GUNICORN_BIND``, ``ELIOT_GUNICORN_BIND``, ``COLLECTOR_GUNICORN_BIND``.
    The defaults shown are the shared ones; a service's conf file may set
    others (symbols: bind ``0.0.0.0:3000``, timeout 900; eliot: bind
    ``0.0.0.0:8050``; collector: bind ``0.0.0.0:8000``)."""

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
            doc="gunicorn worker class (``sync``, ``gthread``).",
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
    unknown = set(defaults) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"unknown gunicorn settings {sorted(unknown)}")
    manager = manager or build_config_manager()
    config = manager.with_namespace(service).with_namespace("gunicorn")
    values: dict[str, Any] = {}
    for name, shared_default in {**DEFAULTS, **defaults}.items():
        option = getattr(GunicornConfig.Config, name)
        raw = config(name, default=str(shared_default), parser=option.parser)
        values[name] = raw
    settings: dict[str, Any] = {k: v for k, v in values.items() if k != "control_socket"}
    settings["accesslog"] = values["accesslog"] or None
    if values["control_socket"]:
        settings["control_socket"] = values["control_socket"]
    else:
        settings["control_socket_disable"] = True
    return settings
