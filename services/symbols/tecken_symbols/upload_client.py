# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""``tecken-upload-symbols``: upload a symbols directory or zip to a Tecken
symbols server, for build systems.

    TECKEN_AUTH_TOKEN=... tecken-upload-symbols --url https://symbols.example.com dist/symbols/

A directory is zipped first (into a temporary file). The zip is streamed (never
held in memory). 5xx answers, 429 and connection errors are retried with
exponential backoff; any other failure exits non-zero with the server's
message. On success the server's summary is printed as JSON on stdout."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
import zipfile
from pathlib import Path
from typing import BinaryIO

import requests

DEFAULT_URL = "http://localhost:3000"
TOKEN_ENV = "TECKEN_AUTH_TOKEN"
RETRY_STATUSES = {429, 500, 502, 503, 504}


class UploadFailed(Exception):
    pass


def zip_directory(directory: Path, dest: BinaryIO) -> int:
    """Zip every file under ``directory`` (paths relative to it); returns the count."""
    count = 0
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(directory).as_posix())
                count += 1
    return count


class MultipartBody:
    """A multipart/form-data body streamed from a file: one file part (field
    name = the archive name, as the server expects) plus form fields."""

    def __init__(
        self, fileobj: BinaryIO, size: int, field: str, fields: dict[str, str], progress=None
    ):
        self.boundary = uuid.uuid4().hex
        b = self.boundary
        head = b""
        for name, value in fields.items():
            head += (
                f'--{b}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
            ).encode()
        head += (
            f'--{b}\r\nContent-Disposition: form-data; name="{field}"; filename="{field}"\r\n'
            "Content-Type: application/zip\r\n\r\n"
        ).encode()
        self.parts = [head, fileobj, f"\r\n--{b}--\r\n".encode()]
        self.length = len(head) + size + len(self.parts[2])
        self.fileobj = fileobj
        self.progress = progress
        self.sent = 0

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def __len__(self) -> int:
        return self.length

    def __iter__(self):
        self.fileobj.seek(0)
        self.sent = 0
        for part in self.parts:
            if isinstance(part, bytes):
                yield self._count(part)
            else:
                while chunk := part.read(1024 * 1024):
                    yield self._count(chunk)

    def _count(self, data: bytes) -> bytes:
        self.sent += len(data)
        if self.progress:
            self.progress(self.sent, self.length)
        return data


def terminal_progress(stream=sys.stderr):
    if not stream.isatty():
        return None
    last = [0.0]

    def show(sent: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] < 0.2 and sent < total:
            return
        last[0] = now
        pct = 100 * sent / total if total else 100
        stream.write(f"\ruploading {sent / 1e6:8.1f} / {total / 1e6:.1f} MB ({pct:5.1f}%)")
        if sent >= total:
            stream.write("\n")
        stream.flush()

    return show


def upload(
    url: str,
    token: str,
    archive: Path,
    *,
    try_symbols: bool = False,
    retries: int = 5,
    backoff: float = 2.0,
    timeout: float = 900,
    log=print,
    progress=None,
) -> dict:
    """POST ``archive`` to ``url``/upload/; returns the server's JSON summary."""
    endpoint = url.rstrip("/") + "/upload/"
    size = archive.stat().st_size
    fields = {"try": "true"} if try_symbols else {}
    attempt = 0
    while True:
        attempt += 1
        with archive.open("rb") as f:
            body = MultipartBody(f, size, archive.name, fields, progress)
            headers = {
                "Auth-Token": token,
                "Content-Type": body.content_type,
                "Content-Length": str(len(body)),
                "User-Agent": "tecken-upload-symbols",
            }
            try:
                resp = requests.post(endpoint, data=body, headers=headers, timeout=(10, timeout))
            except requests.exceptions.RequestException as exc:
                problem = f"connection error: {exc}"
                resp = None
        if resp is not None:
            if resp.status_code in (200, 201):
                return resp.json()
            try:
                message = resp.json().get("error") or resp.text
            except ValueError:
                message = resp.text[:500]
            problem = f"HTTP {resp.status_code}: {message}"
            if resp.status_code not in RETRY_STATUSES:
                raise UploadFailed(problem)
        if attempt > retries:
            raise UploadFailed(f"giving up after {attempt} attempts; last: {problem}")
        delay = backoff * 2 ** (attempt - 1)
        if resp is not None and resp.status_code == 429:
            retry_after = resp.headers.get("Retry-After", "")
            if retry_after.isdigit():
                delay = max(delay, int(retry_after))
        log(f"attempt {attempt} failed ({problem}); retrying in {delay:.1f}s")
        time.sleep(delay)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tecken-upload-symbols",
        description="Upload a symbols directory (<module>/<debug id>/<file> layout) or a zip "
        "of one to a Tecken symbols server.",
    )
    parser.add_argument("path", type=Path, help="a symbols directory or a .zip")
    parser.add_argument(
        "--url",
        default=os.environ.get("TECKEN_URL", DEFAULT_URL),
        help=f"server base URL (env TECKEN_URL; default {DEFAULT_URL})",
    )
    parser.add_argument(
        "--token-env",
        default=TOKEN_ENV,
        help=f"environment variable holding the API token (default {TOKEN_ENV})",
    )
    parser.add_argument("--try", dest="try_symbols", action="store_true", help="a try upload")
    parser.add_argument(
        "--retries", type=int, default=5, help="retries on 5xx/429/connection errors"
    )
    parser.add_argument(
        "--backoff", type=float, default=2.0, help="first retry delay in seconds (doubles)"
    )
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for the answer")
    args = parser.parse_args(argv)

    def err(msg: str) -> None:
        print(f"tecken-upload-symbols: {msg}", file=sys.stderr)

    token = os.environ.get(args.token_env, "").strip()
    if not token:
        err(f"no API token: set {args.token_env}")
        return 2
    path: Path = args.path
    if not path.exists():
        err(f"{path} does not exist")
        return 2
    tmpdir = None
    try:
        if path.is_dir():
            tmpdir = tempfile.TemporaryDirectory(prefix="tecken-upload-")
            archive = Path(tmpdir.name) / f"{path.resolve().name or 'symbols'}.zip"
            with archive.open("wb") as f:
                count = zip_directory(path, f)
            if count == 0:
                err(f"{path} holds no files")
                return 2
            err(f"zipped {count} files from {path} ({archive.stat().st_size} bytes)")
        elif path.suffix.lower() == ".zip":
            archive = path
        else:
            err(f"{path} is neither a directory nor a .zip")
            return 2
        try:
            summary = upload(
                args.url,
                token,
                archive,
                try_symbols=args.try_symbols,
                retries=args.retries,
                backoff=args.backoff,
                timeout=args.timeout,
                log=err,
                progress=terminal_progress(),
            )
        except UploadFailed as exc:
            err(f"upload failed: {exc}")
            return 1
        print(json.dumps(summary, indent=2, sort_keys=True))
        return 0
    finally:
        if tmpdir is not None:
            tmpdir.cleanup()


if __name__ == "__main__":
    sys.exit(main())
