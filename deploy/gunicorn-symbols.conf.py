# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""gunicorn settings for the symbols service: SYMBOLS_GUNICORN_* from the
environment or ./.env (documented with the other options). Uploads of up to
2 GB are read, checked and stored within one request: hence the long timeout
and request-read deadline. The buffering worker reads each request whole before
a thread runs it (a slow client costs a connection, not a worker)."""

from tecken_shared.gunicorn_conf import gunicorn_settings

globals().update(
    gunicorn_settings(
        "symbols",
        bind="0.0.0.0:3000",
        timeout=900,
        worker_class="tecken_shared.gunicorn_worker.BufferingWorker",
        request_read_timeout=900,
        max_request_body_size=2 * 1024**3,
    )
)


def worker_abort(worker) -> None:
    """A worker killed for running past ``timeout``: count it
    (``tecken.gunicorn_worker_abort``; markus is configured by the app)."""
    try:
        import markus

        markus.get_metrics("tecken").incr("gunicorn_worker_abort")
    except Exception as exc:  # never let the hook itself fail
        worker.log.warning("could not count the worker abort: %s", exc)
