# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Content validation at the door: every ``.sym`` member is checked before
anything is stored, so a refused archive writes nothing."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import markus

from tecken_symbols.upload.archive import UNREADABLE, Archive, Member
from tecken_symbols.upload.config import UploadSettings
from tecken_symbols.upload.errors import UploadError
from tecken_symbols.upload.store import MemberReadError, MemberSource
from tecken_symbols.upload.symfile import SymChecker, md5_and_check

metrics = markus.get_metrics("tecken")


def checker_for(member: Member) -> SymChecker | None:
    """The content checker of an archive member (``.sym`` members only)."""
    if not member.key.lower().endswith(".sym"):
        return None
    return SymChecker(member.debug_filename, member.debug_id)


def check_member(source: MemberSource, member: Member) -> tuple[str, str | None]:
    """(md5 of the member, the problem or None)."""
    checker = SymChecker(member.debug_filename, member.debug_id)
    try:
        with source.open(member) as stream:
            md5, _ = md5_and_check(stream, member.size, checker)
    except (MemberReadError, *UNREADABLE) as exc:
        return "", f"cannot be read from the archive ({exc})"
    return md5, checker.finish()


def validate_archive(archive: Archive, settings: UploadSettings) -> dict[str, str]:
    """Check the ``.sym`` members; returns {key: md5} of the checked members.
    Raises UploadError (400) naming every refused member and why (in archive
    order; the answer's ``refused`` lists them as ``{"file", "reason"}``)."""
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
    refused = []
    for member, (md5, problem) in zip(members, results, strict=True):
        if problem is not None:
            metrics.incr("upload_validation_error")
            refused.append({"file": member.name, "reason": problem})
        md5s[member.key] = md5
    if refused:
        raise refusal(refused)
    return md5s


def refusal(refused: list[dict[str, str]]) -> UploadError:
    """The 400 naming the refused members (``{"file", "reason"}``, archive order)."""
    first = refused[0]
    message = f"Invalid symbol file '{first['file']}': {first['reason']}"
    if len(refused) > 1:
        message += f" (and {len(refused) - 1} more refused files, see 'refused')"
    return UploadError(message, details={"refused": refused[:MAX_LISTED]})


#: Most refused files listed in one answer.
MAX_LISTED = 100
