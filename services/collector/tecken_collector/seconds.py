# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Parser for options that are a number of seconds."""

from __future__ import annotations


def parse_seconds(value: str) -> float:
    """A number of seconds, 0 or more (a negative one is refused at start-up
    rather than failing every request or pass that uses it)."""
    seconds = float(value)
    if not seconds >= 0:  # also refuses nan
        raise ValueError(f"{value!r} is not a number of seconds (0 or more)")
    return seconds
