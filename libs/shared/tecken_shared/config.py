# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Configuration through everett: process environment first, then an optional
``.env`` file. Every service declares its options on component classes; the
common ones (logging, metrics, sentry, host id) live in :class:`CommonConfig`."""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Iterable
from typing import Any

from everett.manager import (
    ConfigEnvFileEnv,
    ConfigManager,
    ConfigOSEnv,
    Option,
    get_config_for_class,
    parse_bool,
)

DOC = "See the configuration chapter of the docs (docs/configuration.rst)."


def env_files() -> list[str]:
    """The ``.env`` files read after the process environment.

    ``TECKEN_ENV_FILE`` names one explicitly; otherwise ``.env`` in the current
    directory is read if it exists."""
    explicit = os.environ.get("TECKEN_ENV_FILE")
    return [explicit] if explicit else [".env"]


def build_config_manager(
    environ: dict[str, str] | None = None, env_file: str | Iterable[str] | None = None
) -> ConfigManager:
    """A ConfigManager over ``environ`` (default: the process environment) and the
    ``.env`` file(s). Tests pass a plain dict as ``environ``."""
    from everett.manager import ConfigDictEnv

    files = [env_file] if isinstance(env_file, str) else list(env_file or env_files())
    first = ConfigDictEnv(environ) if environ is not None else ConfigOSEnv()
    return ConfigManager(environments=[first, ConfigEnvFileEnv(files)], doc=DOC)


class CommonConfig:
    """Options every service has. Read with the service's namespace, e.g.
    ``ELIOT_LOGGING_LEVEL``; the unprefixed name (``LOGGING_LEVEL``) is accepted
    as an alternate key so container-wide settings work too."""

    class Config:
        local_dev_env = Option(
            default="false",
            parser=parse_bool,
            alternate_keys=["root:LOCAL_DEV_ENV"],
            doc="Local development mode: human-readable logs and metrics logged instead of sent.",
        )
        logging_level = Option(
            default="INFO",
            alternate_keys=["root:LOGGING_LEVEL"],
            doc="Log level of the service's loggers (DEBUG, INFO, WARNING, ERROR).",
        )
        log_format = Option(
            default="",
            doc="'json' for one JSON object per line, 'text' for readable lines; "
            "empty means text in local dev and json otherwise.",
        )
        hostname = Option(
            default="",
            alternate_keys=["root:HOSTNAME"],
            doc="Host id used in logs, Sentry events and the host: metrics tag; "
            "empty means the machine's hostname.",
        )
        metrics_backend = Option(
            default="",
            doc="Where metrics go: 'statsd', 'datadog', 'logging', 'prometheus' "
            "(served at /metrics) or 'none', or several joined with commas "
            "('datadog,prometheus'); empty means logging in local dev and datadog otherwise.",
        )
        statsd_host = Option(
            default="localhost",
            alternate_keys=["root:STATSD_HOST"],
            doc="statsd/dogstatsd host.",
        )
        statsd_port = Option(
            default="8125",
            parser=int,
            alternate_keys=["root:STATSD_PORT"],
            doc="statsd/dogstatsd UDP port.",
        )
        secret_sentry_dsn = Option(
            default="",
            alternate_keys=["root:SECRET_SENTRY_DSN"],
            doc="Sentry DSN; empty turns Sentry off.",
        )


def host_id(configured: str) -> str:
    return configured or socket.gethostname()


def component_options(cls: type) -> dict[str, tuple[Option, Any]]:
    """``{option name: (Option, class)}`` for a component class."""
    return get_config_for_class(cls)


_SECRET_WORDS = ("SECRET", "TOKEN", "PASSWORD")
_URL_PASSWORD = re.compile(r"(//[^/:@\s]*:)[^@/\s]+@")


def masked(key: str, value: str) -> str:
    """``value`` as it may be logged: secrets hidden, and passwords in URLs
    (``postgresql://user:pw@host``) replaced by ``*****``."""
    if value and any(word in key.upper() for word in _SECRET_WORDS):
        return "*****"
    return _URL_PASSWORD.sub(r"\1*****@", value or "")


def log_options(
    logger: logging.Logger, manager: ConfigManager, namespace: str, components: Iterable[type]
) -> None:
    """Log every option of ``components`` at start-up, one ``KEY=value`` line
    each, as configured (raw values), secrets masked."""
    for cls in components:
        config = manager.with_namespace(namespace).with_options(cls)
        for name in sorted(component_options(cls)):
            key = f"{namespace}_{name}".upper()
            logger.info("config %s=%s", key, masked(key, str(config(name, raw_value=True))))
