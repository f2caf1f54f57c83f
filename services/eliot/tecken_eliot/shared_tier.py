# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""An optional second cache tier shared by every eliot node: symcaches kept in
a bucket (any storage URL: ``s3://``, ``gs://``, ``file://``), so a new node
answers a module another node already built by downloading its symcache
instead of downloading and parsing the ``.sym`` (which for a 100 MB module is
seconds of CPU).

* Keys: ``<prefix>/symbolic-<version>/<encoded file>/<ID>.symc.zst``
  (zstd: it decompresses several times faster than gzip): a new
  symbolic (and so possibly a new symcache format) starts a new tier.
* Writes go through a bounded background queue that drops when full (a tier
  is an optimisation: a request never waits for an upload); the first write of
  a key wins, later nodes skip it.
* Reads are verified as the disk tier's are (symbolic opens the file and it
  must be for the requested debug id) before they are used.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path

import markus
import zstandard

from tecken_shared.storage import Storage, StorageError, storage_from_url

logger = logging.getLogger(__name__)
metrics = markus.get_metrics("eliot")

SYMBOLIC_VERSION = importlib.metadata.version("symbolic")


@dataclass
class _Upload:
    stem: str
    path: Path  # a hard link to the symcache, removed once uploaded
    filename: str
    debug_id: str


class SharedTier:
    """Symcaches in ``storage``; ``queue_size`` uploads may wait at once."""

    def __init__(self, storage: Storage, queue_size: int = 16) -> None:
        self.storage = storage
        self.name = storage.name
        self._queue: queue.Queue[_Upload | None] = queue.Queue(maxsize=max(1, queue_size))
        self._thread = threading.Thread(target=self._run, name="shared-tier", daemon=True)
        self._thread.start()

    @classmethod
    def from_url(cls, url: str, queue_size: int) -> SharedTier | None:
        """The tier at ``url``; None when ``url`` is empty (no tier)."""
        if not url:
            return None
        return cls(storage_from_url(url), queue_size)

    @staticmethod
    def key(stem: str) -> str:
        return f"symbolic-{SYMBOLIC_VERSION}/{stem}.symc.zst"

    # -- reading -------------------------------------------------------------

    def fetch(self, stem: str, dest: Path) -> tuple[str, str] | None:
        """Write the symcache of ``stem`` to ``dest``; (module filename, debug
        id) it was stored with, or None when the tier doesn't have it or
        can't be read (then the caller computes it)."""
        key = self.key(stem)
        with metrics.timer("shared_tier.fetch"):
            try:
                info = self.storage.metadata(key)
                if info is None:
                    metrics.incr("shared_tier.lookup", tags=["result:miss"])
                    return None
                with self.storage.open(key) as stream, open(dest, "wb") as out:
                    zstandard.ZstdDecompressor().copy_stream(stream, out)
            except (StorageError, OSError, zstandard.ZstdError) as exc:
                logger.warning("shared tier %s: cannot read %s: %s", self.name, key, exc)
                metrics.incr("shared_tier.lookup", tags=["result:error"])
                return None
        metrics.incr("shared_tier.lookup", tags=["result:hit"])
        meta = info.metadata
        return meta.get("filename", ""), meta.get("debug_id", "")

    # -- writing -------------------------------------------------------------

    def publish(self, stem: str, symcache: Path, filename: str, debug_id: str) -> None:
        """Queue the upload of a symcache just built (a hard link is taken, so
        the caller may move or delete its file); dropped when the queue is full."""
        link = symcache.with_name(symcache.name + ".tier")
        try:
            os.link(symcache, link)
        except OSError as exc:
            logger.warning("shared tier: cannot queue %s: %s", stem, exc)
            return
        try:
            self._queue.put_nowait(_Upload(stem, link, filename, debug_id))
        except queue.Full:
            metrics.incr("shared_tier.publish", tags=["result:dropped"])
            with contextlib.suppress(OSError):
                link.unlink()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                self._upload(item)
            finally:
                with contextlib.suppress(OSError):
                    item.path.unlink()
                self._queue.task_done()

    def _upload(self, item: _Upload) -> None:
        key = self.key(item.stem)
        result = "error"
        try:
            if self.storage.exists(key):
                result = "exists"  # the first write wins
                return
            packed = item.path.with_name(item.path.name + ".zst")
            try:
                with open(item.path, "rb") as src, open(packed, "wb") as out:
                    zstandard.ZstdCompressor(level=3).copy_stream(src, out)
                with open(packed, "rb") as data:
                    self.storage.put(
                        key,
                        data,
                        content_type="application/octet-stream",
                        metadata={"filename": item.filename, "debug_id": item.debug_id},
                    )
            finally:
                with contextlib.suppress(OSError):
                    packed.unlink()
            result = "stored"
        except (StorageError, OSError) as exc:
            logger.warning("shared tier %s: cannot store %s: %s", self.name, key, exc)
        finally:
            metrics.incr("shared_tier.publish", tags=[f"result:{result}"])

    def drain(self, timeout: float = 30) -> bool:
        """Wait until every queued upload is done (tests, shutdown)."""
        done = threading.Event()

        def wait() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=wait, daemon=True).start()
        return done.wait(timeout)
