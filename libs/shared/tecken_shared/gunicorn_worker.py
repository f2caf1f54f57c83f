# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""A gunicorn worker class that reads every request whole before the
application sees it, so that a slow client costs a connection, not a worker.

gunicorn's ``sync`` worker gives its one thread to each connection from the
first byte of the request line: two clients trickling their headers (or their
body) stop a service with two workers. :class:`BufferingWorker` runs waitress
on the sockets gunicorn bound: one event loop per worker reads requests from
every connection at once (bodies above ``inbuf_overflow`` are spooled to a
temporary file) and hands only complete requests to the worker's
``threads`` (``<SERVICE>_GUNICORN_THREADS``). Answers are written back by the
same loop, so a client that reads slowly does not hold a thread either.

Bounds, from :data:`tecken_shared.gunicorn_conf.WORKER_OPTIONS` (the
``<SERVICE>_GUNICORN_*`` options of :class:`~tecken_shared.gunicorn_conf.GunicornConfig`):

* ``request_read_timeout``: seconds a client gets to send one whole request
  (headers and body); past it the connection is answered 408 and closed;
* ``request_stall_timeout``: seconds without a byte in the middle of a
  request before the same 408 (0: only ``request_read_timeout``);
* ``timeout_body``, ``timeout_content_type``: that 408's body (default: the
  shared JSON error shape);
* ``idle_timeout``: seconds an idle keep-alive connection is kept;
* ``connection_limit``: connections one worker holds at once (past it new
  connections wait in the listen backlog);
* ``max_request_body_size``: larger bodies are answered 413 by the worker.

gunicorn's ``timeout`` still restarts a worker whose event loop stops
(the loop tells the master it is alive once a second); a long request runs in
a thread and no longer stops the loop. ``max_requests`` is not used by this
worker. The access log is written through gunicorn's logger, as with ``sync``
(the same line, with only the atoms its format names computed:
:class:`AccessLog`); a response head goes out with the first bytes of its
body (:class:`CoalescingChannel`);
``wsgi.errors`` goes through logging (:class:`tecken_shared.logging.LoggerStream`),
so what a framework writes there is in the service's log format. waitress's
"Task queue depth" warning (one log line per request queued behind busy
threads: under load, one per request) is written at most once every
``QUEUE_WARNING_INTERVAL`` seconds (:class:`EveryFewSeconds`).

Use it with ``worker_class = "tecken_shared.gunicorn_worker.BufferingWorker"``
(the default of every ``deploy/gunicorn-<service>.conf.py``).
"""

from __future__ import annotations

import datetime
import logging
import os
import re
import time
import traceback
from collections.abc import Callable, Iterable
from typing import Any

from gunicorn.glogging import Logger
from gunicorn.workers.base import Worker
from waitress import create_server, wasyncore
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import BaseWSGIServer
from waitress.task import WSGITask
from waitress.utilities import RequestEntityTooLarge

from tecken_shared.logging import LoggerStream

#: waitress's own body limit, above every service's: the worker applies its own
#: (``max_request_body_size``) so that the application answers the refusal.
_UNBOUNDED = 2**62

#: Seconds between two rounds of housekeeping (telling the master the worker
#: is alive, enforcing the request-read deadlines).
HOUSEKEEPING = 0.5

#: Bytes asked of a socket per read: request bodies (crash reports of a few
#: hundred KB, symbol uploads) arrive in a few reads instead of one per 8 KiB
#: (waitress's default), each a turn of the event loop holding the GIL.
RECV_BYTES = 256 * 1024

#: The body of the 408 a client gets when it ran out of time (JSON error shape).
TIMEOUT_BODY = (
    '{"error": "The request was not received in time: send it again, faster.", '
    '"title": "408 Request Timeout", "description": null}'
)


def timeout_answer(body: str, content_type: str) -> bytes:
    """The whole HTTP answer sent before closing a connection that ran out of time."""
    data = body.encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


class _Response:
    """What gunicorn's access logger reads of an answer."""

    def __init__(self) -> None:
        self.status = "500"
        self.headers: list[tuple[str, str]] = []
        self.sent = 0


class _Request:
    """What gunicorn's access logger reads of a request."""

    def __init__(self, environ: dict[str, Any]) -> None:
        self.headers = [
            (key[5:].replace("_", "-"), value)
            for key, value in environ.items()
            if key.startswith("HTTP_")
        ]


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    value = None
    for key, header_value in headers:
        if key.lower() == name:
            value = header_value  # the last one, as gunicorn's
    return value


def _environ_value(environ: dict[str, Any], name: str) -> Any:
    value = None
    for key, environ_value in environ.items():
        if key.lower() == name:
            value = environ_value
    return value


#: gunicorn's access log atoms (see its ``access_log_format`` setting), each
#: from (logger, answer, environ, request time).
_ATOMS: dict[str, Callable[[Any, _Response, dict[str, Any], datetime.timedelta], Any]] = {
    "h": lambda log, resp, env, rt: env.get("REMOTE_ADDR", "-"),
    "l": lambda log, resp, env, rt: "-",
    "u": lambda log, resp, env, rt: log._get_user(env) or "-",
    "t": lambda log, resp, env, rt: log.now(),
    "r": lambda log, resp, env, rt: (
        f"{env['REQUEST_METHOD']} {env['RAW_URI']} {env['SERVER_PROTOCOL']}"
    ),
    "s": lambda log, resp, env, rt: resp.status.split(None, 1)[0],
    "m": lambda log, resp, env, rt: env.get("REQUEST_METHOD"),
    "U": lambda log, resp, env, rt: env.get("PATH_INFO"),
    "q": lambda log, resp, env, rt: env.get("QUERY_STRING"),
    "H": lambda log, resp, env, rt: env.get("SERVER_PROTOCOL"),
    "b": lambda log, resp, env, rt: str(resp.sent),
    "B": lambda log, resp, env, rt: resp.sent,
    "f": lambda log, resp, env, rt: env.get("HTTP_REFERER", "-"),
    "a": lambda log, resp, env, rt: env.get("HTTP_USER_AGENT", "-"),
    "T": lambda log, resp, env, rt: rt.seconds,
    "D": lambda log, resp, env, rt: rt.seconds * 1_000_000 + rt.microseconds,
    "M": lambda log, resp, env, rt: rt.seconds * 1000 + rt.microseconds // 1000,
    "L": lambda log, resp, env, rt: f"{rt.seconds}.{rt.microseconds:06d}",
    "p": lambda log, resp, env, rt: f"<{os.getpid()}>",
}


def _atom(key: str) -> Callable[[Any, _Response, dict[str, Any], datetime.timedelta], Any]:
    """How to compute the atom ``key`` of an access log format (``-`` when
    gunicorn knows no such atom)."""
    if key in _ATOMS:
        return _ATOMS[key]
    name, kind = key[1:-2].lower(), key[-2:]
    if key.startswith("{") and kind == "}i" and "_" not in name:
        environ_key = "HTTP_" + name.upper().replace("-", "_")
        return lambda log, resp, env, rt: env.get(environ_key, "-")
    if key.startswith("{") and kind == "}o":
        return lambda log, resp, env, rt: (
            "-" if (value := _header(resp.headers, name)) is None else value
        )
    if key.startswith("{") and kind == "}e":
        return lambda log, resp, env, rt: (
            "-" if (value := _environ_value(env, name)) is None else value
        )
    return lambda log, resp, env, rt: "-"


class AccessLog:
    """gunicorn's access log, with only the atoms its format names computed.

    gunicorn's ``Logger.access`` builds every atom it knows (a dictionary of
    the whole environ, every request and response header) and copies them
    all before formatting a line that names nine: most of the cost of an
    access log line. This writes the same line, through the same
    ``gunicorn.access`` logger, computing the atoms the format names. A
    logger class of its own (gunicorn's ``logger_class``) keeps its
    ``access``."""

    def __init__(self, log: Any) -> None:
        self.log = log
        self.format: str = log.cfg.access_log_format
        keys = set(re.findall(r"%\(([^)]*)\)", self.format))
        self.atoms = [(key, _atom(key)) for key in keys]
        own = type(log).atoms is Logger.atoms and type(log).access is Logger.access
        self.write = self._write if own else self._write_with_gunicorn
        if not log.access_log_enabled:
            self.write = self._nothing

    def _write(self, response: _Response, environ: dict[str, Any], elapsed: float) -> None:
        request_time = datetime.timedelta(seconds=elapsed)
        atoms = {"": "-"}  # never empty: logging formats with an empty mapping
        for key, atom in self.atoms:
            value = atom(self.log, response, environ, request_time)
            atoms[key] = value.replace('"', '\\"') if isinstance(value, str) else value
        try:
            self.log.access_log.info(self.format, atoms)
        except Exception:
            self.log.error(traceback.format_exc())

    def _write_with_gunicorn(
        self, response: _Response, environ: dict[str, Any], elapsed: float
    ) -> None:
        request_time = datetime.timedelta(seconds=elapsed)
        self.log.access(response, _Request(environ), environ, request_time)

    def _nothing(self, response: _Response, environ: dict[str, Any], elapsed: float) -> None:
        pass


def access_logged(app: Callable, log: Any) -> Callable:
    """Wrap ``app`` so that every answer is written to gunicorn's access log."""
    access_log = AccessLog(log)
    errors = LoggerStream()  # holds nothing of a request: one for all

    def logged_app(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        started = time.monotonic()
        environ["wsgi.errors"] = errors
        query = environ.get("QUERY_STRING")
        environ.setdefault("RAW_URI", environ.get("PATH_INFO", "") + (f"?{query}" if query else ""))
        response = _Response()

        def recording_start_response(status: str, headers: list, exc_info: Any = None) -> Any:
            response.status = status
            response.headers = headers
            return start_response(status, headers, exc_info)

        body = app(environ, recording_start_response)
        try:
            for chunk in body:
                response.sent += len(chunk)
                yield chunk
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
            access_log.write(response, environ, time.monotonic() - started)

    return logged_app


class QuietChannel(HTTPChannel):
    """waitress's channel, minus a busy loop: once a thread has written part
    of an answer (a small body), waitress reports the socket writable until
    the thread finishes the request, although it sends nothing before that
    (below ``send_bytes`` it waits for the task); the event loop then spins,
    taking the GIL from the thread it waits for. Here the channel is not
    writable in that state: the thread wakes the loop when it finishes
    (waitress pulls its trigger at the end of every task)."""

    def writable(self) -> bool:
        if (
            self.requests
            and not (self.will_close or self.close_when_flushed)
            and self.total_outbufs_len < self.adj.send_bytes
        ):
            return False
        return bool(super().writable())


class LimitedParser(HTTPRequestParser):
    """waitress's request parser with the body limit applied the service's way.

    A request that declares a ``Content-Length`` above ``body_limit`` is handed
    to the application without its body (``wsgi.input`` is empty and the
    connection is closed after the answer): each service refuses it from the
    declared length with its own answer (the collector's Antenna-compatible
    413 text, the others' JSON). A chunked body growing past the limit is
    answered 413 by waitress."""

    body_limit = _UNBOUNDED

    def parse_header(self, header_plus: bytes) -> None:
        super().parse_header(header_plus)
        if not self.chunked and self.content_length > self.body_limit:
            self.body_rcv = None
            self.headers["CONNECTION"] = "close"

    def received(self, data: bytes) -> int:
        consumed = super().received(data)
        if self.chunked and not self.completed and self.body_bytes_received > self.body_limit:
            self.error = RequestEntityTooLarge(f"exceeds max_body of {self.body_limit}")
            self.completed = True
        return consumed


class CoalescingTask(WSGITask):
    """waitress's WSGI task, except that the response head is sent with the
    first piece of the body: one ``send`` (one TCP segment for a small
    answer) instead of two. The head is held by the channel until then, and
    sent alone when there is no body (``HEAD``, 204, an empty answer)."""

    def build_response_header(self) -> bytes:
        self.channel.held_head = super().build_response_header()
        return b""  # what waitress writes now: nothing, the head waits

    def finish(self) -> None:
        super().finish()
        self.channel.send_held_head()


class CoalescingChannel(QuietChannel):
    """waitress's channel, sending a held response head with the next bytes
    written (see :class:`CoalescingTask`)."""

    task_class = CoalescingTask
    held_head = b""

    def write_soon(self, data: Any) -> int:
        head = self.held_head
        if head and data:
            self.held_head = b""
            if isinstance(data, bytes):
                return super().write_soon(head + data) - len(head)
            super().write_soon(head)  # a file wrapper: the head first, then it
        return super().write_soon(data)

    def send_held_head(self) -> None:
        head, self.held_head = self.held_head, b""
        if head:
            super().write_soon(head)


class EveryFewSeconds(logging.Filter):
    """Lets one record through every ``interval`` seconds; the next one let
    through says how many were held back (its ``suppressed`` field).

    waitress warns ``Task queue depth is N`` for every request that arrives
    while the worker's threads are busy: under this worker, which reads
    whole requests and queues them by design, that is every request of a
    busy worker, and its log line cost a good part of what the request did."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval = interval
        self.clock = clock
        self.next_time = 0.0
        self.suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        now = self.clock()
        if now < self.next_time:
            self.suppressed += 1
            return False
        self.next_time = now + self.interval
        if self.suppressed:
            record.suppressed = self.suppressed
            self.suppressed = 0
        return True


#: Seconds between two of waitress's ``Task queue depth`` warnings.
QUEUE_WARNING_INTERVAL = 10.0


def worker_options() -> dict[str, Any]:
    """The options of the worker as read by the service's gunicorn conf file."""
    from tecken_shared.gunicorn_conf import WORKER_DEFAULTS, WORKER_OPTIONS

    return {**WORKER_DEFAULTS, **WORKER_OPTIONS}


class BufferingWorker(Worker):
    """gunicorn worker: waitress reads whole requests, threads run the app."""

    def run(self) -> None:
        options = worker_options()
        self.read_timeout = float(options["request_read_timeout"])
        self.stall_timeout = float(options["request_stall_timeout"])
        self.timeout_answer = timeout_answer(
            options["timeout_body"] or TIMEOUT_BODY, options["timeout_content_type"]
        )
        self.socket_map: dict[int, Any] = {}
        logging.getLogger("waitress.queue").addFilter(EveryFewSeconds(QUEUE_WARNING_INTERVAL))
        allowed = list(self.cfg.forwarded_allow_ips or [])
        proxy = "*" if "*" in allowed else (allowed[0] if allowed else None)
        self.server = create_server(
            access_logged(self.wsgi, self.log),
            map=self.socket_map,
            sockets=[listener.sock for listener in self.sockets],
            threads=max(1, self.cfg.threads),
            connection_limit=int(options["connection_limit"]),
            channel_timeout=int(options["idle_timeout"]),
            cleanup_interval=1,
            max_request_body_size=_UNBOUNDED,
            max_request_header_size=int(options["max_request_header_size"]),
            inbuf_overflow=int(options["inbuf_overflow"]),
            trusted_proxy=proxy,
            trusted_proxy_headers={"x-forwarded-proto"} if proxy else set(),
            clear_untrusted_proxy_headers=False,
            ident="",
            expose_tracebacks=False,
            asyncore_use_poll=True,
            recv_bytes=RECV_BYTES,
        )
        parser = type("Parser", (LimitedParser,), {"body_limit": options["max_request_body_size"]})
        channel = type("Channel", (CoalescingChannel,), {"parser_class": parser})
        for obj in self.socket_map.values():
            if isinstance(obj, BaseWSGIServer):
                obj.channel_class = channel
        self.reading_since: dict[tuple[int, int], float] = {}
        housekeeping = 0.0
        while self.alive:
            wasyncore.loop(timeout=HOUSEKEEPING, map=self.socket_map, use_poll=True, count=1)
            now = time.monotonic()
            if now < housekeeping:
                continue  # busy: housekeeping at most every HOUSEKEEPING seconds
            housekeeping = now + HOUSEKEEPING
            self.notify()
            if self.ppid != os.getppid():
                self.log.info("Parent changed, shutting down: %s", self)
                break
            self.enforce_read_deadline(now)
        self.shut_down()

    def channels(self) -> list[HTTPChannel]:
        return [obj for obj in list(self.socket_map.values()) if isinstance(obj, HTTPChannel)]

    def enforce_read_deadline(self, now: float) -> None:
        """Answer 408 and close every connection that has been sending one
        request for longer than ``request_read_timeout``, or has sent nothing
        of it for ``request_stall_timeout`` (when above 0)."""
        wall = time.time()
        reading: dict[tuple[int, int], float] = {}
        for channel in self.channels():
            if channel.request is None or channel.requests:
                continue  # idle (idle_timeout applies) or its request is being served
            key = (id(channel), id(channel.request))  # a new request starts afresh
            since = self.reading_since.get(key, now)
            reading[key] = since
            stalled = 0 < self.stall_timeout < wall - channel.last_activity
            if stalled or now - since > self.read_timeout:
                reading.pop(key)
                self.log.info("request not received in time: 408")
                try:
                    channel.socket.send(self.timeout_answer)
                except OSError:
                    pass
                channel.handle_close()
        self.reading_since = reading

    def shut_down(self) -> None:
        """Stop accepting, let the requests in flight finish within
        ``graceful_timeout``, then stop the threads."""
        for obj in list(self.socket_map.values()):
            if isinstance(obj, BaseWSGIServer):
                obj.del_channel()
                try:
                    obj.socket.close()
                except OSError:
                    pass
        limit = time.monotonic() + self.cfg.graceful_timeout
        while time.monotonic() < limit and any(c.requests for c in self.channels()):
            self.notify()
            wasyncore.loop(timeout=0.2, map=self.socket_map, use_poll=True, count=1)
        dispatcher = getattr(self.server, "task_dispatcher", None)
        if dispatcher is not None:
            dispatcher.shutdown(timeout=1)
        wasyncore.close_all(self.socket_map)


__all__ = ["AccessLog", "BufferingWorker", "EveryFewSeconds", "access_logged", "worker_options"]
