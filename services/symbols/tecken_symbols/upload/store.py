# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Writing symbol objects: dedupe against what is stored, gzip what is
configured so, write with the spec's headers and metadata (the stored-object
convention, in :meth:`FileStorer._put` only). :class:`FileStorer` is used
through :class:`tecken_symbols.upload.writer.SymbolWriter`, which adds the
records and the cache invalidation.

Archive members are read straight out of the zip (one ZipFile handle per worker
thread) in one pass that hashes them, checks ``.sym`` content (when
configured) and gzips them into a spooled buffer that spills to disk past
``spool_size``; a bounded thread pool works on several members at once, and
a large member is gzipped by several threads (zlib-ng's threaded writer:
blocks compressed in parallel into one gzip member), so both cores work on
one big file too. Memory stays bounded by ``workers x spool_size`` whatever
the archive size.

With the content check on, nothing is written before every member passed it
(:func:`stage_archive`): the members are prepared (read, hashed, checked,
gzipped into spools rolled to disk), then written. Each member is read and
inflated once, not once to check it and once more to store it."""

from __future__ import annotations

import hashlib
import logging
import tempfile
import threading
import time
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import IO, Any

import markus
from zlib_ng import gzip_ng_threaded, zlib_ng

from tecken_shared.breakpad import HEADER_LIMIT, SymHeader, parse_header
from tecken_shared.storage import ObjectInfo, Storage, StorageError
from tecken_symbols.identities import Identity, identify_stream
from tecken_symbols.upload.archive import UNREADABLE, Archive, Member
from tecken_symbols.upload.config import UploadSettings
from tecken_symbols.upload.errors import UploadError
from tecken_symbols.upload.symfile import SymChecker, md5_and_check
from tecken_symbols.upload.validate import refusal

logger = logging.getLogger(__name__)
metrics = markus.get_metrics("tecken")

CHUNK = 1024 * 1024
#: Members at least this large are gzipped by ``workers`` threads at once.
THREADED_GZIP_MIN = 4 * CHUNK
#: Writes of staged members in flight per storing thread.
WRITERS_PER_WORKER = 4


@dataclass(frozen=True)
class Target:
    """A place keys are written to or looked up in: a storage backend plus the
    key prefix (``v1/`` regular, ``try/v1/`` try, per spec 1.4)."""

    storage: Storage
    prefix: str = ""
    name: str = ""

    def full_key(self, key: str) -> str:
        return self.prefix + key

    @property
    def bucket_name(self) -> str:
        return self.name or self.storage.name


@dataclass
class FileResult:
    key: str
    skipped: bool = False
    is_update: bool = False
    compressed: bool = False
    stored_size: int = 0
    original_size: int = 0
    md5: str | None = None
    header: SymHeader = field(default_factory=SymHeader)
    error: str | None = None
    bad_input: bool = False  # the error is the archive's: retrying can't help
    completed_at: float = 0.0
    #: The keys other protocols find it under (None: not parsed, e.g. skipped).
    identities: list[Identity] | None = None
    #: Why the content check refused the file (nothing is stored then).
    refused: str | None = None


def extension(key: str) -> str:
    name = key.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


class _Hashing:
    """Reads a stream computing md5, size and keeping the first bytes."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.digest = hashlib.md5()
        self.size = 0
        self.head = b""

    def read(self, n: int = CHUNK) -> bytes:
        data = self.stream.read(n)
        if data:
            self.digest.update(data)
            self.size += len(data)
            if len(self.head) < HEADER_LIMIT:
                self.head += data[: HEADER_LIMIT - len(self.head)]
        return data


class _SerialGzip:
    """gzip in the calling thread (small members)."""

    def __init__(self, out: IO[bytes], level: int) -> None:
        self.out = out
        self.comp = zlib_ng.compressobj(level, zlib_ng.DEFLATED, 31)

    def write(self, data: bytes) -> None:
        self.out.write(self.comp.compress(data))

    def close(self) -> None:
        self.out.write(self.comp.flush())


def gzip_writer(out: IO[bytes], level: int, size: int, threads: int) -> IO[bytes] | _SerialGzip:
    """A writer of one gzip member into ``out`` (left open by ``close``): on
    ``threads`` threads when the input (``size`` bytes) is large."""
    if threads > 1 and size >= THREADED_GZIP_MIN:
        return gzip_ng_threaded.open(out, "wb", compresslevel=level, threads=threads)
    return _SerialGzip(out, level)


@dataclass
class Prepared:
    """A member read, hashed, checked and spooled, not yet written."""

    result: FileResult
    spool: IO[bytes] | None = None  # None: nothing to write (skipped, refused)

    def close(self) -> None:
        if self.spool is not None:
            self.spool.close()
            self.spool = None


class MemberReadError(Exception):
    """An archive member could not be read (damaged, unsupported): the
    uploader's archive is at fault, a retry of the same archive can't help."""


class _MemberStream:
    """A member's stream whose read failures are :class:`MemberReadError`."""

    def __init__(self, name: str, stream: IO[bytes]) -> None:
        self.name = name
        self.stream = stream

    def read(self, n: int = -1) -> bytes:
        try:
            return self.stream.read(n)
        except UNREADABLE as exc:
            raise MemberReadError(f"'{self.name}' cannot be read from the archive ({exc})") from exc

    def close(self) -> None:
        self.stream.close()

    def __enter__(self) -> _MemberStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MemberSource:
    """Opens members of one zip; one ZipFile handle per thread."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()
        self._handles: list[zipfile.ZipFile] = []
        self._lock = threading.Lock()

    def open(self, member: Member) -> IO[bytes]:
        zf = getattr(self._local, "zf", None)
        if zf is None:
            zf = zipfile.ZipFile(self.path)
            self._local.zf = zf
            with self._lock:
                self._handles.append(zf)
        assert member.info is not None
        try:
            stream = zf.open(member.info)
        except UNREADABLE as exc:
            raise MemberReadError(
                f"'{member.name}' cannot be read from the archive ({exc})"
            ) from exc
        return _MemberStream(member.name, stream)  # type: ignore[return-value]

    def close(self) -> None:
        with self._lock:
            for zf in self._handles:
                zf.close()
            self._handles.clear()


class BodyCheck:
    """Checks the bytes of one declared file as they come, gzipped when
    ``compressed``, against the declared size and md5 of its uncompressed
    bytes, and the .sym checks when configured: :meth:`feed` each chunk, then
    :meth:`finish`. Both raise UploadError (400, 413 past the size limit)."""

    def __init__(
        self,
        settings: UploadSettings,
        key: str,
        *,
        compressed: bool,
        declared_size: int,
        md5: str,
    ) -> None:
        self.settings = settings
        self.key = key
        self.declared_size = declared_size
        self.declared_md5 = md5
        self.is_sym = key.lower().endswith(".sym")
        self.checker = None
        if settings.validate_content and self.is_sym:
            parts = key.split("/")
            self.checker = SymChecker(parts[0], parts[1])
        self.digest = hashlib.md5()
        self.size = 0
        #: Bytes fed (as stored).
        self.stored = 0
        self.head = b""
        self.decomp = zlib.decompressobj(31) if compressed else None

    def feed(self, chunk: bytes) -> None:
        key = self.key
        self.stored += len(chunk)
        if self.stored > self.settings.max_size:
            raise UploadError("File too large", 413)
        decomp = self.decomp
        pending = chunk
        while pending:
            if decomp is None:
                data, pending = pending, b""
            else:
                # Inflate at most CHUNK bytes at a time (RT-05): a gzip bomb is
                # stopped at the declared size, memory stays bounded by a chunk.
                try:
                    data = decomp.decompress(pending, CHUNK)
                except zlib.error as exc:
                    raise UploadError(f"{key}: the body is not valid gzip ({exc})") from exc
                pending = decomp.unconsumed_tail
                if decomp.eof:
                    pending = b""
            self.digest.update(data)
            self.size += len(data)
            if self.size > self.declared_size:
                raise UploadError(f"{key}: more bytes than the declared size {self.declared_size}")
            if len(self.head) < HEADER_LIMIT:
                self.head += data[: HEADER_LIMIT - len(self.head)]
            if self.checker is not None:
                self.checker.feed(data)
            if not data and pending:
                break  # no progress (cannot happen with max_length > 0)

    def finish(self) -> SymHeader:
        """The .sym header (empty for other files) of a body that matches."""
        key = self.key
        if self.decomp is not None and not self.decomp.eof:
            raise UploadError(f"{key}: the gzip body is truncated")
        md5 = self.digest.hexdigest()
        if self.size != self.declared_size or md5 != self.declared_md5:
            raise UploadError(
                f"{key}: the content does not match the declared size and md5 "
                f"({self.size} bytes, md5 {md5}; declared {self.declared_size}, "
                f"{self.declared_md5})"
            )
        if self.checker is not None and (problem := self.checker.finish()):
            raise UploadError(f"Invalid symbol file '{key}': {problem}")
        return parse_header(self.head) if self.is_sym else SymHeader()


class FileStorer:
    """Stores files under keys in ``target``, skipping what ``lookups`` already
    hold; ``on_written(key)`` runs after each object write or delete."""

    def __init__(
        self,
        settings: UploadSettings,
        target: Target,
        lookups: list[Target],
        on_written: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.target = target
        self.lookups = lookups
        self.on_written = on_written

    def existing(self, key: str) -> tuple[list[ObjectInfo], ObjectInfo | None]:
        """(every existing object among the lookups, the object in the target)."""
        found = []
        in_target = None
        with metrics.timer("upload_file_exists"):
            for lookup in self.lookups:
                info = lookup.storage.metadata(lookup.full_key(key))
                if info is not None:
                    found.append(info)
                    if lookup == self.target:
                        in_target = info
        return found, in_target

    def store_file(
        self,
        key: str,
        size: int,
        opener: Callable[[], IO[bytes]],
        md5: str | None = None,
    ) -> FileResult:
        """Store one file of known ``size`` (an archive member) unless an
        identical object is stored already (``result.skipped``)."""
        start = time.monotonic()
        with metrics.timer("upload_file_upload"):
            result = self._store(key, size, opener, md5)
        result.completed_at = time.time()
        logger.debug(
            "stored %s in %.3fs (skipped=%s)", key, time.monotonic() - start, result.skipped
        )
        return result

    def _store(
        self, key: str, size: int, opener: Callable[[], IO[bytes]], md5: str | None
    ) -> FileResult:
        prepared = self.prepare(key, size, opener, md5)
        try:
            self.commit(prepared)
        finally:
            prepared.close()
        return prepared.result

    def commit(self, prepared: Prepared) -> FileResult:
        """Write a prepared file (nothing when it was skipped)."""
        if prepared.spool is not None:
            self._put(prepared.result, prepared.spool)
            metrics.incr("upload_file_upload_upload")
        return prepared.result

    def prepare(
        self,
        key: str,
        size: int,
        opener: Callable[[], IO[bytes]],
        md5: str | None = None,
        *,
        checker: SymChecker | None = None,
        hold: bool = False,
    ) -> Prepared:
        """Read a file once: hash it, feed ``checker``, gzip it (when its
        extension is configured so) into a spool, unless an identical object
        is stored already (``result.skipped``, no spool) or ``checker``
        refuses it (``result.refused``, no spool). ``hold``: the spool is
        kept on disk, not in memory (many wait to be written)."""
        settings = self.settings
        ext = extension(key)
        compressed = ext in settings.compress_extensions
        result = FileResult(key=key, compressed=compressed, original_size=size, md5=md5)
        found, in_target = self.existing(key)
        result.is_update = in_target is not None

        for info in found:
            stored_size = info.metadata.get("original_size")
            stored_md5 = info.metadata.get("original_md5_hash")
            if stored_size is not None and stored_size == str(size) and stored_md5:
                if result.md5 is None or checker is not None:
                    early = (
                        SymChecker(checker.expected_file, checker.expected_id) if checker else None
                    )
                    with opener() as stream:
                        result.md5, _ = md5_and_check(stream, size, early)
                    if early is not None and (problem := early.finish()):
                        result.refused = problem
                        return Prepared(result)
                if result.md5 == stored_md5:
                    metrics.incr(
                        "upload_skip_early_compressed"
                        if compressed
                        else "upload_skip_early_uncompressed"
                    )
                    result.skipped = True
                    return Prepared(result)
            elif not compressed and stored_size is None and info.size == size and checker is None:
                # An object stored without our metadata (another uploader): Tecken
                # compares the size only.
                metrics.incr("upload_skip_early_uncompressed")
                result.skipped = True
                return Prepared(result)

        spool = tempfile.SpooledTemporaryFile(max_size=settings.spool_size, dir=settings.temp_root)
        try:
            with opener() as stream:
                hashing = _Hashing(stream)
                out = (
                    gzip_writer(spool, settings.gzip_level, size, settings.workers)
                    if compressed
                    else spool
                )
                timer = metrics.timer("upload_gzip_payload") if compressed else nullcontext()
                with timer:
                    try:
                        while data := hashing.read(CHUNK):
                            if checker is not None:
                                checker.feed(data)
                                if checker.problem is not None:
                                    break
                            out.write(data)
                    finally:
                        if out is not spool:
                            out.close()
            if checker is not None and (problem := checker.finish()):
                result.refused = problem
                spool.close()
                return Prepared(result)
            result.md5 = hashing.digest.hexdigest()
            result.original_size = hashing.size
            if ext == "sym":
                result.header = parse_header(hashing.head)
            result.stored_size = spool.tell()
            if compressed and any(
                "original_size" not in info.metadata and info.size == result.stored_size
                for info in found
            ):
                metrics.incr("upload_skip_early_compressed_legacy")
                result.skipped = True
                spool.close()
                return Prepared(result)
            # Parsed only for a file that will be written (a skipped one is
            # indexed by the backfill).
            result.identities = self._identities(result, spool)
            if hold:
                spool.rollover()  # type: ignore[attr-defined]
        except BaseException:
            spool.close()
            raise
        return Prepared(result, spool)

    def store_stream(
        self,
        key: str,
        stream: IO[bytes],
        *,
        compressed: bool,
        declared_size: int,
        declared_md5: str,
    ) -> FileResult:
        """Store a body as sent (gzipped already when ``compressed``) after
        checking it against the declared size and md5 of its uncompressed
        bytes (and the .sym checks when configured). Raises UploadError: 400
        for a body that does not match, 413 past the size limit, 503 when the
        storage fails."""
        settings = self.settings
        check = BodyCheck(
            settings, key, compressed=compressed, declared_size=declared_size, md5=declared_md5
        )
        spool = tempfile.SpooledTemporaryFile(max_size=settings.spool_size, dir=settings.temp_root)
        try:
            while chunk := stream.read(CHUNK):
                check.feed(chunk)
                spool.write(chunk)
            header = check.finish()
            _, in_target = self.existing(key)
            result = FileResult(
                key=key,
                compressed=compressed,
                original_size=declared_size,
                md5=declared_md5,
                stored_size=check.stored,
                is_update=in_target is not None,
                header=header,
            )
            result.identities = self._identities(result, spool)
            try:
                self._put(result, spool)
            except StorageError as exc:
                metrics.incr("upload_file_upload_error")
                raise UploadError(f"Storage failed ({exc}); retry the PUT", 503) from exc
        finally:
            spool.close()
        result.completed_at = time.time()
        return result

    def _identities(self, result: FileResult, spool: IO[bytes]) -> list[Identity]:
        """The identity index rows of a spooled file (parsed once, here)."""
        with metrics.timer("identities.parse"):
            return identify_stream(
                result.key,
                spool,
                size=result.original_size,
                gzipped=result.compressed,
                max_size=self.settings.identity_max_size,
            )

    def compresses(self, key: str) -> bool:
        """Whether ``key`` is stored gzipped."""
        return extension(key) in self.settings.compress_extensions

    def object_headers(
        self, key: str, original_size: int, md5: str, compressed: bool
    ) -> dict[str, Any]:
        """The stored-object convention: gzipped objects get
        ``Content-Encoding: gzip`` and ``Cache-Control: no-transform``, every
        object the metadata ``original_size`` and ``original_md5_hash`` of its
        uncompressed bytes (the keyword arguments of ``Storage.put``)."""
        return {
            "content_type": self.settings.mime_overrides.get(extension(key)),
            "content_encoding": "gzip" if compressed else None,
            "cache_control": "no-transform" if compressed else None,
            "metadata": {"original_size": str(original_size), "original_md5_hash": md5},
        }

    def _put(self, result: FileResult, spool: IO[bytes]) -> None:
        """Write the spooled bytes of ``result`` with :meth:`object_headers`."""
        spool.seek(0)
        headers = self.object_headers(
            result.key, result.original_size, result.md5 or "", result.compressed
        )
        with metrics.timer("upload_put_object"):
            self.target.storage.put(
                self.target.full_key(result.key),
                spool,  # type: ignore[arg-type]
                **headers,
            )
        self._written(result.key)

    def delete(self, key: str) -> bool:
        """Delete the object ``key`` from the target; False when there was none."""
        deleted = self.target.storage.delete(self.target.full_key(key))
        self._written(key)
        return deleted

    def _written(self, key: str) -> None:
        if self.on_written is not None:
            try:
                self.on_written(key)
            except Exception:
                logger.exception("cache invalidation failed for %s", key)


def store_archive(
    archive: Archive,
    storer: FileStorer,
    md5s: dict[str, str] | None = None,
) -> Iterator[FileResult]:
    """Store every non-ignored member in parallel; yields each result as it
    lands (in the caller's thread, so records can be saved as files land).

    A storage failure stops new work: members not started are reported with
    the error too, so nothing is silently dropped."""
    md5s = md5s or {}
    source = MemberSource(archive.path)
    try:
        yield from _run(
            archive.to_store,
            lambda m: storer.store_file(m.key, m.size, lambda: source.open(m), md5s.get(m.key)),
            storer.settings.workers,
        )
    finally:
        source.close()


class StagedArchive:
    """An archive whose members all passed the content check and wait,
    spooled, to be written: iterate to write them (results as they land,
    as :func:`store_archive`); close to discard what was not written."""

    def __init__(self, storer: FileStorer, staged: list[tuple[Member, Prepared]]) -> None:
        self.storer = storer
        self.staged = staged

    def __iter__(self) -> Iterator[FileResult]:
        prepared = {id(m): p for m, p in self.staged}

        def commit(member: Member) -> FileResult:
            try:
                with metrics.timer("upload_file_upload"):
                    result = self.storer.commit(prepared[id(member)])
            finally:
                prepared[id(member)].close()
            result.completed_at = time.time()
            return result

        # Members that failed while being prepared keep their error.
        for _, p in self.staged:
            if p.result.error:
                yield p.result
        todo = [m for m, p in self.staged if not p.result.error]
        # Writes wait on storage (fsync, network), not the CPU: more at once.
        yield from _run(todo, commit, WRITERS_PER_WORKER * self.storer.settings.workers)

    def close(self) -> None:
        for _, p in self.staged:
            p.close()

    def __enter__(self) -> StagedArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def stage_archive(
    archive: Archive, storer: FileStorer, check: Callable[[Member], SymChecker | None]
) -> StagedArchive:
    """Read every member once (hash, ``check`` it, gzip into a spool on
    disk), in parallel, before anything is written. Raises UploadError (400)
    naming every member the check refused or that cannot be read."""
    source = MemberSource(archive.path)
    members = archive.to_store
    prepared: dict[int, Prepared] = {}

    def prepare(member: Member) -> FileResult:
        checker = check(member)
        try:
            p = storer.prepare(
                member.key, member.size, lambda: source.open(member), checker=checker, hold=True
            )
        except MemberReadError as exc:
            if checker is None:
                raise
            p = Prepared(
                FileResult(key=member.key, refused=f"cannot be read from the archive ({exc})")
            )
        prepared[id(member)] = p
        return p.result

    try:
        with metrics.timer("upload_validate_content"):
            results = {r.key: r for r in _run(members, prepare, storer.settings.workers)}
    except BaseException:
        for p in prepared.values():
            p.close()
        raise
    finally:
        source.close()
    staged = [(m, prepared.get(id(m)) or Prepared(results[m.key])) for m in members]
    refused = [{"file": m.name, "reason": p.result.refused} for m, p in staged if p.result.refused]
    if refused:
        metrics.incr("upload_validation_error", len(refused))
        for _, p in staged:
            p.close()
        raise refusal(refused)
    return StagedArchive(storer, staged)


def _run(
    members: Iterable[Member], job: Callable[[Member], FileResult], max_workers: int
) -> Iterator[FileResult]:
    """``job`` on every member in a bounded thread pool; yields each result as
    it lands. A failure stops new work: members not started are reported with
    the error too, so nothing is silently dropped."""
    members = list(members)
    workers = max(1, min(max_workers, len(members)))
    pending: set[Future] = set()
    failed: str | None = None
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="upload") as pool:
        queue = iter(members)
        by_future: dict[Future, Member] = {}

        def submit_next() -> bool:
            member = next(queue, None)
            if member is None:
                return False
            fut = pool.submit(job, member)
            by_future[fut] = member
            pending.add(fut)
            return True

        # Keep at most 2 x workers members in flight: bounded memory and
        # spool files.
        for _ in range(workers * 2):
            if not submit_next():
                break
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                pending.discard(fut)
                member = by_future.pop(fut)
                try:
                    result = fut.result()
                except MemberReadError as exc:
                    failed = failed or str(exc)
                    metrics.incr("upload_file_upload_error")
                    result = FileResult(key=member.key, error=str(exc), bad_input=True)
                except (StorageError, OSError, zipfile.BadZipFile, zlib.error) as exc:
                    failed = failed or str(exc)
                    metrics.incr("upload_file_upload_error")
                    logger.warning("storing %s failed: %s", member.key, exc)
                    result = FileResult(key=member.key, error=str(exc))
                except Exception as exc:  # a bug: record it like a fault, keep the trace
                    failed = failed or f"internal error: {exc!r}"
                    metrics.incr("upload_file_upload_error")
                    logger.exception("storing %s failed", member.key)
                    result = FileResult(key=member.key, error=f"internal error: {exc!r}")
                yield result
                if failed is None:
                    submit_next()
        if failed is not None:
            for member in queue:
                yield FileResult(key=member.key, error=f"not attempted: {failed}")
