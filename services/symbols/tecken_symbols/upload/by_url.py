# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Upload by download URL (spec 2.3), with the redirect trail checked.

Every URL on the way (the given one and each redirect, for the HEAD chain and
for the download itself) must be https on an allowed host, unless
SYMBOLS_ALLOW_UPLOAD_BY_ANY_DOMAIN is on. Failures of the remote end are
answered 5xx, so CI uploaders retry; a URL that can't work is answered 400.
Fetching itself (retries with backoff, redirects followed and checked hop by
hop, the size cap) is :mod:`tecken_shared.httpfetch`; this module maps its
failures to the answers above."""

from __future__ import annotations

import logging
import os
import posixpath
import tempfile
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import markus
import requests

from tecken_shared import httpfetch
from tecken_shared.httpfetch import FetchError
from tecken_symbols.upload.config import UploadSettings
from tecken_symbols.upload.errors import UploadError

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


def check_allowed(url: str, settings: UploadSettings, *, via: str | None = None) -> None:
    if settings.allow_any_domain:
        return
    where = f" (redirected to from {via})" if via else ""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise UploadError(f"Invalid URL{where}: {url}") from exc
    if settings.require_https and parts.scheme != "https":
        raise UploadError(f"Insecure URL{where}: {url}")
    host = (parts.hostname or "").lower()
    if host not in settings.allowed_domains:
        raise UploadError(f"Not an allowed domain ('{host}') to download from.{where}")


def make_session() -> requests.Session:
    return httpfetch.make_session(USER_AGENT)


def _open(
    session: requests.Session,
    method: str,
    url: str,
    settings: UploadSettings,
    timeout: httpfetch.Timeout,
) -> requests.Response:
    """The first non-redirect answer for ``url`` (retried, every redirect hop
    checked against the allow-list), as long as it is not an error."""
    try:
        resp = httpfetch.open_url(
            session,
            url,
            method=method,
            timeout=timeout,
            retries=settings.download_retries,
            backoff=settings.download_backoff,
            max_redirects=settings.max_redirects,
            check_url=lambda target, via: check_allowed(target, settings, via=via),
        )
    except FetchError as exc:
        cause = exc.__cause__
        if exc.kind == "redirect":
            raise UploadError(f"Too many redirects trying to open {url}") from exc
        if exc.kind in ("timeout", "deadline"):
            raise UploadError(f"Timeout trying to open {exc.url}", UPSTREAM_ERROR) from exc
        if isinstance(cause, requests.ConnectionError):
            raise UploadError(f"ConnectionError trying to open {exc.url}", UPSTREAM_ERROR) from exc
        raise UploadError(f"Cannot open {exc.url}: {cause or exc}") from exc
    except ValueError as exc:  # a redirect to an unparsable URL
        raise UploadError(f"Cannot open {url}: {exc}") from exc
    code = resp.status_code
    if code >= 500:
        resp.close()
        raise UploadError(f"{resp.url} errored ({code})", UPSTREAM_ERROR)
    if code >= 400:
        resp.close()
        raise UploadError(f"{resp.url} can't be found ({code})")
    return resp


def resolve(
    url: str, settings: UploadSettings, session: requests.Session | None = None
) -> Resolved:
    """Validate ``url`` and walk its HEAD chain."""
    url = normalize_url(url)
    check_allowed(url, settings)
    session = session or make_session()
    resp = _open(session, "HEAD", url, settings, settings.download_connect_timeout)
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
    session: requests.Session | None = None,
) -> tuple[str, int]:
    """Stream the archive into a temporary file in ``directory``: (path, size)."""
    session = session or make_session()
    timeout = (settings.download_connect_timeout, settings.download_read_timeout)
    with metrics.timer("upload_download_by_url"):
        resp = _open(session, "GET", resolved.url, settings, timeout)
        with resp:
            if resp.status_code != 200:
                raise UploadError(f"non-200 status code when retrieving {resolved.url}")
            fd, path = tempfile.mkstemp(dir=directory, prefix="download-", suffix=".zip")
            try:
                with os.fdopen(fd, "wb") as out:
                    size = httpfetch.stream_to(resp, out, max_size=settings.max_size)
            except FetchError as exc:
                os.unlink(path)
                if exc.kind == "too_large":
                    raise UploadError(
                        f"{resolved.url} is too large (over {settings.max_size} bytes, the limit)",
                        413,
                    ) from exc
                raise UploadError(
                    f"Download of {resolved.url} broke off: {exc.__cause__ or exc}",
                    UPSTREAM_ERROR,
                ) from exc
            except BaseException:
                os.unlink(path)
                raise
    return path, size
