# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The upload side's settings as plain values. The options (names, defaults,
parsers, docs) are declared once, in :class:`tecken_symbols.settings.UploadConfig`;
each field here names its option, and its default is that option's default."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field, fields
from typing import Any

from everett.manager import ConfigManager

from tecken_symbols.settings import NAMESPACE, UploadConfig


def _option(name: str) -> Any:
    """A dataclass field defaulting to the parsed default of option ``name``."""
    option = getattr(UploadConfig.Config, name)
    return field(default_factory=lambda: option.parser(option.default), metadata={"option": name})


@dataclass
class UploadSettings:
    """Upload settings (built by :meth:`from_config`, or by tests with overrides)."""

    tempdir: str = _option("upload_tempdir")
    max_size: int = _option("upload_max_size")
    max_extracted_size: int = _option("upload_max_extracted_size")
    max_files: int = _option("upload_max_files")
    validate_content: bool = _option("upload_validate_content")
    max_workers: int = _option("upload_file_upload_max_workers")
    gzip_level: int = _option("upload_gzip_level")
    spool_size: int = _option("upload_spool_size")
    compress_extensions: tuple[str, ...] = _option("compress_extensions")
    identity_max_size: int = _option("identity_max_size")
    mime_overrides: dict[str, str] = _option("mime_overrides")
    disallowed_snippets: tuple[str, ...] = _option("disallowed_symbols_snippets")
    allow_any_domain: bool = _option("allow_upload_by_any_domain")
    allowed_domains: tuple[str, ...] = _option("allow_upload_by_download_domains")
    require_https: bool = _option("upload_by_download_require_https")
    allow_private_addresses: bool = _option("upload_by_download_allow_private_addresses")
    download_deadline: float = _option("upload_download_deadline")
    download_connect_timeout: float = _option("upload_download_connect_timeout")
    download_read_timeout: float = _option("upload_download_read_timeout")
    download_retries: int = _option("upload_download_retries")
    download_backoff: float = _option("upload_download_backoff")
    max_redirects: int = _option("upload_download_max_redirects")
    v2_max_files: int = _option("upload_v2_max_files_per_request")
    v2_protocol: str = _option("upload_v2_protocol")
    v2_url_expires: int = _option("upload_v2_url_expires")
    try_retention_days: int = _option("upload_try_retention_days")
    regular_retention_days: int = _option("upload_regular_retention_days")

    @classmethod
    def from_config(cls, manager: ConfigManager) -> UploadSettings:
        """Read every field's option (namespace ``symbols``)."""
        config = manager.with_namespace(NAMESPACE).with_options(UploadConfig)
        return cls(**{f.name: config(f.metadata["option"]) for f in fields(cls)})

    @property
    def workers(self) -> int:
        return self.max_workers if self.max_workers > 0 else (os.cpu_count() or 2)

    @property
    def temp_root(self) -> str:
        root = self.tempdir or os.path.join(tempfile.gettempdir(), "tecken-uploads")
        os.makedirs(root, exist_ok=True)
        return root
