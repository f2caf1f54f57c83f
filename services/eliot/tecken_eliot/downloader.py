# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Download of sym files from the configured symbol servers: streamed to a
file with a size limit, retried on 429/5xx and connection errors, one
keep-alive session per source."""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import markus
import requests
from everett.manager import ConfigManager
from requests.adapters import HTTPAdapter

from tecken_eliot.naming import symbol_url
from tecken_eliot.settings import DownloaderConfig, read_options
from tecken_eliot.status import ModuleStatus

logger = logging.getLogger(__name__)
metrics = markus.get_metrics("eliot")

USER_AGENT = "tecken-eliot/1.0 (eliot-requests/1.0)"
RETRY_STATUSES = {429, 500, 502, 503, 504}
CHUNK = 1024 * 1024


class DownloadTooLarge(Exception):
    pass


@dataclass
class DownloadResult:
    """``status`` is FOUND (the destination file holds ``size`` bytes),
    MISSING (every source said 404), ERROR (some source failed otherwise;
    ``errors`` says how) or TOO_LARGE."""

    status: ModuleStatus
    size: int = 0
    errors: list[str] = field(default_factory=list)


class SymbolDownloader:
    def __init__(
        self,
        source_urls: list[str],
        *,
        timeout: float,
        retries: int,
        backoff: float,
        max_size: int,
        pool_size: int = 10,
    ) -> None:
        self.source_urls = source_urls
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_size = max_size
        self.sessions = {}
        for url in source_urls:
            session = requests.Session()
            session.headers["User-Agent"] = USER_AGENT
            adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self.sessions[url] = session

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
            pool_size=pool_size,
        )

    def _ids_to_try(self, debug_id: str) -> list[str]:
        # Symbol stores key on the upper-case id; try that first so the answer
        # never depends on the case a client used, then the id as sent.
        ids = [debug_id.upper()]
        if debug_id != debug_id.upper():
            ids.append(debug_id)
        return ids

    def download(self, debug_filename: str, debug_id: str, dest: Path) -> DownloadResult:
        """Fetch the module's sym file into ``dest`` (overwritten)."""
        errors: list[str] = []
        for source in self.source_urls:
            for did in self._ids_to_try(debug_id):
                url = symbol_url(source, debug_filename, did)
                outcome, detail, size = self._fetch(source, url, dest)
                if outcome is ModuleStatus.FOUND:
                    return DownloadResult(outcome, size, errors)
                if outcome is ModuleStatus.TOO_LARGE:
                    return DownloadResult(outcome, size, [detail])
                if outcome is ModuleStatus.ERROR:
                    errors.append(detail)
                    break  # a broken source: no point trying another spelling there
        status = ModuleStatus.ERROR if errors else ModuleStatus.MISSING
        return DownloadResult(status, 0, errors)

    def _fetch(self, source: str, url: str, dest: Path) -> tuple[ModuleStatus, str, int]:
        """One URL with retries: (outcome, detail, size)."""
        session = self.sessions[source]
        detail = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(random.uniform(0, self.backoff * (2 ** (attempt - 1))))
            start = time.perf_counter()
            try:
                with session.get(url, timeout=self.timeout, stream=True) as resp:
                    if resp.status_code == 200:
                        size = self._stream(resp, dest)
                        self._timing(start, "success")
                        return ModuleStatus.FOUND, "", size
                    self._timing(start, "fail")
                    if resp.status_code == 404:
                        return ModuleStatus.MISSING, "", 0
                    detail = f"HTTP {resp.status_code} from {url}"
                    if resp.status_code not in RETRY_STATUSES:
                        logger.error("symbol download: %s", detail)
                        return ModuleStatus.ERROR, detail, 0
            except DownloadTooLarge:
                self._timing(start, "fail")
                detail = f"{url} is larger than the {self.max_size} bytes limit"
                logger.warning("symbol download: %s", detail)
                return ModuleStatus.TOO_LARGE, detail, 0
            except requests.RequestException as exc:
                self._timing(start, "fail")
                detail = f"{type(exc).__name__} fetching {url}"
            logger.warning("symbol download attempt %d failed: %s", attempt + 1, detail)
        return ModuleStatus.ERROR, detail, 0

    def _stream(self, resp: requests.Response, dest: Path) -> int:
        length = resp.headers.get("Content-Length")
        encoded = resp.headers.get("Content-Encoding")
        if length and not encoded and length.isdigit() and int(length) > self.max_size:
            raise DownloadTooLarge()
        size = 0
        with open(dest, "wb") as fp:
            for chunk in resp.iter_content(CHUNK):
                size += len(chunk)
                if size > self.max_size:
                    raise DownloadTooLarge()
                fp.write(chunk)
        return size

    @staticmethod
    def _timing(start: float, response: str) -> None:
        metrics.histogram(
            "downloader.download",
            value=(time.perf_counter() - start) * 1000,
            tags=[f"response:{response}"],
        )
