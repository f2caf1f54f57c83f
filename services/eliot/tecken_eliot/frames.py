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
from symbolic.exceptions import exceptions_by_code
from symbolic.utils import decode_str

#: Addresses are 64-bit; symbolic cannot look up anything larger.
MAX_ADDRESS = 2**64 - 1

#: Most bytes (estimated) one symcache's memo holds; past it, it starts again.
MEMO_MAX_SIZE = 8_000_000

#: json.dumps's encoding of one string (the C function it uses itself).
dumps_str: Callable[[str], str] = encode_basestring_ascii


class Location(NamedTuple):
    """One location of a lookup (``SymCache.lookup``'s fields that answers use)."""

    symbol: str
    path: str
    line: int
    sym_addr: int


_unpack = ffi.unpack
_addressof = ffi.addressof
_str_free = lib.symbolic_str_free
_err_clear = lib.symbolic_err_clear
_err_code = lib.symbolic_err_get_last_code
_lookup = lib.symbolic_symcache_lookup
_result_free = lib.symbolic_lookup_result_free


def _lookup_raw(ptr: ffi.CData, offset: int) -> list[tuple[str, str, int, int]]:
    """``(symbol, path, line, sym_addr)`` of each location, innermost first:
    what ``SymCache.lookup`` reads, without its objects (the cost of a frame
    is mostly this function; symbolic's own lookup is about half of it)."""
    _err_clear()
    rv = _lookup(ptr, offset)
    code = _err_code()
    if code:  # symbolic's error, as SymCache.lookup raises it
        message = decode_str(lib.symbolic_err_get_last_message(), free=True)
        raise exceptions_by_code.get(code, symbolic.SymbolicError)(message)
    try:
        out = []
        items = rv.items
        for i in range(rv.len):
            item = items[i]
            path = item.full_path
            if path.len:
                text = _unpack(path.data, path.len).decode("utf-8", "replace")
            else:
                text = ""
            if path.owned:
                _str_free(_addressof(path))
            sym = item.symbol
            name = _unpack(sym.data, sym.len).decode("utf-8", "replace") if sym.len else ""
            out.append((name, text, item.line, item.sym_addr))
        return out
    finally:
        _result_free(_addressof(rv))


class SymcacheFrames:
    """Memoised lookups in one symcache. ``size`` estimates the bytes the
    memo holds (the per-worker cache of open symcaches counts it); the memo
    is dropped whole when it passes ``max_size``."""

    __slots__ = ("symcache", "max_size", "size", "_ptr", "_memo", "_names")

    def __init__(self, symcache: symbolic.SymCache, max_size: int = MEMO_MAX_SIZE) -> None:
        self.symcache = symcache
        self.max_size = max_size
        self.size = 0
        self._ptr = symcache._get_objptr()
        #: 2 * offset + demangle -> the frame's JSON keys and its function name
        self._memo: dict[int, tuple[str, str | None]] = {}
        #: name -> (demangled, raw) as JSON text, or None when nothing demangles
        self._names: dict[str, str | None] = {}

    def locations(self, offset: int) -> list[Location]:
        """What ``SymCache.lookup(offset)`` finds, innermost first."""
        if not 0 <= offset <= MAX_ADDRESS:
            return []
        return [Location(*loc) for loc in _lookup_raw(self._ptr, offset)]

    def frame(self, offset: int, demangle: bool = False) -> tuple[str, str | None]:
        """``(keys, function)``: the JSON text of the symbolicated keys of the
        frame at ``offset`` (``, "function": ..., "inlines": [...]``, empty
        when no symbol covers it) and its function name (None when none)."""
        key = 2 * offset + demangle
        found = self._memo.get(key)
        if found is None:
            found = self._build(offset, demangle)
            if self.size >= self.max_size:
                self._memo.clear()
                self._names.clear()
                self.size = 0
            self._memo[key] = found
            self.size += 100 + len(found[0])
        return found

    def _function(self, name: str, demangle: bool) -> str:
        """The ``"function": ...`` keys of a name (with ``raw_function`` when
        demangled)."""
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
        if not 0 <= offset <= MAX_ADDRESS:
            return "", None
        locations = _lookup_raw(self._ptr, offset)
        if not locations:
            return "", None
        function = self._function
        symbol, path, line, sym_addr = locations[-1]
        text = f', {function(symbol, demangle)}, "function_offset": "{offset - sym_addr:#x}"'
        if path:
            text += ', "file": ' + dumps_str(path)
            if line:
                text += f', "line": {line}'
        if len(locations) > 1:
            inlines = []
            for inner, path, line, _addr in locations[:-1]:
                inline = "{" + function(inner, demangle)
                if path:
                    inline += ', "file": ' + dumps_str(path)
                    if line:
                        inline += f', "line": {line}'
                inlines.append(inline + "}")
            text += ', "inlines": [' + ", ".join(inlines) + "]"
        return text, symbol


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
