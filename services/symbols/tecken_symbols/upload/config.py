# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Upload configuration (everett options, namespace ``symbols``)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field

from everett.manager import ConfigManager, ListOf, Option, parse_bool, parse_data_size

DEFAULT_DOWNLOAD_DOMAINS = (
    "queue.taskcluster.net,firefox-ci-tc.services.mozilla.com,"
    "stage.taskcluster.nonprod.cloudops.mozgcp.net,"
    "tecken-system-tests.symbols.nonprod.webservices.mozgcp.net"
)


def parse_mime_overrides(value: str) -> dict[str, str]:
    """``sym=text/plain,foo=application/x-foo`` -> ``{"sym": "text/plain", ...}``."""
    result = {}
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        ext, sep, mime = item.partition("=")
        if not sep or not ext.strip() or not mime.strip():
            raise ValueError(f"expected extension=mime/type, got {item!r}")
        result[ext.strip().lower().lstrip(".")] = mime.strip()
    return result


class UploadConfig:
    class Config:
        upload_tempdir = Option(
            default="",
            doc="Directory for uploaded archives while they are processed (one temporary "
            "file per upload, removed afterwards); empty means the system temp directory.",
        )
        upload_max_size = Option(
            default="2gb",
            parser=parse_data_size,
            doc="Largest accepted archive (request body or downloaded file); larger ones "
            "get 413. Accepts sizes like 2gb, 500mb.",
        )
        upload_max_extracted_size = Option(
            default="20gb",
            parser=parse_data_size,
            doc="Largest total uncompressed size of an archive's members (zip-bomb guard).",
        )
        upload_max_files = Option(
            default="50000",
            parser=int,
            doc="Most members an archive may hold.",
        )
        upload_validate_content = Option(
            default="true",
            parser=parse_bool,
            doc="Check every .sym member before storing anything: text starting with a "
            "MODULE line whose debug id and debug filename match the member's path, and "
            "no STACK record before a FUNC record (symbolication would silently lose "
            "those functions). false gives Tecken's behaviour (no content checks).",
        )
        upload_file_upload_max_workers = Option(
            default="0",
            parser=int,
            doc="Threads that compress and store members in parallel; 0 means the CPU count.",
        )
        upload_gzip_level = Option(
            default="6",
            parser=int,
            doc="gzip level (1-9) for compressed extensions.",
        )
        upload_spool_size = Option(
            default="8mb",
            parser=parse_data_size,
            doc="Compressed output up to this size is kept in memory per worker; "
            "bigger output spills to a temporary file (bounds memory per worker).",
        )
        compress_extensions = Option(
            default="sym",
            parser=ListOf(str),
            doc="Extensions stored gzipped with Content-Encoding: gzip.",
        )
        mime_overrides = Option(
            default="sym=text/plain",
            parser=parse_mime_overrides,
            doc="Content types by extension, as ext=type pairs separated by commas.",
        )
        disallowed_symbols_snippets = Option(
            default="qcom/proprietary",
            parser=ListOf(str),
            doc="Member names containing any of these snippets are refused.",
        )
        allow_upload_by_any_domain = Option(
            default="false",
            parser=parse_bool,
            doc="Upload by download URL from any host and over plain http "
            "(local development only).",
        )
        allow_upload_by_download_domains = Option(
            default=DEFAULT_DOWNLOAD_DOMAINS,
            parser=ListOf(str),
            doc="Hosts (exact, without port) upload-by-download URLs and every redirect "
            "they lead through may point at.",
        )
        upload_by_download_require_https = Option(
            default="true",
            parser=parse_bool,
            doc="Refuse http:// download URLs and redirects (unless "
            "SYMBOLS_ALLOW_UPLOAD_BY_ANY_DOMAIN is on).",
        )
        upload_download_connect_timeout = Option(
            default="5", parser=float, doc="Seconds to connect for upload by download URL."
        )
        upload_download_read_timeout = Option(
            default="300", parser=float, doc="Seconds between bytes for upload by download URL."
        )
        upload_v2_max_files_per_request = Option(
            default="1024", parser=int, doc="Most files in one POST /upload/v2/ request."
        )
        upload_try_retention_days = Option(
            default="30",
            parser=int,
            doc="The cleanup command deletes try uploads (records and stored try objects "
            "they wrote) older than this many days.",
        )
        upload_regular_retention_days = Option(
            default="730",
            parser=int,
            doc="The cleanup command deletes regular upload records (not the symbols) "
            "older than this many days; 0 keeps them forever.",
        )


@dataclass
class UploadSettings:
    """Upload settings as plain values (built from UploadConfig, or by tests)."""

    tempdir: str = ""
    max_size: int = 2_000_000_000
    max_extracted_size: int = 20_000_000_000
    max_files: int = 50000
    validate_content: bool = True
    max_workers: int = 0
    gzip_level: int = 6
    spool_size: int = 8_000_000
    compress_extensions: tuple[str, ...] = ("sym",)
    mime_overrides: dict[str, str] = field(default_factory=lambda: {"sym": "text/plain"})
    disallowed_snippets: tuple[str, ...] = ("qcom/proprietary",)
    allow_any_domain: bool = False
    allowed_domains: tuple[str, ...] = tuple(DEFAULT_DOWNLOAD_DOMAINS.split(","))
    require_https: bool = True
    download_connect_timeout: float = 5
    download_read_timeout: float = 300
    download_retries: int = 5
    download_backoff: float = 0.2
    max_redirects: int = 5
    v2_max_files: int = 1024
    try_retention_days: int = 30
    regular_retention_days: int = 730

    @property
    def workers(self) -> int:
        return self.max_workers if self.max_workers > 0 else (os.cpu_count() or 2)

    @property
    def temp_root(self) -> str:
        root = self.tempdir or os.path.join(tempfile.gettempdir(), "tecken-uploads")
        os.makedirs(root, exist_ok=True)
        return root


def load_settings(manager: ConfigManager) -> UploadSettings:
    config = manager.with_namespace("symbols").with_options(UploadConfig)
    level = config("upload_gzip_level")
    if not 1 <= level <= 9:
        raise ValueError(f"SYMBOLS_UPLOAD_GZIP_LEVEL must be 1-9, not {level}")
    return UploadSettings(
        tempdir=config("upload_tempdir"),
        max_size=config("upload_max_size"),
        max_extracted_size=config("upload_max_extracted_size"),
        max_files=config("upload_max_files"),
        validate_content=config("upload_validate_content"),
        max_workers=config("upload_file_upload_max_workers"),
        gzip_level=level,
        spool_size=config("upload_spool_size"),
        compress_extensions=tuple(
            e.strip().lower().lstrip(".") for e in config("compress_extensions") if e.strip()
        ),
        mime_overrides=config("mime_overrides"),
        disallowed_snippets=tuple(s for s in config("disallowed_symbols_snippets") if s),
        allow_any_domain=config("allow_upload_by_any_domain"),
        allowed_domains=tuple(
            d.strip().lower() for d in config("allow_upload_by_download_domains") if d.strip()
        ),
        require_https=config("upload_by_download_require_https"),
        download_connect_timeout=config("upload_download_connect_timeout"),
        download_read_timeout=config("upload_download_read_timeout"),
        v2_max_files=config("upload_v2_max_files_per_request"),
        try_retention_days=config("upload_try_retention_days"),
        regular_retention_days=config("upload_regular_retention_days"),
    )
