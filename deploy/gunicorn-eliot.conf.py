# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""gunicorn settings for the eliot service: ELIOT_GUNICORN_* from the
environment or ./.env (documented with the other options). The buffering worker
reads each request whole before a thread runs it (a slow client costs a
connection, not a worker)."""

from tecken_shared.gunicorn_conf import gunicorn_settings

globals().update(
    gunicorn_settings(
        "eliot",
        bind="0.0.0.0:8050",
        worker_class="tecken_shared.gunicorn_worker.BufferingWorker",
        request_read_timeout=60,
    )
)
