# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Breakpad naming rules and the ``.sym`` header, free of I/O but for
:func:`read_header`. The one place the services learn how a module maps to a
symbol key, so the symbol server and the symbolication service can't drift.

* A symbol file's name: :func:`sym_filename` (``xul.pdb`` -> ``xul.sym``).
* A symbol key: :func:`symbol_key` (``<debug_file>/<debug_id>/<sym file>``).
* The header (``MODULE`` and ``INFO`` lines): :func:`parse_header`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from os import PathLike

#: The header is read from at most this many bytes of a file.
HEADER_LIMIT = 1024 * 1024
HEX_RE = re.compile(r"[0-9A-Fa-f]+")
#: The longest line a ``.sym`` may have, in bytes without the newline: symbols
#: refuses longer lines at upload, eliot stops reading a file at one. Real
#: files stay far below it (the longest demangled names are some kB).
MAX_LINE_LENGTH = 1024 * 1024


def is_hex(value: str) -> bool:
    """Whether ``value`` is a non-empty string of hexadecimal digits."""
    return HEX_RE.fullmatch(value) is not None


def sym_filename(debug_file: str) -> str:
    """The Breakpad symbol file of a module: a trailing ``.pdb`` becomes
    ``.sym`` (``xul.pdb`` -> ``xul.sym``); any other name gets ``.sym``
    appended (``libxul.so`` -> ``libxul.so.sym``).

    The suffix is matched case-sensitively, as Mozilla's Tecken and Eliot do
    (``XUL.PDB`` -> ``XUL.PDB.sym``), so both services ask for the same key as
    the clients that compare against them."""
    if debug_file.endswith(".pdb"):
        return debug_file[: -len(".pdb")] + ".sym"
    return debug_file + ".sym"


def symbol_key(debug_file: str, debug_id: str) -> str:
    """``<debug_file>/<debug_id>/<sym_filename>``: the key of a module's symbol
    file, relative to a symbol server's root. Both parts are used as given
    (stores hold upper-case ids; callers decide whether to upper-case)."""
    return f"{debug_file}/{debug_id}/{sym_filename(debug_file)}"


@dataclass
class SymHeader:
    """What a ``.sym`` header says about its module (None where it is silent)."""

    debug_filename: str | None = None
    debug_id: str | None = None
    code_file: str | None = None
    code_id: str | None = None
    generator: str | None = None


def parse_header(head: bytes) -> SymHeader:
    """MODULE and INFO lines from the start of a ``.sym`` (stops at the first
    other line). Ids are upper-cased. Unparseable parts are left None, never
    raised."""
    header = SymHeader()
    for raw in head.split(b"\n"):
        line = raw.rstrip(b"\r").decode("utf-8", "replace")
        if line.startswith("MODULE "):
            parts = line.split(" ", 4)
            if len(parts) == 5:
                header.debug_id = parts[3].upper() or None
                header.debug_filename = parts[4] or None
        elif line.startswith("INFO CODE_ID "):
            parts = line.split(" ", 3)
            if len(parts) >= 3:
                header.code_id = parts[2].upper() or None
            if len(parts) == 4:
                header.code_file = parts[3] or None
        elif line.startswith("INFO GENERATOR "):
            header.generator = line[len("INFO GENERATOR ") :][:100] or None
        elif line.startswith("INFO "):
            continue
        else:
            break
    return header


def read_header(path: str | PathLike[str]) -> SymHeader:
    """:func:`parse_header` of the first :data:`HEADER_LIMIT` bytes of the file
    at ``path``; an empty header when it can't be read."""
    try:
        with open(path, "rb") as fp:
            return parse_header(fp.read(HEADER_LIMIT))
    except OSError:
        return SymHeader()
