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


def protocol_paths(
    protocol: str, debug_filename: str, debug_id: str, code_id: str | None = None
) -> list[str]:
    """The paths, relative to a symbol server's URL, at which ``protocol`` (one
    of :data:`tecken_eliot.settings.SYMBOL_PROTOCOLS`) serves a debug file of
    the module, in the order asked; none where the protocol cannot name it:

    * ``symsrv``: ``symsrv/xul.pdb/<DEBUG_ID>/xul.pdb`` (``.pdb`` modules: a
      Breakpad debug id is symsrv's GUID and age);
    * ``debuginfod``: ``buildid/<code id>/debuginfo``, then ``.../executable``
      (other modules, with a code id: the ELF build id);
    * ``ssqp``: ``ssqp/_.debug/elf-buildid-sym-<code id>/_.debug`` (with a code
      id), then ``ssqp/_.dwarf/mach-uuid-sym-<uuid>/_.dwarf`` (the Mach-O
      UUID is the debug id without its age); other modules."""
    is_pdb = debug_filename.lower().endswith(".pdb")
    if protocol == "symsrv":
        return [f"symsrv/{debug_filename}/{debug_id.upper()}/{debug_filename}"] if is_pdb else []
    if protocol == "debuginfod":
        if is_pdb or not code_id:
            return []
        return [f"buildid/{code_id.lower()}/{artifact}" for artifact in ("debuginfo", "executable")]
    if protocol == "ssqp":
        if is_pdb:
            return []
        paths = []
        if code_id:
            # SSQP pads ELF build ids to 20 bytes.
            build_id = code_id.lower().ljust(40, "0")
            paths.append(f"ssqp/_.debug/elf-buildid-sym-{build_id}/_.debug")
        if len(debug_id) >= 32:
            paths.append(f"ssqp/_.dwarf/mach-uuid-sym-{debug_id[:32].lower()}/_.dwarf")
        return paths
    raise ValueError(f"unknown symbol protocol {protocol!r}")


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
