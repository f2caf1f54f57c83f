# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""gunicorn settings for the collector service: COLLECTOR_GUNICORN_* from the
environment or ./.env (documented with the other options). The buffering worker
reads each crash report whole before a thread runs it (a slow client costs a
connection, not a worker); bodies above COLLECTOR_MAX_REQUEST_SIZE (25 MiB) are
not read and get Antenna's 413 answer."""

from tecken_collector.settings import LimitsConfig, options
from tecken_shared.config import build_config_manager
from tecken_shared.gunicorn_conf import gunicorn_settings

# A body that stops arriving for COLLECTOR_READ_TIMEOUT seconds gets Antenna's
# answer; one declared above COLLECTOR_MAX_REQUEST_SIZE is not read.
_limits = options(build_config_manager(), LimitsConfig)

globals().update(
    gunicorn_settings(
        "collector",
        bind="0.0.0.0:8000",
        worker_class="tecken_shared.gunicorn_worker.BufferingWorker",
        # Threads per worker: while one crash waits for its fsyncs, others are
        # parsed, and crashes saved together share their fsync rounds.
        threads=4,
        request_read_timeout=120,
        request_stall_timeout=_limits("read_timeout"),
        timeout_body="Discarded=malformed_read_timeout",
        timeout_content_type="text/plain",
        # Twice the limit: a chunked body (Crashpad's) a little over the limit is
        # still read whole, so the app gives Antenna's 413, not the worker's.
        max_request_body_size=2 * _limits("max_request_size"),
    )
)
