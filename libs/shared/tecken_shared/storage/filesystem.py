# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Local-filesystem storage. Writes are atomic and durable: temp file in the
target directory, fsync, rename, fsync of the directory. Content type,
encoding and metadata go in a JSON sidecar under ``.tecken-meta/``, written
before the object appears."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import SplitResult, quote, unquote

from everett.manager import parse_bool

from tecken_shared.storage.base import (
    InvalidKey,
    ObjectInfo,
    ObjectNotFound,
    Storage,
    StorageError,
    check_key,
)

META_DIR = ".tecken-meta"
COPY_CHUNK = 1024 * 1024


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_missing_dirs(path: Path, stop: Path | None = None) -> list[Path]:
    """Create ``path`` and its missing parents (not above ``stop``); returns the
    directories whose entries changed, which need an fsync to make it durable
    (callers that batch fsyncs do them later)."""
    missing = []
    p = path
    while p != stop and not p.is_dir() and p != p.parent:
        missing.append(p)
        p = p.parent
    changed = []
    for p in reversed(missing):
        try:
            p.mkdir()
        except FileExistsError:
            continue
        changed.append(p.parent)
    return changed


def makedirs_durable(path: Path) -> None:
    """Create ``path`` and fsync the parent of each directory it creates."""
    for parent in make_missing_dirs(path):
        fsync_dir(parent)


def write_atomic(
    path: Path, data: bytes | BinaryIO, *, durable: bool = True, mode: int | None = None
) -> int:
    """Write ``data`` to ``path`` atomically; returns the number of bytes.
    Never leaves a partial file at ``path``; temp files are dot-files. The
    file is mode 0600 (as ``mkstemp`` makes it) unless ``mode`` is given."""
    makedirs_durable(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    size = 0
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(data, bytes | bytearray | memoryview):
                f.write(data)
                size = len(data)
            else:
                while chunk := data.read(COPY_CHUNK):
                    f.write(chunk)
                    size += len(chunk)
            f.flush()
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
        if durable:
            fsync_dir(path.parent)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return size


def parse_mode(value: str) -> int:
    """An octal file mode such as ``644`` or ``0644`` (permission bits only)."""
    mode = int(value, 8)
    if not 0 <= mode <= 0o777:
        raise ValueError(f"file mode {value!r} is not between 000 and 777")
    return mode


class FilesystemStorage(Storage):
    cheap_exists = True

    @classmethod
    def from_url(cls, url: str, parts: SplitResult, params: dict[str, str]) -> FilesystemStorage:
        path = unquote(parts.path)
        if parts.netloc not in ("", "localhost"):
            # file://relative/dir: accept as a path relative to the cwd.
            path = parts.netloc + path
        if not path:
            raise ValueError(f"storage URL {url!r} has no path")
        return cls(
            path,
            public_url_base=params.get("public_url", ""),
            durable=parse_bool(params.get("durable", "true")),
            file_mode=parse_mode(params["mode"]) if params.get("mode") else None,
        )

    @property
    def has_public_url(self) -> bool:
        return bool(self.public_url_base)

    def __init__(
        self,
        root: str | Path,
        public_url_base: str = "",
        durable: bool = True,
        file_mode: int | None = None,
    ) -> None:
        #: Mode of stored objects (``?mode=644`` in the URL, e.g. for a web
        #: server running as another user); None keeps mkstemp's 0600.
        self.file_mode = file_mode
        self.root = Path(root).resolve()
        self.public_url_base = public_url_base.rstrip("/")
        self.durable = durable
        self.name = f"file://{self.root}"

    def _path(self, key: str) -> Path:
        check_key(key)
        if key.split("/")[0] == META_DIR:
            raise InvalidKey(f"invalid storage key {key!r}: {META_DIR} is reserved")
        return self.root / key

    def _meta_path(self, key: str) -> Path:
        return self.root / META_DIR / (key + ".json")

    def _error(self, action: str, key: str, exc: OSError) -> StorageError:
        reason = errno.errorcode.get(exc.errno or 0, "")
        # No local path in the message: it reaches API answers and records.
        detail = exc.strerror or str(exc)
        return StorageError(f"filesystem storage: cannot {action} {key!r}: {reason} {detail}")

    def metadata(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            return None
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                # A name no file here can have (S3 would just say 404).
                return None
            raise self._error("stat", key, exc) from exc
        if not path.is_file():
            return None
        meta: dict = {}
        try:
            meta = json.loads(self._meta_path(key).read_text())
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            raise StorageError(f"{self.name}: unreadable metadata for {key!r}: {exc}") from exc
        return ObjectInfo(
            key=key,
            size=st.st_size,
            content_type=meta.get("content_type"),
            content_encoding=meta.get("content_encoding"),
            cache_control=meta.get("cache_control"),
            metadata=meta.get("metadata") or {},
            last_modified=datetime.fromtimestamp(st.st_mtime, tz=UTC),
        )

    def put(
        self,
        key: str,
        data: bytes | BinaryIO,
        *,
        content_type: str | None = None,
        content_encoding: str | None = None,
        cache_control: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        path = self._path(key)
        meta = {
            k: v
            for k, v in {
                "content_type": content_type,
                "content_encoding": content_encoding,
                "cache_control": cache_control,
                "metadata": metadata or None,
            }.items()
            if v
        }
        try:
            meta_path = self._meta_path(key)
            if meta:
                write_atomic(meta_path, json.dumps(meta).encode(), durable=self.durable)
            elif meta_path.exists():
                meta_path.unlink()
            write_atomic(path, data, durable=self.durable, mode=self.file_mode)
        except OSError as exc:
            raise self._error("write", key, exc) from exc

    def open(self, key: str) -> BinaryIO:
        path = self._path(key)
        try:
            return path.open("rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise ObjectNotFound(f"{self.name}: no object {key!r}") from exc
        except OSError as exc:
            raise self._error("read", key, exc) from exc

    def delete(self, key: str) -> bool:
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError as exc:
            raise self._error("delete", key, exc) from exc
        try:
            self._meta_path(key).unlink()
        except FileNotFoundError:
            pass
        return True

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        # Walk from the deepest directory the prefix names completely.
        base_dir = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self.root / base_dir if base_dir else self.root
        if not start.is_dir():
            return
        keys = []
        for dirpath, dirnames, filenames in os.walk(start):
            rel_dir = os.path.relpath(dirpath, self.root)
            if rel_dir == ".":
                dirnames[:] = [d for d in dirnames if d != META_DIR]
                rel_dir = ""
            for name in filenames:
                if name.startswith(".") and name.endswith(".tmp"):
                    continue
                key = f"{rel_dir}/{name}" if rel_dir else name
                if key.startswith(prefix):
                    keys.append(key)
        for key in sorted(keys):
            info = self.metadata(key)
            if info is not None:
                yield info

    def public_url(self, key: str) -> str:
        check_key(key)
        if not self.public_url_base:
            raise StorageError(f"{self.name}: no public URL base configured")
        return f"{self.public_url_base}/{quote(key)}"

    def check(self) -> None:
        probe = f"{META_DIR}-heartbeat-{uuid.uuid4().hex}"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            write_atomic(self.root / probe, b"ok", durable=False)
            (self.root / probe).unlink()
        except OSError as exc:
            raise self._error("write", probe, exc) from exc

    def clear(self) -> None:
        """Delete everything (tests and local resets only)."""
        shutil.rmtree(self.root, ignore_errors=True)
