# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""gunicorn settings for the eliot service; every value can be overridden
from the environment (ELIOT_GUNICORN_* variables) without editing this file."""

import os

bind = os.environ.get("ELIOT_GUNICORN_BIND", "0.0.0.0:8050")
workers = int(os.environ.get("ELIOT_GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("ELIOT_GUNICORN_THREADS", "1"))
timeout = int(os.environ.get("ELIOT_GUNICORN_TIMEOUT", "300"))
graceful_timeout = int(os.environ.get("ELIOT_GUNICORN_GRACEFUL_TIMEOUT", "30"))
max_requests = int(os.environ.get("ELIOT_GUNICORN_MAX_REQUESTS", "0"))
max_requests_jitter = int(os.environ.get("ELIOT_GUNICORN_MAX_REQUESTS_JITTER", "0"))
worker_class = os.environ.get("ELIOT_GUNICORN_WORKER_CLASS", "sync")
# "-" logs to stdout; an empty value turns the access log off.
accesslog = os.environ.get("ELIOT_GUNICORN_ACCESSLOG", "-") or None
loglevel = os.environ.get("ELIOT_GUNICORN_LOGLEVEL", "info")
# gunicorn 24+ opens a control socket at ~/.gunicorn/gunicorn.ctl by default, which
# several services on one host would fight over: off unless a path is given.
if os.environ.get("ELIOT_GUNICORN_CONTROL_SOCKET"):
    control_socket = os.environ["ELIOT_GUNICORN_CONTROL_SOCKET"]
else:
    control_socket_disable = True
