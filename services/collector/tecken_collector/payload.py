# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Parsing a crash submission: headers, size limits, optional gzip (decompressed
as a stream, with a cap), and the multipart body (annotations as text parts or
one JSON part, dumps as file parts). Bodies up to ``parse_in_memory_max`` are
split in memory (:mod:`tecken_collector.framing`), bigger ones by Falcon's
streaming parser. Dumps go into spool files that stay in memory only up to a
small per-request budget."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO

import falcon
from everett.manager import ConfigManager
from falcon.media.multipart import (
    BodyPart,
    MultipartForm,
    MultipartParseError,
    MultipartParseOptions,
)
from falcon.util.reader import BufferedReader

from tecken_collector.framing import MemoryStream, PlainPart, iter_parts
from tecken_collector.settings import LimitsConfig, option_default, read_options

ALLOWED_CONTENT_TYPES = ("multipart/form-data", "multipart/mixed")
RESERVED_DUMP_NAMES = ("dump_names", "processed_crash", "raw_crash")
DUMP_NAME_MAX = 30
CHUNK = 64 * 1024
#: check_headers' content length for a chunked body (Transfer-Encoding: chunked).
CHUNKED = -1
RAW_BUFFER = 256 * 1024
_NOT_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_]")


class MalformedCrash(Exception):
    """The submission cannot be used; ``reason`` goes in ``Discarded=malformed_<reason>``."""

    def __init__(self, reason: str, status: str = falcon.HTTP_400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class _BadGzip(Exception):
    pass


class _TooLarge(Exception):
    pass


def sanitize_dump_name(name: str) -> str:
    """Keep ASCII letters, digits and ``_``; at most 30 characters."""
    return _NOT_NAME_CHARS.sub("", name)[:DUMP_NAME_MAX]


@dataclass
class Dump:
    """One dump of a crash: spooled to ``file``, or, when the whole body was
    read into memory, ``view``, its bytes in the body (no copy)."""

    name: str
    file: IO[bytes] | None
    size: int
    sha256: str
    view: memoryview | None = None

    def open(self) -> BinaryIO:
        """The dump's bytes from the start (the spool file itself, rewound)."""
        if self.view is not None:
            return io.BytesIO(self.view)
        assert self.file is not None
        self.file.seek(0)
        return self.file  # type: ignore[return-value]

    def read(self) -> bytes:
        return self.open().read()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        self.view = None


@dataclass
class ParsedCrash:
    annotations: dict[str, Any]
    dumps: dict[str, Dump]
    notes: list[str] = field(default_factory=list)
    payload: str = "multipart"
    payload_compressed: bool = False
    payload_size: int = 0
    decompressed_size: int | None = None
    gzip_ms: float | None = None

    def close(self) -> None:
        for dump in self.dumps.values():
            dump.close()


class GunzipReader:
    """A read()-able view of a gzip stream, decompressed incrementally; raises
    _TooLarge past ``max_size`` decompressed bytes and _BadGzip on corrupt or
    truncated input."""

    def __init__(self, raw: Callable[[int], bytes], max_size: int) -> None:
        self.raw = raw
        self.max_size = max_size
        self.decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self.total = 0
        self.pending = b""
        self.finished = False

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = CHUNK
        while not self.finished:
            if self.pending:
                data = self.decompressor.decompress(self.pending, size)
                self.pending = self.decompressor.unconsumed_tail
            else:
                chunk = self.raw(CHUNK)
                if not chunk:
                    if not self.decompressor.eof:
                        raise _BadGzip("truncated gzip stream")
                    self.finished = True
                    break
                try:
                    data = self.decompressor.decompress(chunk, size)
                except zlib.error as exc:
                    raise _BadGzip(str(exc)) from exc
                self.pending = self.decompressor.unconsumed_tail
            if self.decompressor.eof:
                # Anything after the gzip member (a second member, garbage) is ignored.
                self.finished = True
            if data:
                self.total += len(data)
                if self.total > self.max_size:
                    raise _TooLarge(f"more than {self.max_size} bytes after decompression")
                return data
        return b""

    def drain(self) -> None:
        """Read to the end, checking the gzip trailer."""
        while self.read(CHUNK):
            pass


def _default(key: str) -> Any:
    return option_default(LimitsConfig, key)


@dataclass(frozen=True)
class PayloadLimits:
    """The limits of one submission: one field per option of
    :class:`~tecken_collector.settings.LimitsConfig` (same name, same default,
    both written only there)."""

    max_request_size: int = _default("max_request_size")
    max_decompressed_size: int = _default("max_decompressed_size")
    max_annotations_size: int = _default("max_annotations_size")
    parse_in_memory_max: int = _default("parse_in_memory_max")
    spool_memory_size: int = _default("spool_memory_size")
    spool_memory_total: int = _default("spool_memory_total")
    spool_dir: str = _default("spool_dir")  # empty: the system temporary directory
    max_dumps: int = _default("max_dumps")
    read_timeout: float = _default("read_timeout")
    accept_chunked: bool = _default("accept_chunked")

    @classmethod
    def from_config(cls, manager: ConfigManager) -> PayloadLimits:
        return read_options(manager, LimitsConfig, cls)


def check_headers(req: falcon.Request, limits: PayloadLimits) -> tuple[bytes, int]:
    """Validate Content-Type, Content-Length and the size limit; returns the
    boundary and the content length."""
    content_type = req.get_header("Content-Type")
    if not content_type:
        raise MalformedCrash("no_content_type")
    mimetype, _, params = content_type.partition(";")
    if mimetype.strip().lower() not in ALLOWED_CONTENT_TYPES:
        raise MalformedCrash("wrong_content_type")
    params = params.strip()
    if not params.lower().startswith("boundary="):
        raise MalformedCrash("no_boundary")
    _, options = falcon.parse_header(content_type)
    boundary = (options.get("boundary") or "").rstrip()
    if not 1 <= len(boundary) <= 70:
        raise MalformedCrash("no_boundary")
    # req.content_length raises falcon.HTTPInvalidHeader (400) on a non-integer value.
    length = req.content_length
    if not length:
        chunked = "chunked" in (req.get_header("Transfer-Encoding") or "").lower()
        if chunked and limits.accept_chunked and length is None:
            return boundary.encode("ascii", "replace"), CHUNKED
        raise MalformedCrash("no_content_length")
    if length > limits.max_request_size:
        raise MalformedCrash("payload_too_large", falcon.HTTP_413)
    return boundary.encode("ascii", "replace"), length


def _multipart_options(limits: PayloadLimits) -> MultipartParseOptions:
    options = MultipartParseOptions()
    options.max_body_part_buffer_size = limits.max_annotations_size
    options.max_body_part_count = 0
    options.default_charset = "utf-8"
    return options


def parse_crash(
    req: falcon.Request,
    limits: PayloadLimits,
    *,
    boundary: bytes,
    content_length: int,
) -> ParsedCrash:
    """Parse the body of a crash submission; raises MalformedCrash."""
    compressed = req.get_header("Content-Encoding") == "gzip"
    chunked = content_length == CHUNKED
    # A chunked body's length is known only once read: read one byte past the limit.
    raw_input = _BoundedInput(
        req.stream, limits.max_request_size + 1 if chunked else content_length
    )
    read_raw: Callable[[int], bytes]
    whole: bytes | None = None
    if not chunked and content_length <= limits.parse_in_memory_max:
        # A typical crash report: the whole body in one read (one copy), no
        # buffering layers; split as it is unless it needs gunzipping.
        whole = _read_whole(req.stream, content_length)
        read_raw = io.BytesIO(whole).read
    else:
        read_raw = io.BufferedReader(raw_input, RAW_BUFFER).read
    if chunked:
        read_raw = _size_checked(read_raw, raw_input, limits.max_request_size)
    options = _multipart_options(limits)
    gunzip: GunzipReader | None = None
    source = read_raw
    if compressed:
        gunzip = GunzipReader(read_raw, limits.max_decompressed_size)
        source = gunzip.read

    crash = ParsedCrash(
        annotations={},
        dumps={},
        payload_compressed=compressed,
        payload_size=content_length,
    )
    start = time.perf_counter()
    try:
        # Bodies up to parse_in_memory_max are read whole and split in memory
        # (fast); bigger ones are parsed as a stream, starting with what was read.
        head: bytes | bytearray
        if whole is not None and gunzip is None:
            head, complete = whole, True
        else:
            head, complete = _read_up_to(source, limits.parse_in_memory_max)
        parts: Iterable[BodyPart | PlainPart]
        if complete:
            parts = iter_parts(head, boundary, options)
        else:
            reader = BufferedReader(_Prefixed(head, source).read, limits.max_decompressed_size + 1)
            parts = MultipartForm(reader, boundary, None, options)
        _read_parts(parts, crash, limits)
        if gunzip is not None:
            gunzip.drain()
            crash.decompressed_size = gunzip.total
    except _BadGzip as exc:
        crash.close()
        raise MalformedCrash("bad_gzip") from exc
    except _TooLarge as exc:
        crash.close()
        raise MalformedCrash("decompressed_too_large", falcon.HTTP_413) from exc
    except MalformedCrash:
        crash.close()
        raise
    except MultipartParseError as exc:
        crash.close()
        raise MalformedCrash("invalid_payload_structure") from exc
    except BaseException:
        crash.close()
        raise
    if gunzip is not None:
        crash.gzip_ms = (time.perf_counter() - start) * 1000
    if chunked:
        crash.payload_size = raw_input.consumed

    if not crash.annotations:
        crash.close()
        raise MalformedCrash("no_annotations")
    return crash


class _BoundedInput(io.RawIOBase):
    """At most ``length`` bytes of the WSGI input, as a raw stream (wrapped in a
    C-level io.BufferedReader, so the many small reads of the multipart parser
    do not each reach the server's input object)."""

    def __init__(self, stream: Any, length: int) -> None:
        self.stream = stream
        self.remaining = length
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.remaining <= 0:
            return 0
        size = min(len(buffer), self.remaining)
        data = self.stream.read(size)
        n = len(data)
        if not n:
            self.remaining = 0
            return 0
        buffer[:n] = data
        self.remaining -= n
        self.consumed += n
        return n


def _read_whole(stream: Any, length: int) -> bytes:
    """``length`` bytes of ``stream`` (fewer if it ends first), read with as
    few calls as the server's input allows."""
    data = stream.read(length)
    if len(data) >= length or not data:
        return data
    chunks = [data]
    remaining = length - len(data)
    while remaining > 0:
        chunk = stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _size_checked(
    read: Callable[[int], bytes], raw: _BoundedInput, limit: int
) -> Callable[[int], bytes]:
    """``read``, raising MalformedCrash(payload_too_large) once more than
    ``limit`` bytes came in (a chunked body has no Content-Length to check)."""

    def checked(size: int = -1) -> bytes:
        data = read(size)
        if raw.consumed > limit:
            raise MalformedCrash("payload_too_large", falcon.HTTP_413)
        return data

    return checked


def _read_up_to(read: Callable[[int], bytes], limit: int) -> tuple[bytearray, bool]:
    """Read until EOF or past ``limit`` bytes; returns (bytes, reached EOF)."""
    buf = bytearray()
    while len(buf) <= limit:
        chunk = read(min(CHUNK * 4, limit + 1 - len(buf)))
        if not chunk:
            return buf, True
        buf += chunk
    return buf, False


class _Prefixed:
    """``read()`` of ``head`` followed by the rest of ``source``."""

    def __init__(self, head: bytes | bytearray, source: Callable[[int], bytes]) -> None:
        self.head = memoryview(head)
        self.source = source

    def read(self, size: int = -1) -> bytes:
        if self.head:
            n = len(self.head) if size is None or size < 0 else size
            data = bytes(self.head[:n])
            self.head = self.head[n:]
            return data
        return self.source(size)


def _read_parts(
    parts: Iterable[BodyPart | PlainPart], crash: ParsedCrash, limits: PayloadLimits
) -> None:
    has_json = False
    has_kv = False
    annotations_size = 0
    in_memory = 0
    for part in parts:
        try:
            name = part.name
            if not name:
                # Parts without a name are dropped (the stream is skipped by the parser).
                continue
            content_type = part.content_type
            filename = part.filename
        except UnicodeDecodeError as exc:
            # Part headers that are not UTF-8 (names) or ASCII (content types).
            raise MultipartParseError(description="undecodable part headers") from exc
        mimetype = content_type.split(";", 1)[0].strip().lower()
        if mimetype == "application/json":
            data = part.get_data()
            annotations_size += len(data)
            if annotations_size > limits.max_annotations_size:
                raise MultipartParseError(description="annotations are too large")
            try:
                value = json.loads(data.decode("utf-8"))
            except (ValueError, RecursionError) as exc:
                raise MalformedCrash("invalid_json") from exc
            if not isinstance(value, dict):
                raise MalformedCrash("invalid_json_value")
            crash.annotations = value
            crash.payload = "json"
            has_json = True
        elif mimetype == "text/plain" and filename is None:
            data = part.get_data()
            annotations_size += len(data)
            if annotations_size > limits.max_annotations_size:
                raise MultipartParseError(description="annotations are too large")
            try:
                text = part.get_text()
            except MultipartParseError as exc:
                crash.notes.append(f"extract payload text part exception: {exc.description}")
                continue
            crash.annotations[name] = text
            has_kv = True
        else:
            dump_name = sanitize_dump_name(name)
            if dump_name in RESERVED_DUMP_NAMES or not dump_name:
                raise MalformedCrash("invalid_dump_name")
            if dump_name not in crash.dumps and len(crash.dumps) >= limits.max_dumps:
                # Each dump is a file (and a directory) on disk.
                raise MalformedCrash("too_many_dumps")
            if mimetype != "application/octet-stream":
                crash.notes.append(f"unknown content type: {dump_name} {content_type}")
            old = crash.dumps.pop(dump_name, None)
            if old is not None:
                old.close()
            if isinstance(part.stream, MemoryStream):
                # The body is in memory already: the dump is a view into it.
                view = part.stream.rest()
                digest = hashlib.sha256(view)
                crash.dumps[dump_name] = Dump(dump_name, None, len(view), digest.hexdigest(), view)
                continue
            memory = limits.spool_memory_size if in_memory < limits.spool_memory_total else 0
            spool: IO[bytes]
            if memory:
                spool = tempfile.SpooledTemporaryFile(
                    max_size=memory, dir=limits.spool_dir or None, prefix="tecken-dump-"
                )
            else:
                spool = tempfile.TemporaryFile(dir=limits.spool_dir or None, prefix="tecken-dump-")
            digest = hashlib.sha256()
            size = 0
            try:
                while chunk := part.stream.read(CHUNK):
                    spool.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
            except BaseException:
                spool.close()
                raise
            if size <= memory:
                in_memory += size
            crash.dumps[dump_name] = Dump(dump_name, spool, size, digest.hexdigest())
    if has_json and has_kv:
        crash.notes.append("includes annotations in both json-encoded extra and formdata parts")
