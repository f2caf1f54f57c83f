# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Content validation at the door: every ``.sym`` member is checked before
anything is stored, so a refused archive writes nothing."""

from __future__ import annotations

import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor

import markus

from tecken_symbols.upload.archive import Archive, Member
from tecken_symbols.upload.config import UploadSettings
from tecken_symbols.upload.errors import UploadError
from tecken_symbols.upload.store import MemberSource
from tecken_symbols.upload.symfile import SymChecker, md5_and_check

metrics = markus.get_metrics("tecken")


def check_member(source: MemberSource, member: Member) -> tuple[str, str | None]:
    """(md5 of the member, the problem or None)."""
    checker = SymChecker(member.debug_filename, member.debug_id)
    try:
        with source.open(member) as stream:
            md5, _ = md5_and_check(stream, member.size, checker)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        return "", f"cannot be read from the archive ({exc})"
    return md5, checker.finish()


def validate_archive(archive: Archive, settings: UploadSettings) -> dict[str, str]:
    """Check the ``.sym`` members; returns {key: md5} of the checked members.
    Raises UploadError (400) naming the first bad member in archive order."""
    members = [m for m in archive.to_store if m.key.lower().endswith(".sym")]
    if not members:
        return {}
    source = MemberSource(archive.path)
    try:
        with metrics.timer("upload_validate_content"):
            workers = max(1, min(settings.workers, len(members)))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="validate") as pool:
                results = list(pool.map(lambda m: check_member(source, m), members))
    finally:
        source.close()
    md5s = {}
    for member, (md5, problem) in zip(members, results, strict=True):
        if problem is not None:
            metrics.incr("upload_validation_error")
            raise UploadError(f"Invalid symbol file '{member.name}': {problem}")
        md5s[member.key] = md5
    return md5s
