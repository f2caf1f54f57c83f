# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Fetching a URL from another server: retries, redirects checked hop by hop,
a size cap and a total deadline. The one such routine of the project (eliot
downloads symbol files with it, symbols downloads archives uploaded by URL).

* :func:`make_session`: a keep-alive session with a User-Agent.
* :func:`open_url`: the first non-redirect answer, after retrying connection
  errors, time-outs and :data:`RETRY_STATUSES`; every redirect hop is passed
  to ``check_url`` first.
* :func:`stream_to`: the body into a file, bounded in size and time.

Failures are :class:`FetchError` with a ``kind`` a caller can map to its own
answer (``connection``, ``timeout``, ``deadline``, ``too_large``,
``redirect``, ``status``)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import BinaryIO
from urllib.parse import urljoin

import requests
import urllib3
from requests.adapters import HTTPAdapter

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CHUNK = 1024 * 1024

Timeout = float | tuple[float, float]


class FetchError(Exception):
    """Fetching ``url`` failed; ``kind`` says how, ``status`` the HTTP status
    where there was one."""

    def __init__(self, url: str, kind: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.kind = kind
        self.status = status


def make_session(user_agent: str, pool_size: int = 10) -> requests.Session:
    """A keep-alive session sending ``user_agent``, ``pool_size`` connections
    per host."""
    session = requests.Session()
    session.headers["User-Agent"] = user_agent
    adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _bounded(timeout: Timeout, deadline: float | None, url: str) -> Timeout:
    """``timeout`` cut to what is left before ``deadline``."""
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise FetchError(url, "deadline", f"the time allowed for fetching {url} ran out")
    if isinstance(timeout, tuple):
        return (min(timeout[0], left), min(timeout[1], left))
    return min(timeout, left)


def _sleep_before_retry(attempt: int, backoff: float, deadline: float | None) -> bool:
    """Sleep a jittered exponential backoff; False when that would pass the deadline."""
    pause = random.uniform(0, backoff * (2 ** (attempt - 1)))
    if deadline is not None and time.monotonic() + pause >= deadline:
        return False
    time.sleep(pause)
    return True


def _attempt(
    session: requests.Session,
    method: str,
    url: str,
    *,
    timeout: Timeout,
    deadline: float | None,
    retries: int,
    backoff: float,
    retry_statuses: frozenset[int] | set[int],
    on_attempt: Callable[[float, int | None], None] | None,
) -> requests.Response:
    """One URL, redirects not followed, with retries."""
    failure: FetchError | None = None
    for attempt in range(retries + 1):
        if attempt and not _sleep_before_retry(attempt, backoff, deadline):
            break
        start = time.perf_counter()
        try:
            resp = session.request(
                method,
                url,
                allow_redirects=False,
                timeout=_bounded(timeout, deadline, url),
                stream=True,
            )
        except requests.Timeout as exc:
            failure = FetchError(url, "timeout", f"Timeout fetching {url}")
            failure.__cause__ = exc
        except requests.ConnectionError as exc:
            failure = FetchError(url, "connection", f"ConnectionError fetching {url}")
            failure.__cause__ = exc
        except (requests.RequestException, ValueError) as exc:
            # ValueError: an unusable URL; no retry can help.
            if on_attempt is not None:
                on_attempt(time.perf_counter() - start, None)
            raise FetchError(url, "connection", f"cannot fetch {url}: {exc}") from exc
        else:
            if on_attempt is not None:
                on_attempt(time.perf_counter() - start, resp.status_code)
            if resp.status_code not in retry_statuses or attempt == retries:
                return resp
            resp.close()
            failure = FetchError(
                url, "status", f"HTTP {resp.status_code} from {url}", resp.status_code
            )
            continue
        if on_attempt is not None:
            on_attempt(time.perf_counter() - start, None)
    if failure is None or (deadline is not None and time.monotonic() >= deadline):
        raise FetchError(url, "deadline", f"the time allowed for fetching {url} ran out")
    if failure.kind == "status":
        # A retryable status whose retries were cut short by the deadline.
        raise FetchError(url, "deadline", f"{failure} (the time allowed ran out)", failure.status)
    raise failure


def open_url(
    session: requests.Session,
    url: str,
    *,
    method: str = "GET",
    timeout: Timeout = 10.0,
    deadline: float | None = None,
    retries: int = 0,
    backoff: float = 0.5,
    retry_statuses: frozenset[int] | set[int] = RETRY_STATUSES,
    follow_redirects: bool = True,
    max_redirects: int = 5,
    check_url: Callable[[str, str | None], None] | None = None,
    on_attempt: Callable[[float, int | None], None] | None = None,
) -> requests.Response:
    """The first non-redirect answer for ``url`` (any status; the caller
    closes it). ``resp.url`` is the URL that answered and
    ``resp.history_urls`` the redirect targets on the way.

    ``deadline`` is a :func:`time.monotonic` time by which every attempt,
    backoff and redirect must be done. ``check_url(url, via)`` is called for
    ``url`` (``via`` None) and for every redirect target (``via`` the URL
    that redirected) before it is requested, and may raise to refuse it.
    ``on_attempt(seconds, status)`` is called after each attempt (status None
    when no answer came). A retryable status still there after the last retry
    is returned; connection errors and time-outs left after the retries, a
    passed deadline and too many redirects raise :class:`FetchError`."""
    if check_url is not None:
        check_url(url, None)
    current = url
    hops: list[str] = []
    for _ in range(max_redirects + 1):
        resp = _attempt(
            session,
            method,
            current,
            timeout=timeout,
            deadline=deadline,
            retries=retries,
            backoff=backoff,
            retry_statuses=retry_statuses,
            on_attempt=on_attempt,
        )
        location = resp.headers.get("Location")
        if not (follow_redirects and resp.status_code in REDIRECT_STATUSES and location):
            resp.url = current
            resp.history_urls = hops  # type: ignore[attr-defined]
            return resp
        resp.close()
        target = urljoin(current, location)
        if check_url is not None:
            check_url(target, current)
        hops.append(target)
        current = target
    raise FetchError(url, "redirect", f"too many redirects fetching {url}")


def stream_to(
    resp: requests.Response, fp: BinaryIO, *, max_size: int, deadline: float | None = None
) -> int:
    """Write the body of ``resp`` to ``fp``; the number of bytes written.

    Raises :class:`FetchError` with kind ``too_large`` past ``max_size``
    bytes (before reading, when an unencoded Content-Length says so),
    ``deadline`` past ``deadline`` and ``connection`` when the body breaks
    off."""
    url = resp.url
    length = resp.headers.get("Content-Length")
    if (
        length
        and length.isdigit()
        and not resp.headers.get("Content-Encoding")
        and int(length) > max_size
    ):
        raise FetchError(url, "too_large", f"{url} is larger than the {max_size} bytes limit")
    size = 0
    while True:
        try:
            # read1: whatever has arrived, so a trickling server can't hold a
            # read past the deadline by never filling a whole chunk.
            chunk = resp.raw.read1(CHUNK, decode_content=True)
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise FetchError(url, "connection", f"the download of {url} broke off: {exc}") from exc
        if not chunk:
            break
        size += len(chunk)
        if size > max_size:
            raise FetchError(url, "too_large", f"{url} is larger than the {max_size} bytes limit")
        fp.write(chunk)
        if deadline is not None and time.monotonic() > deadline:
            raise FetchError(url, "deadline", f"the time allowed for fetching {url} ran out")
    return size
