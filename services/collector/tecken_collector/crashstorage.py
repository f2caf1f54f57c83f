# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Durable crash storage on local disk, with a fallback root.

Layout under each root (Antenna's filesystem layout)::

    <root>/<YYYYMMDD>/<dump_name>/<crash_id>          raw dump bytes
    <root>/<YYYYMMDD>/dump_names/<crash_id>.json      JSON list of dump names, sorted
    <root>/<YYYYMMDD>/raw_crash/<crash_id>.json       raw crash JSON, keys sorted

Each file is written to a dot-named temp file in its final directory. The
dumps, the dump names (and the outbox marker) are renamed into place; then
every file (including the raw crash's temp file) and every directory touched
is fsync'd, concurrently so the filesystem can commit them together. Only then
is the raw crash renamed into place and its directory fsync'd: a crash exists
once its raw crash does, and by then every part of it is on stable storage.
Crashes saved at the same time by the threads of one process share those two
fsync rounds (group commit, :class:`SyncGroup`): a directory is fsync'd once
per round for all of them, and each save returns only once its own files and
directories are durable.
When the scale-out path is on, the outbox marker ``<root>/outbox/<crash_id>``
tells the crashmover which crashes are still to move.

If anything fails on the primary root (ENOSPC, EIO, read-only, missing
mount), whatever was renamed into place there is removed again and the whole
crash is written to the fallback root instead. If that fails too,
:class:`CrashSaveError` is raised and nothing of the crash stays visible."""

from __future__ import annotations

import errno
import json
import logging
import os
import queue
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from tecken_collector.crashid import date_string_from_crash_id, is_valid_crash_id
from tecken_shared.storage.filesystem import fsync_dir, make_missing_dirs

logger = logging.getLogger("tecken_collector.crashstorage")

COPY_CHUNK = 1024 * 1024
OUTBOX_DIR = "outbox"
TMP_SUFFIX = ".tmp"


class CrashSaveError(Exception):
    """The crash could not be stored on any root."""


@dataclass(frozen=True)
class CrashPaths:
    root: Path
    crash_id: str

    @property
    def day(self) -> Path:
        return self.root / date_string_from_crash_id(self.crash_id)

    @property
    def raw_crash(self) -> Path:
        return self.day / "raw_crash" / f"{self.crash_id}.json"

    @property
    def dump_names(self) -> Path:
        return self.day / "dump_names" / f"{self.crash_id}.json"

    def dump(self, name: str) -> Path:
        return self.day / name / self.crash_id

    @property
    def outbox(self) -> Path:
        return self.root / OUTBOX_DIR / self.crash_id


def raw_crash_bytes(raw_crash: dict[str, Any]) -> bytes:
    return json.dumps(raw_crash, sort_keys=True).encode("utf-8")


def dump_names_bytes(names: list[str]) -> bytes:
    return json.dumps(sorted(names)).encode("utf-8")


def _makedirs(path: Path, root: Path) -> list[Path]:
    """Create ``path`` (below an existing ``root``); returns the parents whose
    entries changed and need an fsync."""
    if not root.is_dir():
        raise FileNotFoundError(errno.ENOENT, "crash storage root does not exist", str(root))
    return make_missing_dirs(path, stop=root)


def _write_temp(
    directory: Path, final_name: str, data: bytes | memoryview | BinaryIO
) -> tuple[Path, int]:
    """Write ``data`` to a new dot-named temp file in ``directory``; returns its
    path and its still-open descriptor (for a later fsync)."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{final_name}.", suffix=TMP_SUFFIX)
    try:
        if isinstance(data, bytes | bytearray | memoryview):
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        else:
            while chunk := data.read(COPY_CHUNK):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
    except BaseException:
        os.close(fd)
        _unlink(Path(tmp))
        raise
    return Path(tmp), fd


class SyncGroup:
    """Group commit: the fsyncs of concurrent saves in one process share rounds.

    A thread that needs files and directories on stable storage calls
    :meth:`sync`. If no round is running it leads one: it takes every request
    queued so far, fsyncs each file once and each directory once (a directory
    shared by several crashes, such as the day's ``raw_crash/``, once for all of
    them), concurrently so that a journaling filesystem commits them together,
    and answers each request with its own outcome. Requests that arrive while a
    round runs wait for the next one, led by the first of them, so every caller
    returns only once its own files and directories are durable: an fsync issued
    before its rename or write would prove nothing. A failed file fsync fails
    only its owner; a failed directory fsync fails everyone who listed that
    directory."""

    def __init__(self, max_threads: int = 8) -> None:
        self.max_threads = max_threads
        self._lock = threading.Lock()
        self._queue: list[_SyncRequest] = []
        self._leading = False
        self._threads: _FsyncThreads | None = None
        self._pid = os.getpid()
        #: Called with the number of requests of each round (a metric).
        self.on_round: Callable[[int], None] | None = None

    def sync(self, fds: list[int], dirs: Iterable[Path]) -> None:
        """Return once every descriptor in ``fds`` and every directory in
        ``dirs`` is fsync'd; raises the first OSError among them."""
        request = _SyncRequest(fds, set(dirs))
        if not request.fds and not request.dirs:
            return
        self._check_fork()
        with self._lock:
            self._queue.append(request)
            lead = not self._leading
            self._leading = True
        if not lead:
            request.done.wait()
        if not request.finished:
            # Woken to lead the next round (which includes this request).
            self._lead()
        if request.error is not None:
            raise request.error

    def _check_fork(self) -> None:
        if self._pid != os.getpid():  # a forked worker: the parent's threads are gone
            self._lock = threading.Lock()
            self._queue = []
            self._leading = False
            self._threads = None
            self._pid = os.getpid()

    def _lead(self) -> None:
        with self._lock:
            batch, self._queue = self._queue, []
        try:
            self._run(batch)
        except BaseException as exc:  # not an fsync's OSError: fail the whole round
            for request in batch:
                request.error = request.error or exc
        finally:
            for request in batch:
                request.finished = True
                request.done.set()
            with self._lock:
                if self._queue:
                    # The first waiter leads the next round; this thread answers now.
                    self._queue[0].done.set()
                else:
                    self._leading = False
        if self.on_round is not None:
            try:
                self.on_round(len(batch))
            except Exception:  # a metric must not fail a save that is durable
                logger.exception("fsync round callback failed")

    def _run(self, batch: list[_SyncRequest]) -> None:
        by_fd: dict[int, list[_SyncRequest]] = {}
        by_dir: dict[Path, list[_SyncRequest]] = {}
        for request in batch:
            for fd in request.fds:
                by_fd.setdefault(fd, []).append(request)
            for directory in request.dirs:
                by_dir.setdefault(directory, []).append(request)
        jobs: list[tuple[Callable[[Any], None], Any, list[_SyncRequest]]] = [
            (os.fsync, fd, owners) for fd, owners in by_fd.items()
        ]
        jobs += [(fsync_dir, directory, owners) for directory, owners in sorted(by_dir.items())]
        if self._threads is None:
            self._threads = _FsyncThreads(self.max_threads)
        outcomes = self._threads.run(jobs)
        for (_, _, owners), error in zip(jobs, outcomes, strict=True):
            if error is not None:
                for request in owners:
                    if request.error is None:
                        request.error = error


class _FsyncThreads:
    """Threads that run a round's fsyncs at the same time (so that a journaling
    filesystem commits them together, and the device gets them together): the
    jobs are dealt into at most ``size + 1`` lanes, the calling thread runs the
    first, one thread each of the others (one wake-up per lane, not per job)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.started = 0
        self.jobs: queue.SimpleQueue[tuple[list[Any], list[int], queue.SimpleQueue]] = (
            queue.SimpleQueue()
        )

    def run(self, jobs: list[tuple[Callable[[Any], None], Any, Any]]) -> list[Exception | None]:
        """Run ``(function, argument, _)`` jobs; returns each one's exception or None."""
        lanes = min(self.size + 1, len(jobs))
        outcomes: list[Exception | None] = [None] * len(jobs)
        results: queue.SimpleQueue[tuple[list[int], list[Exception | None]]] = queue.SimpleQueue()
        # Lane 0 is this thread's; each other lane is one wake-up of a thread.
        split = [list(range(lane, len(jobs), lanes)) for lane in range(lanes)]
        for indexes in split[1:]:
            self.jobs.put(([jobs[i] for i in indexes], indexes, results))
        while self.started < lanes - 1:
            threading.Thread(target=self._work, name="crash-fsync", daemon=True).start()
            self.started += 1
        for i in split[0] if split else []:
            outcomes[i] = _outcome(jobs[i][0], jobs[i][1])
        for _ in range(lanes - 1):
            indexes, errors = results.get()
            for i, error in zip(indexes, errors, strict=True):
                outcomes[i] = error
        return outcomes

    def _work(self) -> None:
        while True:
            lane, indexes, results = self.jobs.get()
            results.put((indexes, [_outcome(function, argument) for function, argument, _ in lane]))


@dataclass(eq=False)
class _SyncRequest:
    fds: list[int]
    dirs: set[Path]
    error: BaseException | None = None
    finished: bool = False
    done: threading.Event = field(default_factory=threading.Event)


def _outcome(function: Callable[[Any], None], argument: Any) -> Exception | None:
    try:
        function(argument)
    except Exception as exc:  # an OSError, or a bug: either way the owners' failure
        return exc
    return None


def _dump_source(dump: Any) -> bytes | memoryview | BinaryIO:
    """What to write for ``dump``: its bytes, or a stream of them."""
    if isinstance(dump, bytes | bytearray | memoryview):
        return dump
    view = getattr(dump, "view", None)
    return view if view is not None else dump.open()


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


class FSCrashStorage:
    """Durable writes of crashes to a primary root with a fallback root."""

    def __init__(
        self,
        primary: str | Path,
        fallback: str | Path | None = None,
        *,
        durable: bool = True,
        outbox: bool = False,
        create_roots: bool = False,
    ) -> None:
        self.roots = [Path(primary)] + ([Path(fallback)] if fallback else [])
        self.durable = durable
        self.outbox = outbox
        #: Concurrent saves share their fsync rounds (see :class:`SyncGroup`).
        self.sync_group = SyncGroup()
        if create_roots:
            for root in self.roots:
                try:
                    root.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    logger.warning("cannot create crash storage root %s: %s", root, exc)

    def save(self, crash_id: str, raw_crash: dict[str, Any], dumps: dict[str, Any]) -> Path:
        """Store a crash; returns the root it went to. ``dumps`` maps a dump
        name to bytes or an object with ``open()`` returning a binary stream
        (and an attribute ``view``: its bytes in memory, or None)."""
        if not is_valid_crash_id(crash_id, strict=False):
            raise ValueError(f"not a crash id: {crash_id!r}")
        errors = []
        for index, root in enumerate(self.roots):
            try:
                self._save_to(root, crash_id, raw_crash, dumps)
            except OSError as exc:
                reason = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
                msg = f"{root}: {reason} {exc.strerror or exc}"
                errors.append(msg)
                level = logging.WARNING if index + 1 < len(self.roots) else logging.ERROR
                logger.log(level, "%s: cannot save crash to %s", crash_id, msg)
                continue
            if index:
                logger.warning("%s: saved to fallback root %s", crash_id, root)
            return root
        raise CrashSaveError(
            f"{crash_id}: no crash storage root took the crash: {'; '.join(errors)}"
        )

    def _save_to(
        self, root: Path, crash_id: str, raw_crash: dict[str, Any], dumps: dict[str, Any]
    ) -> None:
        paths = CrashPaths(root, crash_id)
        temps: list[Path] = []
        fds: list[int] = []
        placed: list[Path] = []

        def stage(target: Path, data: bytes | memoryview | BinaryIO) -> Path:
            dirty.update(_makedirs(target.parent, root))
            tmp, fd = _write_temp(target.parent, target.name, data)
            temps.append(tmp)
            fds.append(fd)
            return tmp

        try:
            dirty: set[Path] = set()
            staged: list[tuple[Path, Path]] = []
            for name, dump in dumps.items():
                target = paths.dump(name)
                data = _dump_source(dump)
                staged.append((stage(target, data), target))
            target = paths.dump_names
            staged.append((stage(target, dump_names_bytes(list(dumps))), target))
            if self.outbox:
                target = paths.outbox
                staged.append((stage(target, b""), target))
            raw_target = paths.raw_crash
            raw_tmp = stage(raw_target, raw_crash_bytes(raw_crash))

            # Everything but the raw crash goes in place now: without its raw
            # crash a crash is not visible, so this needs no durability yet.
            for tmp, target in staged:
                os.replace(tmp, target)
                placed.append(target)
                dirty.add(target.parent)
            if self.durable:
                # One barrier: every file's data (the raw crash temp file's too)
                # and every directory entry made so far, in a round shared with
                # the other crashes being saved at the same time.
                self.sync_group.sync(fds, dirty)
            # The raw crash last: its presence means the crash is complete.
            os.replace(raw_tmp, raw_target)
            placed.append(raw_target)
            if self.durable:
                # Usually one fsync of the day's raw_crash/ for several crashes.
                self.sync_group.sync([], [raw_target.parent])
        except BaseException:
            for path in temps:
                _unlink(path)
            for path in reversed(placed):
                _unlink(path)
            raise
        finally:
            for fd in fds:
                os.close(fd)


@dataclass(frozen=True)
class StoredCrash:
    """A complete crash on disk, as the crashmover uploads it: the stored
    bytes of the raw crash and of the dump names, and the dump files."""

    raw_crash: bytes
    dump_names: bytes
    dumps: dict[str, Path]


def load_crash(root: Path, crash_id: str) -> StoredCrash:
    """The complete crash ``crash_id`` under ``root``. Raises FileNotFoundError
    if the raw crash or a dump is missing, ValueError if the dump names are not
    a JSON list of names."""
    paths = CrashPaths(root, crash_id)
    raw_crash = paths.raw_crash.read_bytes()
    dump_names = paths.dump_names.read_bytes()
    names = json.loads(dump_names)
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ValueError(f"{paths.dump_names} does not hold a JSON list of dump names")
    dumps = {}
    for name in names:
        path = paths.dump(name)
        if not path.is_file():
            raise FileNotFoundError(errno.ENOENT, "dump missing", str(path))
        dumps[name] = path
    return StoredCrash(raw_crash, dump_names, dumps)


def iter_outbox(root: Path) -> Iterator[str]:
    """Crash ids with an outbox marker under ``root``."""
    outbox = root / OUTBOX_DIR
    try:
        names = sorted(os.listdir(outbox))
    except FileNotFoundError:
        return
    for name in names:
        if not name.startswith(".") and is_valid_crash_id(name, strict=False):
            yield name


def delete_crash(root: Path, crash_id: str) -> None:
    """Remove every file of a crash (raw crash first, so it stops being visible)."""
    paths = CrashPaths(root, crash_id)
    try:
        names = json.loads(paths.dump_names.read_bytes())
    except (OSError, ValueError):
        names = []
    processed = paths.day / "processed_crash" / f"{crash_id}.json"
    for path in [paths.raw_crash, paths.dump_names, processed] + [paths.dump(n) for n in names]:
        _unlink(path)
