# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Receiving an archive into a temporary file and validating its members.

Nothing is extracted: members are read straight out of the zip by the
workers that store them, so disk use is the archive itself and memory stays
bounded whatever the archive size."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO

from tecken_symbols.upload.config import UploadSettings
from tecken_symbols.upload.errors import UploadError

CHUNK = 1024 * 1024

# One key component: no control characters, nothing outside ASCII, none of
# S3's "characters to avoid" and no slash (spec 1.1).
KEYCHARS = r"[^\x00-\x1f\x80-\U0010ffff\\^`><{}\[\]#%\"'|/]+"
KEY_RE = re.compile(rf"({KEYCHARS})/([0-9A-Fa-f]+)/({KEYCHARS})")
# Key components no storage can hold (the filesystem backend's metadata
# directory included): refused at the door with a 400, not a 503 later.
RESERVED_PARTS = frozenset({".", "..", ".tecken-meta"})
# What reading a damaged or unsupported member raises (deflate64 is
# NotImplementedError, an encrypted member RuntimeError, a bad offset OSError).
UNREADABLE = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    NotImplementedError,
    RuntimeError,
    OSError,
    ValueError,
)
SUPPORTED_METHODS = frozenset(
    {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
)


def key_problem(parts: tuple[str, ...] | list[str]) -> str | None:
    """Why a ``<debug_file>/<debug_id>/<file>`` key can't be stored (None if it can)."""
    for part in parts:
        if part in RESERVED_PARTS:
            return f"'{part}' is not allowed as a path component"
        if len(part) > MAX_KEY_PART:
            return f"a path component is longer than {MAX_KEY_PART} characters"
    return None


def member_problem(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> str | None:
    """Why the member can't be read (encrypted, an unsupported compression,
    a damaged local header); None when it opens."""
    if info.flag_bits & 0x1:
        return "it is encrypted; upload an archive without a password"
    if info.compress_type not in SUPPORTED_METHODS:
        return (
            f"it uses compression method {info.compress_type}, which is not supported "
            "(use deflate or store)"
        )
    try:
        with zf.open(info):
            pass
    except UNREADABLE as exc:
        return f"it cannot be read ({exc}); the archive is damaged"
    return None


# Longest key part a filesystem stores (NAME_MAX); three such parts stay well
# under S3's 1024-byte keys.
MAX_KEY_PART = 255

PATTERN_ERROR = (
    "Unrecognized file pattern. Should only be <module>/<hex>/<file> or "
    "<name>-symbols.txt and nothing else. (First unrecognized pattern was '{name}')"
)


@dataclass
class Member:
    """One file of the archive that will be stored (or ignored)."""

    name: str  # the name inside the zip
    key: str  # the storage key (debug id upper-cased)
    size: int
    info: zipfile.ZipInfo | None = None
    ignored: bool = False

    @property
    def debug_filename(self) -> str:
        return self.key.split("/")[0]

    @property
    def debug_id(self) -> str:
        return self.key.split("/")[1]

    @property
    def filename(self) -> str:
        return self.key.split("/")[2]


@dataclass
class Archive:
    path: str
    size: int
    members: list[Member] = field(default_factory=list)

    @property
    def to_store(self) -> list[Member]:
        return [m for m in self.members if not m.ignored]

    @property
    def ignored_keys(self) -> list[str]:
        return [m.name for m in self.members if m.ignored]

    @property
    def content_hash(self) -> str:
        """First 30 hex chars of md5 over the sorted ``name:size`` lines (Tecken's)."""
        lines = sorted(f"{m.name}:{m.size}" for m in self.members)
        return hashlib.md5("\n".join(lines).encode()).hexdigest()[:30]


def check_archive_name(name: str) -> None:
    if not name.lower().endswith(".zip"):
        ext = os.path.splitext(name)[1]
        raise UploadError(f'Unrecognized archive file extension "{ext}"')


def spool_stream(
    stream: BinaryIO, directory: str, max_size: int, expected: int | None = None
) -> tuple[str, int]:
    """Copy ``stream`` into a new temporary file in ``directory`` in 1 MiB chunks;
    returns (path, size). 413 once more than ``max_size`` bytes arrive. The caller
    removes the file."""
    if expected is not None and expected > max_size:
        raise UploadError(f"Archive too large ({expected} bytes; the limit is {max_size})", 413)
    fd, path = tempfile.mkstemp(dir=directory, prefix="upload-", suffix=".zip")
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if size > max_size:
                    raise UploadError(f"Archive too large (over {max_size} bytes, the limit)", 413)
                out.write(chunk)
    except BaseException:
        os.unlink(path)
        raise
    return path, size


def _is_ignorable(name: str) -> bool:
    if "/" not in name and name.lower().endswith("-symbols.txt"):
        return True
    return name.rsplit("/", 1)[-1] == ".DS_Store"


def _leaves_archive(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return name.startswith("/") or ".." in parts or bool(re.match(r"^[A-Za-z]:", name))


def read_archive(path: str, size: int, settings: UploadSettings) -> Archive:
    """Open the zip at ``path`` and validate every member name (spec 2.2 steps
    2-5 plus our fixes). Raises UploadError; never extracts anything."""
    try:
        with zipfile.ZipFile(path) as zf:
            return _read_members(zf, path, size, settings)
    except zipfile.BadZipFile as exc:
        raise UploadError(str(exc) or "File is not a zip file") from exc
    except UNREADABLE as exc:
        raise UploadError(f"File is not a zip file ({exc})") from exc


def _read_members(zf: zipfile.ZipFile, path: str, size: int, settings: UploadSettings) -> Archive:
    infos = zf.infolist()

    # Duplicates: allowed with equal sizes; the last one wins.
    by_name: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        if info.is_dir():
            continue
        previous = by_name.get(info.filename)
        if previous is not None and previous.file_size != info.file_size:
            raise UploadError(
                f"The zipfile buffer contains two files both called {info.filename} and "
                f"they have difference sizes ({info.file_size} != {previous.file_size})"
            )
        by_name[info.filename] = info

    if not by_name:
        raise UploadError("The archive contains no files (an empty zip uploads nothing)")
    if len(by_name) > settings.max_files:
        raise UploadError(
            f"The archive holds {len(by_name)} files; the limit is {settings.max_files}", 413
        )
    total = sum(info.file_size for info in by_name.values())
    if total > settings.max_extracted_size:
        raise UploadError(
            f"The archive expands to {total} bytes; the limit is {settings.max_extracted_size}",
            413,
        )

    members = []
    for name, info in by_name.items():
        if _leaves_archive(name):
            raise UploadError(
                f"Archive member '{name}' has a path outside the archive (absolute or with "
                "'..'); only <module>/<hex>/<file> paths are accepted"
            )
        for snippet in settings.disallowed_snippets:
            if snippet in name:
                raise UploadError(
                    f"Content of archive file contains the snippet '{snippet}' which is not allowed"
                )
        if _is_ignorable(name):
            members.append(
                Member(name=name, key=name, size=info.file_size, info=info, ignored=True)
            )
            continue
        match = KEY_RE.fullmatch(name)
        if not match:
            raise UploadError(PATTERN_ERROR.format(name=name))
        debug_file, debug_id, filename = match.groups()
        if any(len(part) > MAX_KEY_PART for part in match.groups()):
            raise UploadError(
                f"Archive member '{name}' has a path too long to store (at most "
                f"{MAX_KEY_PART} characters per part)"
            )
        if problem := key_problem(match.groups()):
            raise UploadError(f"Archive member '{name}' cannot be stored: {problem}")
        if problem := member_problem(zf, info):
            raise UploadError(f"Archive member '{name}' cannot be used: {problem}")
        key = f"{debug_file}/{debug_id.upper()}/{filename}"
        members.append(Member(name=name, key=key, size=info.file_size, info=info))
    return Archive(path=path, size=size, members=members)
