# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""gunicorn settings for the symbols service; every value can be overridden
from the environment (SYMBOLS_GUNICORN_* variables) without editing this file."""

import os

bind = os.environ.get("SYMBOLS_GUNICORN_BIND", "0.0.0.0:3000")
workers = int(os.environ.get("SYMBOLS_GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("SYMBOLS_GUNICORN_THREADS", "1"))
# Uploads of up to 2 GB are read, checked and stored within one request.
timeout = int(os.environ.get("SYMBOLS_GUNICORN_TIMEOUT", "900"))
graceful_timeout = int(os.environ.get("SYMBOLS_GUNICORN_GRACEFUL_TIMEOUT", "30"))
max_requests = int(os.environ.get("SYMBOLS_GUNICORN_MAX_REQUESTS", "0"))
max_requests_jitter = int(os.environ.get("SYMBOLS_GUNICORN_MAX_REQUESTS_JITTER", "0"))
worker_class = os.environ.get("SYMBOLS_GUNICORN_WORKER_CLASS", "sync")
# "-" logs to stdout; an empty value turns the access log off.
accesslog = os.environ.get("SYMBOLS_GUNICORN_ACCESSLOG", "-") or None
loglevel = os.environ.get("SYMBOLS_GUNICORN_LOGLEVEL", "info")


def worker_abort(worker) -> None:
    """A worker killed for running past ``timeout``: count it
    (``tecken.gunicorn_worker_abort``; markus is configured by the app)."""
    try:
        import markus

        markus.get_metrics("tecken").incr("gunicorn_worker_abort")
    except Exception as exc:  # never let the hook itself fail
        worker.log.warning("could not count the worker abort: %s", exc)


# gunicorn 24+ opens a control socket at ~/.gunicorn/gunicorn.ctl by default, which
# several services on one host would fight over: off unless a path is given.
if os.environ.get("SYMBOLS_GUNICORN_CONTROL_SOCKET"):
    control_socket = os.environ["SYMBOLS_GUNICORN_CONTROL_SOCKET"]
else:
    control_socket_disable = True
