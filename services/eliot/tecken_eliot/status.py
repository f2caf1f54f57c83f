# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""What became of a module: one status vocabulary for the downloader, the
disk cache and the store, and the result symbolication works with."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

import symbolic

if TYPE_CHECKING:
    from tecken_eliot.frames import SymcacheFrames


class ModuleStatus(StrEnum):
    """The values are what the ``debug`` block shows; the two negative ones
    are also the suffixes of their negative cache entries (``.missing``,
    ``.malformed``)."""

    #: symbols found (a download: the file holds the sym file)
    FOUND = "found"
    #: every symbol server answered 404; remembered for ELIOT_MISSING_SYMBOLS_TTL
    MISSING = "missing"
    #: the sym file cannot be used; remembered for ELIOT_MALFORMED_SYMBOLS_TTL
    MALFORMED = "malformed"
    #: a symbol server or our own disk failed; not remembered
    ERROR = "error"
    #: a download only: larger than ELIOT_MAX_DOWNLOAD_SIZE (the store
    #: records it as MALFORMED)
    TOO_LARGE = "too_large"

    @property
    def negative(self) -> bool:
        """Whether the disk cache remembers it as a negative entry."""
        return self in NEGATIVE


NEGATIVE = (ModuleStatus.MISSING, ModuleStatus.MALFORMED)

#: The per-frame ``status`` of explained answers (v5 ``explain``,
#: ``/minidump``) in a module whose symbols were not found, by its status.
FRAME_STATUS = {
    ModuleStatus.MISSING: "module_missing",
    ModuleStatus.MALFORMED: "module_malformed",
    ModuleStatus.ERROR: "module_error",
}


@dataclass
class ModuleResult:
    """What symbolication learned about one module. ``cached`` says whether a
    negative answer came from the negative cache; ``detail`` explains anything
    but FOUND."""

    status: ModuleStatus
    symcache: symbolic.SymCache | None = None
    filename: str = ""
    detail: str = ""
    cached: bool = False
    #: FOUND: the symcache's memoised frames (what answers are built from)
    frames: SymcacheFrames | None = None
