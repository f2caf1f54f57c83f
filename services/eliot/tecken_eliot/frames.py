# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The frames of one open symcache, memoised, answered as JSON text.

A worker keeps one :class:`SymcacheFrames` beside each symcache it holds
open. Looking an offset up goes straight to symbolic's C interface (what
``SymCache.lookup`` wraps, without a Python object per location) and the
answer is kept as the JSON text of the frame's symbolicated keys, written
exactly as ``json.dumps`` writes them (its own C string encoder, its
separators, Eliot's key order). Real stacks repeat addresses across crashes:
a repeated offset costs one dictionary read.
"""

from __future__ import annotations

from collections.abc import Callable
from json.encoder import encode_basestring_ascii
from typing import NamedTuple

import pycxxfilt
import pydemumble
import symbolic
from symbolic._lowlevel import ffi, lib
from symbolic.utils import rustcall

#: Addresses are 64-bit; symbolic cannot look up anything larger.
MAX_ADDRESS = 2**64 - 1

#: json.dumps's encoding of one string (the C function it uses itself).
dumps_str: Callable[[str], str] = encode_basestring_ascii


class Location(NamedTuple):
    """One location of a lookup (``SymCache.lookup``'s fields that answers use)."""

    symbol: str
    path: str
    line: int
    sym_addr: int


def _text(s: ffi.CData) -> str:
    return ffi.unpack(s.data, s.len).decode("utf-8", "replace") if s.len else ""


class SymcacheFrames:
    """Memoised lookups in one symcache. ``size`` estimates the bytes the
    memo holds (the per-worker cache of open symcaches counts it); the memo
    is dropped whole when it reaches ``max_entries``."""

    __slots__ = ("symcache", "max_entries", "size", "_ptr", "_memo", "_names")

    def __init__(self, symcache: symbolic.SymCache, max_entries: int = 100_000) -> None:
        self.symcache = symcache
        self.max_entries = max_entries
        self.size = 0
        self._ptr = symcache._get_objptr()
        #: (offset, demangle) -> the frame's JSON keys and its function name
        self._memo: dict[tuple[int, bool], tuple[str, str | None]] = {}
        #: name -> (demangled, raw) as JSON text, or None when nothing demangles
        self._names: dict[str, str | None] = {}

    def locations(self, offset: int) -> list[Location]:
        """What ``SymCache.lookup(offset)`` finds, innermost first."""
        if not 0 <= offset <= MAX_ADDRESS:
            return []
        rv = rustcall(lib.symbolic_symcache_lookup, self._ptr, offset)
        try:
            out = []
            for i in range(rv.len):
                item = rv.items[i]
                path = item.full_path
                try:
                    text = _text(path)
                finally:
                    if path.owned:
                        lib.symbolic_str_free(ffi.addressof(path))
                out.append(Location(_text(item.symbol), text, item.line, item.sym_addr))
        finally:
            rustcall(lib.symbolic_lookup_result_free, ffi.addressof(rv))
        return out

    def frame(self, offset: int, demangle: bool = False) -> tuple[str, str | None]:
        """``(keys, function)``: the JSON text of the symbolicated keys of the
        frame at ``offset`` (``, "function": ..., "inlines": [...]``, empty
        when no symbol covers it) and its function name (None when none)."""
        key = (offset, demangle)
        found = self._memo.get(key)
        if found is None:
            found = self._build(offset, demangle)
            if len(self._memo) >= self.max_entries:
                self._memo.clear()
                self.size = 0
            self._memo[key] = found
            self.size += 100 + len(found[0])
        return found

    def _function(self, name: str, demangle: bool) -> str:
        if demangle:
            both = self._names.get(name, "")
            if both == "":
                both = _demangled_keys(name)
                self._names[name] = both
                self.size += 100 + len(both or "")
            if both is not None:
                return both
        return '"function": ' + dumps_str(name)

    def _build(self, offset: int, demangle: bool) -> tuple[str, str | None]:
        locations = self.locations(offset)
        if not locations:
            return "", None
        outer = locations[-1]
        parts = [
            ", ",
            self._function(outer.symbol, demangle),
            f', "function_offset": "{offset - outer.sym_addr:#x}"',
        ]
        if outer.path:
            parts.append(', "file": ' + dumps_str(outer.path))
            if outer.line:
                parts.append(f', "line": {outer.line}')
        if len(locations) > 1:
            inlines = []
            for loc in locations[:-1]:
                inline = "{" + self._function(loc.symbol, demangle)
                if loc.path:
                    inline += ', "file": ' + dumps_str(loc.path)
                    if loc.line:
                        inline += f', "line": {loc.line}'
                inlines.append(inline + "}")
            parts.append(', "inlines": [' + ", ".join(inlines) + "]")
        return "".join(parts), outer.symbol


def demangle(name: str) -> str | None:
    """``name`` demangled by LLVM's demanglers (Itanium, MSVC, Rust; then
    Swift), or None when it is not a mangled name they understand."""
    try:
        out = pycxxfilt.demangle(name)
    except ValueError:
        out = None
    if not out:
        out = pydemumble.demangle(name) or None
    return out if out != name else None


def _demangled_keys(name: str) -> str | None:
    demangled = demangle(name)
    if demangled is None:
        return None
    return f'"function": {dumps_str(demangled)}, "raw_function": {dumps_str(name)}'
