# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Download of symbol files from the configured symbol servers, through
:mod:`tecken_shared.httpfetch`: streamed to a file with a size limit, retried
on 429/5xx and connection errors, one keep-alive session per source. Each
module's symbols are looked for in the configured forms (sym file, debug
file...: :func:`tecken_eliot.naming.format_filename`), each form on every
server before the next, then through the configured symbol-server protocols
(symsrv, debuginfod, SSQP: :func:`tecken_eliot.naming.protocol_paths`);
:meth:`SymbolDownloader.exists` asks the same questions with HEAD requests (a
remembered miss being rechecked)."""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit, urlunsplit

import markus
from everett.manager import ConfigManager

from tecken_eliot.naming import format_filename, protocol_paths, symbol_url
from tecken_eliot.settings import SYMBOL_PROTOCOLS, DownloaderConfig, default_of, read_options
from tecken_eliot.status import ModuleStatus
from tecken_shared.httpfetch import (
    REDIRECT_STATUSES,
    RETRY_STATUSES,
    FetchError,
    make_session,
    open_url,
    stream_to,
)

logger = logging.getLogger(__name__)
metrics = markus.get_metrics("eliot")

USER_AGENT = "tecken-eliot/1.0 (eliot-requests/1.0)"

_URL_RE = re.compile(r"https?://[^\s\"'<>]+")


def public_url(url: str) -> str:
    """``url`` as it may be shown in answers and logs: without user name,
    password, query string (presigned URLs carry signatures there) and
    fragment."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparseable URL>"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    query = "..." if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def redact(text: str) -> str:
    """``text`` with every URL in it reduced to :func:`public_url`."""
    return _URL_RE.sub(lambda m: public_url(m.group(0)), text)


class LineTooLong(Exception):
    """A downloaded sym file has a line longer than the limit."""


class LineLimitedWriter:
    """A file wrapper that refuses (:class:`LineTooLong`) data with a line
    longer than ``max_line`` bytes, checked chunk by chunk as it is written,
    so a file of one huge line (or none) is never read whole later."""

    def __init__(self, fp: BinaryIO, max_line: int) -> None:
        self.fp = fp
        self.max_line = max_line
        self.current = 0  # length of the line still open at the end of the data so far

    def write(self, chunk: bytes) -> int:
        parts = chunk.split(b"\n")
        longest = self.current + len(parts[0])
        if len(parts) > 1:
            longest = max(longest, max(map(len, parts[1:])))
            self.current = len(parts[-1])
        else:
            self.current = longest
        if longest > self.max_line:
            raise LineTooLong(
                f"the sym file has a line longer than {self.max_line} bytes "
                "(ELIOT_MAX_SYM_LINE_LENGTH)"
            )
        return self.fp.write(chunk)


@dataclass
class DownloadResult:
    """``status`` is FOUND (the destination file holds ``size`` bytes of the
    symbols in the form ``format``), MISSING (every source said 404 for every
    form), ERROR (some source failed otherwise, or the deadline passed;
    ``errors`` says how) or TOO_LARGE (the file, or one of its lines, is over
    a limit)."""

    status: ModuleStatus
    size: int = 0
    errors: list[str] = field(default_factory=list)
    format: str = ""


#: One try of one URL: (outcome, detail, size).
Attempt = tuple[ModuleStatus, str, int]


class SymbolDownloader:
    def __init__(
        self,
        source_urls: list[str],
        *,
        timeout: float,
        retries: int,
        backoff: float,
        max_size: int,
        deadline: float = default_of(DownloaderConfig, "download_deadline"),
        max_line: int = default_of(DownloaderConfig, "max_sym_line_length"),
        formats: Sequence[str] = default_of(DownloaderConfig, "symbol_formats"),
        max_debug_size: int = default_of(DownloaderConfig, "max_debug_file_size"),
        protocols: Sequence[str] = default_of(DownloaderConfig, "symbol_protocols"),
        pool_size: int = 10,
    ) -> None:
        self.source_urls = source_urls
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_size = max_size
        #: seconds one module's download may take in all
        self.deadline = deadline
        self.max_line = max_line
        #: the forms looked for, in order (ELIOT_SYMBOL_FORMATS)
        self.formats = tuple(formats)
        #: the size limit of every form but ``sym`` (ELIOT_MAX_DEBUG_FILE_SIZE)
        self.max_debug_size = max_debug_size
        #: the protocols asked after every form (ELIOT_SYMBOL_PROTOCOLS)
        self.protocols = tuple(protocols)
        self.sessions = {url: make_session(USER_AGENT, pool_size) for url in source_urls}

    @classmethod
    def from_config(cls, manager: ConfigManager, *, pool_size: int = 10) -> SymbolDownloader:
        """The downloader as configured by :class:`~tecken_eliot.settings.DownloaderConfig`;
        ``pool_size`` keep-alive connections per source."""
        options = read_options(manager, DownloaderConfig)
        return cls(
            options["symbol_urls"],
            timeout=options["download_timeout"],
            retries=options["download_retries"],
            backoff=options["download_backoff"],
            max_size=options["max_download_size"],
            deadline=options["download_deadline"],
            max_line=options["max_sym_line_length"],
            formats=options["symbol_formats"],
            max_debug_size=options["max_debug_file_size"],
            protocols=options["symbol_protocols"],
            pool_size=pool_size,
        )

    def _ids_to_try(self, debug_id: str) -> list[str]:
        # Symbol stores key on the upper-case id; try that first so the answer
        # never depends on the case a client used, then the id as sent.
        ids = [debug_id.upper()]
        if debug_id != debug_id.upper():
            ids.append(debug_id)
        return ids

    def _urls(
        self, source: str, debug_filename: str, debug_id: str, fmt: str, code_id: str | None
    ) -> list[str]:
        """The URLs of the module's symbols in the form (or protocol) ``fmt``
        on ``source``, in the order asked; none where it has no such form."""
        if fmt in SYMBOL_PROTOCOLS:
            base = source if source.endswith("/") else source + "/"
            return [base + path for path in protocol_paths(fmt, debug_filename, debug_id, code_id)]
        if format_filename(fmt, debug_filename) is None:
            return []
        return [symbol_url(source, debug_filename, did, fmt) for did in self._ids_to_try(debug_id)]

    def _each_url(
        self,
        debug_filename: str,
        debug_id: str,
        formats: Sequence[str] | None,
        deadline: float,
        attempt: Callable[[str, str, str], Attempt],
        code_id: str | None = None,
    ) -> DownloadResult:
        """``attempt(source, url, fmt)`` for each form (default: the
        configured forms, then protocols), on each source, for each of its
        URLs (spellings of the id, a protocol's paths), until one is not
        MISSING; a source that fails (ERROR) is not asked again. Stops when the
        deadline has passed and something failed."""
        errors: list[str] = []
        broken: set[str] = set()
        for fmt in self.formats + self.protocols if formats is None else formats:
            for source in self.source_urls:
                if source in broken:
                    continue
                urls = self._urls(source, debug_filename, debug_id, fmt, code_id)
                if urls and errors and time.monotonic() >= deadline:
                    return DownloadResult(ModuleStatus.ERROR, 0, errors)  # out of time
                for url in urls:
                    outcome, detail, size = attempt(source, url, fmt)
                    if outcome is ModuleStatus.FOUND:
                        return DownloadResult(outcome, size, errors, fmt)
                    if outcome is ModuleStatus.TOO_LARGE:
                        return DownloadResult(outcome, size, [detail], fmt)
                    if outcome is ModuleStatus.ERROR:
                        errors.append(detail)
                        broken.add(source)
                        break  # a broken source: no point trying its other URLs
        status = ModuleStatus.ERROR if errors else ModuleStatus.MISSING
        return DownloadResult(status, 0, errors)

    def download(
        self,
        debug_filename: str,
        debug_id: str,
        dest: Path,
        deadline: float | None = None,
        formats: Sequence[str] | None = None,
        code_id: str | None = None,
    ) -> DownloadResult:
        """Fetch the module's symbols into ``dest`` (overwritten), in the first
        of ``formats`` (default: ``self.formats``, then ``self.protocols``) a
        source has, within ``self.deadline`` seconds and by ``deadline`` (a
        :func:`time.monotonic` time, the request's) if given. ``code_id`` (the
        ELF build id) names the module for debuginfod and SSQP. Every URL in
        ``errors`` is :func:`public_url`'d."""
        own = time.monotonic() + self.deadline
        deadline = own if deadline is None else min(own, deadline)

        def attempt(source: str, url: str, fmt: str) -> Attempt:
            if fmt != "sym":
                # A symbol server may count each GET 404 as a missing symbol
                # (the symbols service does): only the sym file's, as for
                # Mozilla's Eliot. Other forms are asked for with HEAD first.
                head = self._head(source, url, deadline)
                if head[0] is not ModuleStatus.FOUND:
                    return head
            return self._fetch(source, url, dest, deadline, fmt)

        return self._each_url(debug_filename, debug_id, formats, deadline, attempt, code_id)

    def exists(
        self,
        debug_filename: str,
        debug_id: str,
        formats: Sequence[str] | None = None,
        code_id: str | None = None,
    ) -> DownloadResult:
        """Whether a source has the module's symbols in one of ``formats``
        (default: ``self.formats``, then ``self.protocols``), asked with HEAD
        requests (no retries, redirects not followed: a redirect counts as
        found), within ``self.timeout`` seconds in all. FOUND, MISSING or ERROR."""
        deadline = time.monotonic() + self.timeout
        return self._each_url(
            debug_filename,
            debug_id,
            formats,
            deadline,
            lambda source, url, fmt: self._head(source, url, deadline),
            code_id,
        )

    def _head(self, source: str, url: str, deadline: float) -> Attempt:
        try:
            with open_url(
                self.sessions[source],
                url,
                method="HEAD",
                timeout=self.timeout,
                deadline=deadline,
                follow_redirects=False,
            ) as resp:
                status = resp.status_code
        except FetchError as exc:
            return ModuleStatus.ERROR, redact(str(exc)), 0
        if status == 200 or (status in REDIRECT_STATUSES and resp.headers.get("Location")):
            return ModuleStatus.FOUND, "", 0
        if status == 404:
            return ModuleStatus.MISSING, "", 0
        return ModuleStatus.ERROR, f"HTTP {status} from {public_url(url)} (HEAD)", 0

    def _fetch(self, source: str, url: str, dest: Path, deadline: float, fmt: str) -> Attempt:
        """One URL with retries: (outcome, detail, size). ``open_url`` retries
        what fails before the body; a body that breaks off is tried again here
        while attempts are left."""
        timer = _AttemptTimer()
        while True:
            try:
                return self._fetch_once(source, url, dest, timer, deadline, fmt)
            except LineTooLong as exc:
                timer.done("fail")
                logger.warning("symbol download %s: %s", public_url(url), exc)
                return ModuleStatus.TOO_LARGE, str(exc), 0
            except FetchError as exc:
                timer.done("fail")
                detail = redact(str(exc))
                if exc.url != url:
                    detail += f" (redirected from {public_url(url)})"
                if exc.kind == "too_large":
                    logger.warning("symbol download: %s", detail)
                    return ModuleStatus.TOO_LARGE, detail, 0
                if exc.kind == "deadline":
                    detail = (
                        f"the download of {public_url(exc.url)} did not finish in time "
                        f"(ELIOT_DOWNLOAD_DEADLINE {self.deadline:g}s, or the request's "
                        "ELIOT_FETCH_DEADLINE)"
                    )
                    logger.warning("symbol download: %s", detail)
                    return ModuleStatus.ERROR, detail, 0
                body_broke = exc.kind == "connection" and timer.streaming
                if not body_broke or timer.attempts > self.retries:
                    return ModuleStatus.ERROR, detail, 0
                logger.warning("symbol download attempt %d failed: %s", timer.attempts, detail)
                time.sleep(random.uniform(0, self.backoff * (2 ** (timer.attempts - 1))))

    def _fetch_once(
        self, source: str, url: str, dest: Path, timer: _AttemptTimer, deadline: float, fmt: str
    ) -> Attempt:
        with open_url(
            self.sessions[source],
            url,
            timeout=self.timeout,
            deadline=deadline,
            retries=self.retries - timer.attempts,
            backoff=self.backoff,
            on_attempt=timer.on_attempt,
        ) as resp:
            if resp.status_code == 200:
                timer.streaming = True
                with open(dest, "wb") as fp:
                    # Lines are a sym file's; other forms are binary (a
                    # gzipped sym file's lines are checked as it is unpacked).
                    text = fmt == "sym"
                    size = stream_to(
                        resp,
                        LineLimitedWriter(fp, self.max_line) if text else fp,  # type: ignore[arg-type]
                        max_size=self.max_size if text else self.max_debug_size,
                        deadline=deadline,
                    )
                timer.done("success")
                return ModuleStatus.FOUND, "", size
            if resp.status_code == 404:
                return ModuleStatus.MISSING, "", 0
            # Name the URL that answered: a redirect target, if there was one.
            detail = f"HTTP {resp.status_code} from {public_url(resp.url)}"
            if resp.url != url:
                detail += f" (redirected from {public_url(url)})"
            if resp.status_code not in RETRY_STATUSES:
                logger.error("symbol download: %s", detail)
            return ModuleStatus.ERROR, detail, 0


class _AttemptTimer:
    """Eliot's ``downloader.download`` histogram from ``open_url``'s attempts:
    one value per attempt, ``response:success`` for a 200 whose body arrived
    (its time includes the body and the redirect hops that led to it),
    ``response:fail`` for every other."""

    def __init__(self) -> None:
        self.attempts = 0
        #: a 200 came, so the body is being read (its end is timed by done())
        self.streaming = False
        self._hops = 0.0
        self._started: float | None = None

    def on_attempt(self, seconds: float, status: int | None) -> None:
        if status in REDIRECT_STATUSES:
            self._hops += seconds  # counted with the answer it leads to
            return
        self.attempts += 1
        self.streaming = False
        seconds += self._hops
        self._hops = 0.0
        if status == 200:
            self._started = time.perf_counter() - seconds
            return
        _timing(seconds, "fail")
        if status is None or status in RETRY_STATUSES:
            logger.warning("symbol download attempt %d failed (HTTP %s)", self.attempts, status)

    def done(self, response: str) -> None:
        """The body of a 200 was read (``success``) or failed (``fail``)."""
        if self._started is not None:
            _timing(time.perf_counter() - self._started, response)
            self._started = None


def _timing(seconds: float, response: str) -> None:
    metrics.histogram("downloader.download", value=seconds * 1000, tags=[f"response:{response}"])
