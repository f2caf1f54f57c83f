# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The address check of upload by download URL (RT-01): one parser, one DNS
answer, one connection target.

* URLs are parsed with :func:`urllib3.util.parse_url`, the parser requests
  itself uses to connect, and refused when their authority is ambiguous
  (a backslash, ``@``/userinfo, whitespace or control characters, a
  percent-escape in the host) or when another parser would read a different
  host.
* The host must be allowed by name; it is then resolved once, and refused when
  any of its addresses is loopback, private, link-local or otherwise not
  public (unless ``SYMBOLS_UPLOAD_BY_DOWNLOAD_ALLOW_PRIVATE_ADDRESSES`` is on,
  for local development and tests).
* The checked address is pinned: the session's transport connects to that
  address, never to a second DNS answer (no rebinding between check and
  connect), while TLS still verifies the certificate against the host name.
  A host nobody checked is never connected to."""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from tecken_symbols.upload.errors import UploadError

AMBIGUOUS = "\\@%"
UNRESOLVABLE = 502  # like a connection error: the remote end's DNS may come back


def _norm_host(host: str) -> str:
    return host.strip("[]").rstrip(".").lower()


def is_public(address: str) -> bool:
    """Whether ``address`` is a globally routable unicast address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


class Pins:
    """Checked ``(host, port)`` -> the address to connect to."""

    def __init__(self) -> None:
        self._pins: dict[tuple[str, int], str] = {}
        self._lock = threading.Lock()

    def get(self, host: str, port: int) -> str | None:
        with self._lock:
            return self._pins.get((_norm_host(host), port))

    def set(self, host: str, port: int, address: str) -> None:
        with self._lock:
            self._pins.setdefault((_norm_host(host), port), address)


def _pinned(pins: Pins, host: str, port: int) -> str:
    address = pins.get(host, port)
    if address is None:
        # Fail closed: nothing reaches the network without the check.
        raise OSError(f"refusing to connect to {host}:{port}: the address was not checked")
    return address


def _connect_pinned(conn: HTTPConnection, connect: Callable[[], socket.socket]) -> socket.socket:
    """``connect()`` with the socket aimed at the pinned address of the
    connection's host; the host name stays for the Host header, SNI and the
    certificate check."""
    name = conn._dns_host
    conn._dns_host = _pinned(pins_of(conn), name, conn.port)
    try:
        return connect()
    finally:
        conn._dns_host = name


def pins_of(conn: HTTPConnection) -> Pins:
    return conn.tecken_pins  # type: ignore[attr-defined]


def pinned_adapter(pins: Pins, pool_size: int = 10) -> HTTPAdapter:
    """A transport adapter whose connections go to the pinned addresses only."""

    class Conn(HTTPConnection):
        tecken_pins = pins

        def _new_conn(self) -> socket.socket:
            return _connect_pinned(self, super()._new_conn)

    class SConn(HTTPSConnection):
        tecken_pins = pins

        def _new_conn(self) -> socket.socket:
            return _connect_pinned(self, super()._new_conn)

    class Pool(HTTPConnectionPool):
        ConnectionCls = Conn

    class SPool(HTTPSConnectionPool):
        ConnectionCls = SConn

    class Adapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": Pool, "https": SPool}

    return Adapter(pool_connections=pool_size, pool_maxsize=pool_size)


def ambiguity(url: str) -> str | None:
    """Why the authority of ``url`` could be read two ways (None when it can't)."""
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return "whitespace or a control character"
    if "\\" in url:
        return "a backslash"
    try:
        ours = parse_url(url)
        theirs = urlsplit(url)
    except (LocationParseError, ValueError):
        return "it cannot be parsed"
    netloc = theirs.netloc
    for char in AMBIGUOUS:
        if char in netloc or (ours.netloc and char in ours.netloc):
            return f"{char!r} in the host part"
    if ours.auth is not None:
        return "user information in the host part"
    if _norm_host(ours.host or "") != _norm_host(theirs.hostname or ""):
        return "parsers disagree about the host"
    return None


class UrlGuard:
    """``check(url, via)`` for :func:`tecken_shared.httpfetch.open_url`: allowed
    scheme and host, public addresses, resolved once and pinned in ``pins``."""

    def __init__(
        self,
        allowed_domains: tuple[str, ...],
        *,
        require_https: bool = True,
        allow_private: bool = False,
        resolver: Callable[[str, int], list[str]] | None = None,
    ) -> None:
        self.allowed_domains = allowed_domains
        self.require_https = require_https
        self.allow_private = allow_private
        self.resolver = resolver or _resolve
        self.pins = Pins()

    def session(self, user_agent: str) -> requests.Session:
        session = requests.Session()
        session.trust_env = False  # a proxy from the environment would bypass the pins
        session.headers["User-Agent"] = user_agent
        adapter = pinned_adapter(self.pins)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session

    def check(self, url: str, via: str | None = None) -> None:
        where = f" (redirected to from {via})" if via else ""
        reason = ambiguity(url)
        if reason is not None:
            raise UploadError(
                f"Not an allowed domain to download from: the URL's host part is ambiguous "
                f"({reason}); use a plain https://host/path URL.{where}"
            )
        parsed = parse_url(url)
        scheme = (parsed.scheme or "").lower()
        if scheme not in ("http", "https"):
            raise UploadError(f"Invalid URL{where}: {url}")
        if self.require_https and scheme != "https":
            raise UploadError(f"Insecure URL{where}: {url}")
        host = _norm_host(parsed.host or "")
        if host not in self.allowed_domains:
            raise UploadError(f"Not an allowed domain ('{host}') to download from.{where}")
        port = parsed.port or (443 if scheme == "https" else 80)
        if self.pins.get(host, port) is not None:
            return  # resolved and checked once already: keep that answer
        try:
            addresses = self.resolver(host, port)
        except OSError as exc:
            raise UploadError(
                f"ConnectionError trying to open {url}: {host} does not resolve{where}",
                UNRESOLVABLE,
            ) from exc
        if not addresses:
            raise UploadError(
                f"ConnectionError trying to open {url}: {host} does not resolve{where}",
                UNRESOLVABLE,
            )
        if not self.allow_private:
            for address in addresses:
                if not is_public(address):
                    raise UploadError(
                        f"Not an allowed domain ('{host}') to download from: it resolves "
                        f"to {address}, a loopback, private or link-local address.{where}"
                    )
        self.pins.set(host, port, addresses[0])


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in seen:
            seen.append(address)
    return seen
