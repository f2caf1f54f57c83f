# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Upload by download URL (spec 2.3), with the redirect trail checked.

Every URL on the way (the given one and each redirect, for the HEAD chain and
for the download itself) must be https on an allowed host, unless
SYMBOLS_ALLOW_UPLOAD_BY_ANY_DOMAIN is on. Failures of the remote end are
answered 5xx, so CI uploaders retry; a URL that can't work is answered 400."""

from __future__ import annotations

import logging
import os
import posixpath
import tempfile
from dataclasses import dataclass, field
from urllib.parse import unquote, urljoin, urlsplit

import markus
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from tecken_symbols.upload.config import UploadSettings
from tecken_symbols.upload.errors import UploadError

logger = logging.getLogger(__name__)
metrics = markus.get_metrics("tecken")

CHUNK = 1024 * 1024
UPSTREAM_ERROR = 502  # the remote end failed: the client should retry


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


def make_session(settings: UploadSettings) -> requests.Session:
    session = requests.Session()
    retry = Retry(
        total=settings.download_retries,
        backoff_factor=settings.download_backoff,
        status_forcelist=(429, 500),
        allowed_methods=("HEAD", "GET"),
        raise_on_status=False,
        redirect=False,
    )
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _request(
    session: requests.Session, method: str, url: str, settings: UploadSettings, timeout
) -> requests.Response:
    try:
        return session.request(
            method, url, allow_redirects=False, timeout=timeout, stream=method == "GET"
        )
    except requests.exceptions.RetryError as exc:
        raise UploadError(f"RetryError trying to open {url}", UPSTREAM_ERROR) from exc
    except requests.exceptions.Timeout as exc:
        raise UploadError(f"Timeout trying to open {url}", UPSTREAM_ERROR) from exc
    except requests.exceptions.ConnectionError as exc:
        raise UploadError(f"ConnectionError trying to open {url}", UPSTREAM_ERROR) from exc
    except (requests.exceptions.RequestException, ValueError) as exc:
        # ValueError: requests parses a redirect's Location even when not following it.
        raise UploadError(f"Cannot open {url}: {exc}") from exc


def _follow(
    session: requests.Session,
    method: str,
    url: str,
    settings: UploadSettings,
    timeout,
    trail: list[str],
) -> requests.Response:
    """Request ``url``, following at most ``max_redirects`` redirects, each
    checked against the allow-list. Returns the first non-redirect response."""
    current = url
    for _ in range(settings.max_redirects + 1):
        resp = _request(session, method, current, settings, timeout)
        code = resp.status_code
        if 300 <= code < 400 and resp.headers.get("Location"):
            resp.close()
            location = urljoin(current, resp.headers["Location"])
            check_allowed(location, settings, via=current)
            trail.append(location)
            current = location
            continue
        if code >= 500:
            resp.close()
            raise UploadError(f"{current} errored ({code})", UPSTREAM_ERROR)
        if code >= 400:
            resp.close()
            raise UploadError(f"{current} can't be found ({code})")
        resp.url = current
        return resp
    raise UploadError(f"Too many redirects trying to open {url}")


def resolve(
    url: str, settings: UploadSettings, session: requests.Session | None = None
) -> Resolved:
    """Validate ``url`` and walk its HEAD chain."""
    url = normalize_url(url)
    check_allowed(url, settings)
    session = session or make_session(settings)
    trail: list[str] = []
    resp = _follow(session, "HEAD", url, settings, settings.download_connect_timeout, trail)
    resp.close()
    length = resp.headers.get("Content-Length")
    size = int(length) if length and length.isdigit() else None
    if size is not None and size > settings.max_size:
        raise UploadError(
            f"{url} is too large ({size} bytes; the limit is {settings.max_size})", 413
        )
    return Resolved(url=url, final_url=resp.url, size=size, redirect_urls=trail)


def download(
    resolved: Resolved,
    settings: UploadSettings,
    directory: str,
    session: requests.Session | None = None,
) -> tuple[str, int]:
    """Stream the archive into a temporary file in ``directory``: (path, size)."""
    session = session or make_session(settings)
    timeout = (settings.download_connect_timeout, settings.download_read_timeout)
    with metrics.timer("upload_download_by_url"):
        trail: list[str] = []
        resp = _follow(session, "GET", resolved.url, settings, timeout, trail)
        with resp:
            if resp.status_code != 200:
                raise UploadError(f"non-200 status code when retrieving {resolved.url}")
            fd, path = tempfile.mkstemp(dir=directory, prefix="download-", suffix=".zip")
            size = 0
            try:
                with os.fdopen(fd, "wb") as out:
                    for chunk in resp.iter_content(CHUNK):
                        size += len(chunk)
                        if size > settings.max_size:
                            raise UploadError(
                                f"{resolved.url} is too large (over {settings.max_size} bytes, the limit)",
                                413,
                            )
                        out.write(chunk)
            except requests.exceptions.RequestException as exc:
                os.unlink(path)
                raise UploadError(
                    f"Download of {resolved.url} broke off: {exc}", UPSTREAM_ERROR
                ) from exc
            except BaseException:
                os.unlink(path)
                raise
    return path, size
