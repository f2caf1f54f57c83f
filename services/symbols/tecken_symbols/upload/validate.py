# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Content validation at the door: every ``.sym`` member is checked before
anything is stored, so a refused archive writes nothing (the check runs in
the pass that hashes and gzips each member:
:func:`tecken_symbols.upload.store.stage_archive`)."""

from __future__ import annotations

from tecken_symbols.upload.archive import Member
from tecken_symbols.upload.errors import UploadError
from tecken_symbols.upload.symfile import SymChecker


def checker_for(member: Member) -> SymChecker | None:
    """The content checker of an archive member (``.sym`` members only)."""
    if not member.key.lower().endswith(".sym"):
        return None
    return SymChecker(member.debug_filename, member.debug_id)


def refusal(refused: list[dict[str, str]]) -> UploadError:
    """The 400 naming the refused members (``{"file", "reason"}``, archive order)."""
    first = refused[0]
    message = f"Invalid symbol file '{first['file']}': {first['reason']}"
    if len(refused) > 1:
        message += f" (and {len(refused) - 1} more refused files, see 'refused')"
    return UploadError(message, details={"refused": refused[:MAX_LISTED]})


#: Most refused files listed in one answer.
MAX_LISTED = 100
