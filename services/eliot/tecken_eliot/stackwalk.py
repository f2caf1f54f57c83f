# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Minidump stackwalking behind ``POST /minidump``.

The stackwalker is an external binary (rust-minidump's ``minidump-stackwalk``,
what Socorro runs) behind :class:`Stackwalker`. It never talks to a symbol
server itself: before a walk, the symbol files of the dump's modules are
fetched by eliot's downloader (the configured ``ELIOT_SYMBOL_URLS``) into
:class:`SymFileCache`, an on-disk Breakpad tree shared by every worker and
bounded in size (least recently used out: the access time, which a use
sets; the modification time is the download's). A module being fetched is locked (a thread lock within a
worker, an ``flock`` across workers), so parallel requests for the same
modules share one download. The stackwalker then reads the tree with
``--symbols-path``, under a time limit and an address-space limit.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import markus
from everett.manager import ConfigManager

from tecken_eliot.downloader import SymbolDownloader
from tecken_eliot.minidump import DumpModule, read_modules
from tecken_eliot.settings import CacheConfig, StackwalkerConfig, read_options
from tecken_eliot.status import ModuleStatus
from tecken_shared.breakpad import symbol_key

logger = logging.getLogger(__name__)
metrics = markus.get_metrics("eliot")


class StackwalkerMissing(RuntimeError):
    """The stackwalker binary is missing or not the configured version."""


class WalkFailed(RuntimeError):
    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


@dataclass
class FetchReport:
    """What became of each module's symbol file for one walk."""

    statuses: dict[str, str] = field(default_factory=dict)
    #: why, for the modules whose symbols could not be had (error, too_large)
    details: dict[str, str] = field(default_factory=dict)
    downloaded: int = 0
    seconds: float = 0.0


class SymFileCache:
    """Breakpad tree ``<root>/<debug_file>/<DEBUG_ID>/<sym file>`` of downloaded
    symbol files, bounded to ``max_size`` bytes (least recently used first out),
    with ``.missing`` markers remembered for ``missing_ttl`` seconds since the
    module was last found missing: a marker ``recheck`` seconds old is
    rechecked with HEAD requests when the module is asked for (and touched,
    so the other workers wait for the next period); found, it is dropped and
    the sym file downloaded."""

    #: The stackwalker reads Breakpad sym files only.
    FORMATS = ("sym",)

    def __init__(
        self,
        root: Path,
        downloader: SymbolDownloader,
        *,
        max_size: int,
        missing_ttl: float,
        recheck: float = 0.0,
    ) -> None:
        self.root = root
        self.downloader = downloader
        self.max_size = max_size
        self.missing_ttl = missing_ttl
        self.recheck = recheck
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / ".locks").mkdir(exist_ok=True)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    @contextmanager
    def _module_lock(self, key: str) -> Iterator[None]:
        with self._locks_guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            name = key.replace("/", "_")[-200:]
            with open(self.root / ".locks" / name, "w") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)

    def _state(self, path: Path, module: DumpModule | None = None) -> str | None:
        """``cached``, ``missing`` (remembered), or None: it must be fetched.
        With ``module``, a marker due for a recheck is rechecked."""
        try:
            # The LRU order is the access time; the modification time stays
            # the download's (a module's ``cache_age``).
            os.utime(path, (time.time(), path.stat().st_mtime))
            return "cached"
        except FileNotFoundError:
            pass
        marker = path.with_name(path.name + ".missing")
        try:
            age = time.time() - marker.stat().st_mtime
        except FileNotFoundError:
            return None
        if age >= self.missing_ttl:
            return None
        if module is not None and 0 < self.recheck <= age:
            with contextlib.suppress(OSError):
                os.utime(marker)  # this period's recheck is ours
            found = self.downloader.exists(module.debug_file, module.debug_id, self.FORMATS)
            metrics.incr(
                "diskcache.recheck",
                tags=[f"result:{'found' if found.status is ModuleStatus.FOUND else 'missing'}"],
            )
            if found.status is ModuleStatus.FOUND:
                marker.unlink(missing_ok=True)
                return None
        return "missing"

    def state(self, module: DumpModule) -> str | None:
        """``cached``, ``missing`` (remembered), or None: it must be fetched."""
        return self._state(self.root / symbol_key(module.debug_file, module.debug_id))

    def ensure(self, module: DumpModule) -> str:
        """Make the module's symbol file present if a symbol server has it;
        its status: cached, found (downloaded now), missing, error, too_large."""
        return self.fetch(module)[0]

    def fetch(self, module: DumpModule) -> tuple[str, str]:
        """:meth:`ensure`'s status, and why for error and too_large."""
        key = symbol_key(module.debug_file, module.debug_id)
        path = self.root / key
        state = self._state(path, module)
        if state:
            return state, ""
        with self._module_lock(key):
            state = self._state(path)  # another request may have fetched it meanwhile
            if state:
                return state, ""
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".download-")
            os.close(fd)
            try:
                # The stackwalker reads Breakpad sym files only.
                result = self.downloader.download(
                    module.debug_file, module.debug_id, Path(tmp), formats=self.FORMATS
                )
                if result.status is ModuleStatus.FOUND:
                    os.replace(tmp, path)
                elif result.status is ModuleStatus.MISSING and self.missing_ttl > 0:
                    path.with_name(path.name + ".missing").touch()
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        if result.status is ModuleStatus.FOUND:
            self.evict()
        return str(result.status), "; ".join(result.errors)

    def evict(self) -> None:
        """Delete least recently used files until the tree fits ``max_size``."""
        files = []
        total = 0
        for path in self.root.rglob("*.sym"):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            files.append((stat.st_atime, stat.st_size, path))
            total += stat.st_size
        if total <= self.max_size:
            return
        for _, size, path in sorted(files):
            if total <= self.max_size:
                break
            path.unlink(missing_ok=True)
            total -= size
            metrics.incr("minidump.symbols_evicted")


class Stackwalker:
    def __init__(
        self,
        binary: str,
        symbols: SymFileCache,
        *,
        version: str = "",
        timeout: float = 60,
        memory_limit: int = 2 * 10**9,
        concurrency: int = 2,
        fetch_threads: int = 8,
        max_dump_size: int = 100 * 10**6,
    ) -> None:
        self.binary = binary
        self.symbols = symbols
        self.version = version
        self.timeout = timeout
        self.memory_limit = memory_limit
        self.fetch_threads = fetch_threads
        self.max_dump_size = max_dump_size
        self.slots = threading.BoundedSemaphore(max(1, concurrency))
        self.prlimit = shutil.which("prlimit")
        self.problem = self._check_binary()

    @classmethod
    def from_config(cls, manager: ConfigManager, downloader: SymbolDownloader) -> Stackwalker:
        options = read_options(manager, StackwalkerConfig)
        cache = read_options(manager, CacheConfig)
        root = options["stackwalk_symbols_dir"] or os.path.join(
            cache["symbols_cache_dir"], "breakpad"
        )
        symbols = SymFileCache(
            Path(root),
            downloader,
            max_size=options["stackwalk_symbols_max_size"],
            missing_ttl=cache["missing_symbols_ttl"],
            recheck=cache["missing_symbols_recheck"],
        )
        return cls(
            options["stackwalker_path"],
            symbols,
            version=options["stackwalker_version"],
            timeout=options["stackwalk_timeout"],
            memory_limit=options["stackwalk_memory_limit"],
            concurrency=options["stackwalk_concurrency"],
            fetch_threads=options["stackwalk_fetch_threads"],
            max_dump_size=options["max_minidump_size"],
        )

    def _check_binary(self) -> str | None:
        """None when the binary runs and is the expected version, else why not."""
        if not self.binary:
            return None
        path = shutil.which(self.binary)
        if path is None:
            return (
                f"stackwalker {self.binary!r} not found (ELIOT_STACKWALKER_PATH); install "
                "rust-minidump's minidump-stackwalk (`make setup` puts it in "
                ".tools/rust-minidump/bin)"
            )
        try:
            out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"stackwalker {path} does not run: {exc}"
        found = out.stdout.strip()
        if self.version and found != self.version:
            return (
                f"stackwalker {path} is {found!r}, not {self.version!r} (ELIOT_STACKWALKER_VERSION)"
            )
        self.binary = path
        return None

    @property
    def enabled(self) -> bool:
        return bool(self.binary)

    def check(self) -> str | None:
        """The ``/__heartbeat__`` check (passes when /minidump is off)."""
        return self.problem

    def fetch_symbols(self, modules: list[DumpModule]) -> FetchReport:
        report = FetchReport()
        started = time.perf_counter()
        todo = []
        for module in {(m.debug_file, m.debug_id): m for m in modules}.values():
            # Present or remembered as missing: no thread, no lock.
            state = self.symbols.state(module)
            if state:
                report.statuses[f"{module.debug_file}/{module.debug_id}"] = state
            else:
                todo.append(module)
        if todo:
            with ThreadPoolExecutor(max_workers=min(self.fetch_threads, len(todo))) as pool:
                for module, (status, detail) in zip(
                    todo, pool.map(self.symbols.fetch, todo), strict=True
                ):
                    key = f"{module.debug_file}/{module.debug_id}"
                    report.statuses[key] = status
                    if detail:
                        report.details[key] = detail
                    if status == "found":
                        report.downloaded += 1
        report.seconds = time.perf_counter() - started
        return report

    def _limited(self, command: list[str]) -> list[str]:
        """``command`` under the address-space limit: util-linux ``prlimit``
        sets it before the exec (a preexec_fn would make every start a slow
        fork of the worker); without prlimit, a shell's ``ulimit -v``."""
        if self.prlimit:
            return [self.prlimit, f"--as={self.memory_limit}", "--", *command]
        kib = max(1, self.memory_limit // 1024)
        return ["/bin/sh", "-c", f'ulimit -v {kib} && exec "$@"', "stackwalk", *command]

    def walk_file(self, dump: Path) -> dict[str, Any]:
        """Run the stackwalker on a dump whose symbols are in the tree; its JSON."""
        command = [self.binary, "--json", "--symbols-path", str(self.symbols.root), str(dump)]
        with self.slots:
            started = time.perf_counter()
            proc = subprocess.Popen(
                self._limited(command), stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            try:
                stdout, stderr_bytes = proc.communicate(timeout=self.timeout)
            except subprocess.TimeoutExpired as exc:
                proc.kill()
                proc.communicate()
                metrics.incr("minidump.walk_failed", tags=["reason:timeout"])
                raise WalkFailed(f"the stackwalk took over {self.timeout}s", True) from exc
            metrics.timing("minidump.walk", value=(time.perf_counter() - started) * 1000)
        if proc.returncode != 0:
            metrics.incr("minidump.walk_failed", tags=["reason:exit"])
            stderr = stderr_bytes.decode("utf-8", "replace").strip().splitlines()
            raise WalkFailed(
                f"the stackwalker exited with {proc.returncode}: {stderr[-1] if stderr else ''}"
            )
        return json.loads(stdout)

    def walk(self, data: bytes) -> tuple[dict[str, Any], FetchReport]:
        """Fetch the symbols of a minidump's modules, then walk it. Raises
        NotAMinidump, StackwalkerMissing or WalkFailed."""
        if self.problem or not self.enabled:
            raise StackwalkerMissing(self.problem or "POST /minidump is off")
        modules = read_modules(data)
        report = self.fetch_symbols(modules)
        with tempfile.NamedTemporaryFile(prefix="minidump-", suffix=".dmp") as handle:
            handle.write(data)
            handle.flush()
            return self.walk_file(Path(handle.name)), report
