# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""An optional second cache tier shared by every eliot node: symcaches kept in
a bucket (any storage URL: ``s3://``, ``gs://``, ``file://``), so a new node
answers a module another node already built by downloading its symcache
instead of downloading and parsing the ``.sym`` (which for a 100 MB module is
seconds of CPU).

* Keys: ``<prefix>/symbolic-<version>/<encoded file>/<ID>.symc.zst``
  (zstd: it decompresses several times faster than gzip; frames carry their
  content checksum): a new symbolic (and so possibly a new symcache format)
  starts a new tier.
* A read streams: storage -> zstd -> the node's cache file, never read back:
  the CRC-32 the disk cache records comes with the object (its metadata;
  zstd's own checksum of the frame vouches that the bytes are the ones it was
  computed over), or for an object without one is computed on the way.
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
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import markus
import zstandard

from tecken_shared.storage import Storage, StorageError, storage_from_url

logger = logging.getLogger(__name__)
metrics = markus.get_metrics("eliot")

SYMBOLIC_VERSION = importlib.metadata.version("symbolic")
#: zstd level of uploads: 1 packs symcaches about as small as 3 does, in
#: less than half the time (services/eliot/bench/bench_shared_tier.py
#: ``--levels``); decompression speed does not depend on it.
ZSTD_LEVEL = 1
#: Bytes read from storage, and written to the cache file, at a time.
CHUNK = 1 << 20


@dataclass
class Fetched:
    """A symcache written by :meth:`SharedTier.fetch`."""

    filename: str
    debug_id: str
    size: int
    crc32: int


def decompress_into(stream: BinaryIO, out: BinaryIO, crc32: int | None = None) -> tuple[int, int]:
    """Decompress the zstd ``stream`` into ``out``; (size, CRC-32) of what
    was written, the CRC-32 computed unless given. Raises ZstdError for a
    corrupt frame (a content checksum that does not match too)."""
    reader = zstandard.ZstdDecompressor().stream_reader(stream, read_size=CHUNK, closefd=False)
    size = crc = 0
    while chunk := reader.read(4 * CHUNK):
        out.write(chunk)
        if crc32 is None:
            crc = zlib.crc32(chunk, crc)
        size += len(chunk)
    return size, crc if crc32 is None else crc32


def compress_into(src: BinaryIO, out: BinaryIO) -> tuple[int, int]:
    """Compress ``src`` into ``out`` (one zstd frame with its size and
    content checksum); (size, CRC-32) of what was read."""
    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True)
    total = os.fstat(src.fileno()).st_size
    size = crc = 0
    with compressor.stream_writer(out, size=total, closefd=False) as writer:
        while chunk := src.read(4 * CHUNK):
            writer.write(chunk)
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
    return size, crc


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


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

    def fetch(self, stem: str, dest: Path) -> Fetched | None:
        """Write the symcache of ``stem`` to ``dest`` (an empty file); what
        was written and the module filename and debug id it was stored with,
        or None when the tier doesn't have it or can't be read (then the
        caller computes it)."""
        key = self.key(stem)
        with metrics.timer("shared_tier.fetch"):
            try:
                info = self.storage.metadata(key)
                if info is None:
                    metrics.incr("shared_tier.lookup", tags=["result:miss"])
                    return None
                meta = info.metadata
                # Written with zstd's content checksum whenever with a CRC-32.
                checksum = _int(meta.get("crc32"))
                # Not "wb": truncating makes ext4 flush the file on close.
                with self.storage.open(key) as stream, open(dest, "r+b") as out:
                    size, crc = decompress_into(stream, out, checksum)
                    out.truncate()
                if _int(meta.get("size")) not in (None, size):
                    raise ValueError(f"{size} bytes, not the {meta['size']} stored")
            except (StorageError, OSError, ValueError, zstandard.ZstdError) as exc:
                logger.warning("shared tier %s: cannot read %s: %s", self.name, key, exc)
                metrics.incr("shared_tier.lookup", tags=["result:error"])
                return None
        metrics.incr("shared_tier.lookup", tags=["result:hit"])
        return Fetched(meta.get("filename", ""), meta.get("debug_id", ""), size, crc)

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
                    size, crc = compress_into(src, out)
                with open(packed, "rb") as data:
                    self.storage.put(
                        key,
                        data,
                        content_type="application/octet-stream",
                        metadata={
                            "filename": item.filename,
                            "debug_id": item.debug_id,
                            "size": str(size),
                            "crc32": str(crc),
                        },
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
