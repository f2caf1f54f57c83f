# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Upload by download URL (spec 2.3), with the redirect trail checked.

Every URL on the way (the given one and each redirect, for the HEAD chain and
for the download itself) must be https on an allowed host whose addresses are
public, and is connected to at the address checked
(:mod:`tecken_symbols.upload.safeurl`), unless SYMBOLS_ALLOW_UPLOAD_BY_ANY_DOMAIN
is on. The whole upload by URL (HEADs, retries, redirects, the download) has
one deadline, SYMBOLS_UPLOAD_DOWNLOAD_DEADLINE. Failures of the remote end are
answered 5xx, so CI uploaders retry; a URL that can't work is answered 400.
Fetching itself (retries with backoff, redirects followed and checked hop by
hop, the size cap) is :mod:`tecken_shared.httpfetch`; this module maps its
failures to the answers above."""

from __future__ import annotations

import logging
import os
import posixpath
import tempfile
import time
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import markus
import requests

from tecken_shared import httpfetch
from tecken_shared.httpfetch import FetchError
from tecken_symbols.upload.config import UploadSettings
from tecken_symbols.upload.errors import UploadError
from tecken_symbols.upload.safeurl import UrlGuard

logger = logging.getLogger(__name__)
metrics = markus.get_metrics("tecken")

UPSTREAM_ERROR = 502  # the remote end failed: the client should retry
USER_AGENT = "tecken-symbols (upload by download URL)"


@dataclass
class Resolved:
    url: str  # the URL given
    final_url: str  # where the HEAD chain ended
    size: int | None
    redirect_urls: list[str] = field(default_factory=list)

    @property
    def filename(self) -> str:
        """The basename of the given URL's path; the final URL's when the given
        one doesn't name a .zip (Tecken always takes the first)."""
        first = posixpath.basename(unquote(urlsplit(self.url).path))
        if first.lower().endswith(".zip") or not self.redirect_urls:
            return first
        last = posixpath.basename(unquote(urlsplit(self.final_url).path))
        return last if last.lower().endswith(".zip") else first


def normalize_url(value: str) -> str:
    """The form check: an absolute http(s) URL; scheme-less means https."""
    value = (value or "").strip()
    if not value:
        raise UploadError("Enter a valid URL.")
    if "://" not in value:
        value = "https://" + value
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise UploadError("Enter a valid URL.") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname or " " in value:
        raise UploadError("Enter a valid URL.")
    return value


class Fetch:
    """One upload by URL: its session, its address guard (none with
    SYMBOLS_ALLOW_UPLOAD_BY_ANY_DOMAIN) and its overall deadline."""

    def __init__(self, settings: UploadSettings) -> None:
        self.settings = settings
        self.guard: UrlGuard | None = None
        if settings.allow_any_domain:
            self.session = httpfetch.make_session(USER_AGENT)
        else:
            self.guard = UrlGuard(
                settings.allowed_domains,
                require_https=settings.require_https,
                allow_private=settings.allow_private_addresses,
            )
            self.session = self.guard.session(USER_AGENT)
        limit = settings.download_deadline
        self.deadline = time.monotonic() + limit if limit > 0 else None

    def check(self, url: str, via: str | None = None) -> None:
        if self.guard is not None:
            self.guard.check(url, via)

    def open(self, method: str, url: str, timeout: httpfetch.Timeout) -> requests.Response:
        """The first non-redirect answer for ``url`` (retried, every hop
        checked), as long as it is not an error."""
        settings = self.settings
        try:
            resp = httpfetch.open_url(
                self.session,
                url,
                method=method,
                timeout=timeout,
                deadline=self.deadline,
                retries=settings.download_retries,
                backoff=settings.download_backoff,
                max_redirects=settings.max_redirects,
                check_url=self.check,
            )
        except FetchError as exc:
            cause = exc.__cause__
            if exc.kind == "redirect":
                raise UploadError(f"Too many redirects trying to open {url}") from exc
            if exc.kind == "deadline":
                raise UploadError(self.deadline_message(exc.url), UPSTREAM_ERROR) from exc
            if exc.kind == "timeout":
                raise UploadError(f"Timeout trying to open {exc.url}", UPSTREAM_ERROR) from exc
            if isinstance(cause, requests.ConnectionError):
                raise UploadError(
                    f"ConnectionError trying to open {exc.url}", UPSTREAM_ERROR
                ) from exc
            raise UploadError(f"Cannot open {exc.url}: {cause or exc}") from exc
        except ValueError as exc:  # a redirect to an unparsable URL
            raise UploadError(f"Cannot open {url}: {exc}") from exc
        code = resp.status_code
        if code >= 500 or code == 429:
            resp.close()
            raise UploadError(f"{resp.url} errored ({code})", UPSTREAM_ERROR)
        if code >= 400:
            resp.close()
            raise UploadError(f"{resp.url} can't be found ({code})")
        return resp

    def deadline_message(self, url: str) -> str:
        return (
            f"Downloading {url} took longer than the {self.settings.download_deadline:g} "
            "seconds allowed (SYMBOLS_UPLOAD_DOWNLOAD_DEADLINE); retry later"
        )


def resolve(url: str, settings: UploadSettings, fetch: Fetch | None = None) -> Resolved:
    """Validate ``url`` and walk its HEAD chain."""
    url = normalize_url(url)
    fetch = fetch or Fetch(settings)
    fetch.check(url)
    resp = fetch.open("HEAD", url, settings.download_connect_timeout)
    resp.close()
    length = resp.headers.get("Content-Length")
    size = int(length) if length and length.isdigit() else None
    if size is not None and size > settings.max_size:
        raise UploadError(
            f"{url} is too large ({size} bytes; the limit is {settings.max_size})", 413
        )
    return Resolved(url=url, final_url=resp.url, size=size, redirect_urls=list(resp.history_urls))


def download(
    resolved: Resolved,
    settings: UploadSettings,
    directory: str,
    fetch: Fetch | None = None,
) -> tuple[str, int]:
    """Stream the archive into a temporary file in ``directory``: (path, size)."""
    fetch = fetch or Fetch(settings)
    timeout = (settings.download_connect_timeout, settings.download_read_timeout)
    with metrics.timer("upload_download_by_url"):
        resp = fetch.open("GET", resolved.url, timeout)
        with resp:
            if resp.status_code != 200:
                raise UploadError(f"non-200 status code when retrieving {resolved.url}")
            fd, path = tempfile.mkstemp(dir=directory, prefix="download-", suffix=".zip")
            try:
                with os.fdopen(fd, "wb") as out:
                    size = httpfetch.stream_to(
                        resp, out, max_size=settings.max_size, deadline=fetch.deadline
                    )
            except FetchError as exc:
                os.unlink(path)
                if exc.kind == "too_large":
                    raise UploadError(
                        f"{resolved.url} is too large (over {settings.max_size} bytes, the limit)",
                        413,
                    ) from exc
                if exc.kind == "deadline":
                    raise UploadError(fetch.deadline_message(resolved.url), UPSTREAM_ERROR) from exc
                raise UploadError(
                    f"Download of {resolved.url} broke off: {exc.__cause__ or exc}",
                    UPSTREAM_ERROR,
                ) from exc
            except BaseException:
                os.unlink(path)
                raise
    return path, size
