# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""How a module (debug_filename, debug_id) maps to symbol-server URLs and to
eliot's disk-cache paths. The Breakpad naming rule itself (``xul.pdb`` ->
``xul.sym``) is :mod:`tecken_shared.breakpad`'s, shared with the symbols
service."""

from __future__ import annotations

import functools
import hashlib
import string

from tecken_shared.breakpad import sym_filename

_SAFE = set(string.ascii_letters + string.digits + "_-.")
#: Longest encoded path component we keep as is; longer ones are shortened
#: with a hash (file systems limit a name to 255 bytes).
_MAX_COMPONENT = 180


def format_filename(fmt: str, debug_filename: str) -> str | None:
    """The file name of ``debug_filename``'s symbols in the form ``fmt`` (one
    of :data:`tecken_eliot.settings.SYMBOL_FORMATS`), or None where that form does not exist: CAB
    files are Windows debug files (``.pdb``), ``.dbg.gz`` and dSYM bundles
    are not."""
    is_pdb = debug_filename.lower().endswith(".pdb")
    if fmt == "sym":
        return sym_filename(debug_filename)
    if fmt == "sym.gz":
        return sym_filename(debug_filename) + ".gz"
    if fmt == "debug":
        return debug_filename
    if fmt == "pd_":
        return debug_filename[:-1] + "_" if is_pdb else None
    if fmt == "dbg.gz":
        return None if is_pdb else debug_filename + ".dbg.gz"
    if fmt == "dsym":
        return None if is_pdb else debug_filename + ".dSYM.tar.bz2"
    raise ValueError(f"unknown symbol format {fmt!r}")


def symbol_url(source_url: str, debug_filename: str, debug_id: str, fmt: str = "sym") -> str:
    """``<source>/<debug_filename>/<debug_id>/<file name>``: the module's
    symbols in the form ``fmt`` under a symbol server (the source URL gets a
    trailing ``/`` if it has none). The default form is the sym file, whose
    key is :func:`tecken_shared.breakpad.symbol_key`."""
    filename = format_filename(fmt, debug_filename)
    if filename is None:
        raise ValueError(f"{debug_filename!r} has no {fmt} form")
    if not source_url.endswith("/"):
        source_url += "/"
    return f"{source_url}{debug_filename}/{debug_id}/{filename}"


def encode_component(value: str) -> str:
    """Injective encoding of ``value`` into one safe path component.

    Letters, digits, ``_``, ``-`` and ``.`` (except a leading one) are kept;
    every other byte of the UTF-8 form becomes ``%XX``. ``%`` itself is encoded,
    so two different values never give the same component. Over-long results
    are cut and suffixed with ``~`` and a SHA-256 of the value (``~`` never
    appears in an encoded component otherwise)."""
    out = []
    for i, ch in enumerate(value):
        if ch in _SAFE and not (i == 0 and ch == "."):
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
    encoded = "".join(out) or "%"
    if len(encoded) > _MAX_COMPONENT:
        digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
        encoded = encoded[:100] + "~" + digest
    return encoded


@functools.lru_cache(maxsize=8192)
def cache_stem(debug_filename: str, debug_id: str) -> str:
    """Relative path (without suffix) of a module's cache entry:
    ``<encoded debug_filename>/<encoded DEBUG_ID>``. The debug id is upper-cased:
    ids are hexadecimal, so ``abc`` and ``ABC`` name the same module."""
    return f"{encode_component(debug_filename)}/{encode_component(debug_id.upper())}"


def module_key(debug_filename: str, debug_id: str) -> str:
    """The ``found_modules`` key: the strings exactly as sent."""
    return f"{debug_filename}/{debug_id}"
