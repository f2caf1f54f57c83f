# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Writing counts kept in memory off the request path: a daemon thread calls
a ``flush`` function every ``interval`` seconds. It starts on first use in
each process (a worker forked after start-up starts its own), and the last
counts are flushed at exit and by :meth:`Flusher.stop`."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from collections.abc import Callable

logger = logging.getLogger(__name__)


class Flusher:
    def __init__(self, name: str, interval: float, flush: Callable[[], object]) -> None:
        self.name = name
        self.interval = interval
        self.flush = flush
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        atexit.register(self.flush)
        # A forked worker has no thread: it starts its own on first use.
        ref = weakref.WeakMethod(self._forget_thread)
        os.register_at_fork(after_in_child=lambda: (m := ref()) and m())

    def _forget_thread(self) -> None:
        self._thread = None
        self._lock = threading.Lock()

    def ensure(self) -> None:
        """Start this process's thread unless it runs: one attribute test on
        the request path once it does."""
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is not None:
                return
            self._stop = threading.Event()
            thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            thread.start()
            self._thread = thread

    def _run(self) -> None:
        stop = self._stop
        while not stop.wait(self.interval):
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - the thread must outlive one bad flush
                logger.exception("%s: flush failed", self.name)

    def stop(self) -> None:
        """Stop the thread after a last flush (at shutdown)."""
        atexit.unregister(self.flush)
        self._stop.set()
        self.flush()
