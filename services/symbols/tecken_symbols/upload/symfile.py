# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The cheap streaming checks of Breakpad ``.sym`` files done at the door (the
header fields recorded per file are read by :mod:`tecken_shared.breakpad`).

The checks take one pass over the bytes with C-speed searches (no line
splitting in Python, no symbolic parse): a full parse of a 400 MB file costs
over ten seconds of CPU, these checks cost about as much as reading it."""

from __future__ import annotations

import hashlib

from tecken_shared.breakpad import HEADER_LIMIT, HEX_RE, MAX_LINE_LENGTH, parse_header


def _header_complete(head: bytes) -> bool:
    """Whether ``head`` holds a whole line after the MODULE/INFO header lines."""
    for line in head.split(b"\n")[:-1]:
        if not (line.startswith(b"MODULE ") or line.startswith(b"INFO ")):
            return True
    return False


class SymChecker:
    """Feed the bytes of one .sym in order with :meth:`feed`, then :meth:`finish`.
    ``problem`` is None for a good file, else the reason, ready for a 400.

    The path must name the module: its debug filename and debug id (the
    MODULE line), or its code file and code id (the ``INFO CODE_ID`` line), as
    Tecken's own symbol directories store some Windows modules. No line may be
    longer than :data:`tecken_shared.breakpad.MAX_LINE_LENGTH`."""

    def __init__(self, debug_filename: str, debug_id: str) -> None:
        self.expected_file = debug_filename
        self.expected_id = debug_id.upper()
        self.problem: str | None = None
        self.head = b""
        self.head_checked = False
        self.tail = b""
        self.lines_before = 1  # line number of the first byte of the current chunk
        self.stack_line: int | None = None
        self.size = 0
        self.line_length = 0  # bytes of the current line so far

    def feed(self, chunk: bytes) -> None:
        if self.problem is not None or not chunk:
            return
        if not self.head_checked:
            self.head += chunk[: HEADER_LIMIT - len(self.head)]
            if len(self.head) >= HEADER_LIMIT or _header_complete(self.head):
                self._check_first_line()
        if self.problem is None:
            self._scan(chunk)
        self.size += len(chunk)

    def finish(self) -> str | None:
        if self.problem is None and not self.head_checked:
            if not self.head:
                self.problem = "the file is empty"
            else:
                self._check_first_line()
        return self.problem

    def _check_first_line(self) -> None:
        self.head_checked = True
        first = self.head.split(b"\n", 1)[0].rstrip(b"\r")
        if b"\x00" in first:
            self.problem = "not a text file (binary content at the start)"
            return
        try:
            line = first.decode("utf-8")
        except UnicodeDecodeError:
            self.problem = "not a text file (the first line is not UTF-8)"
            return
        if not line.startswith("MODULE "):
            shown = line[:60] + ("..." if len(line) > 60 else "")
            self.problem = f"does not start with a MODULE line (first line: {shown!r})"
            return
        parts = line.split(" ", 4)
        if len(parts) != 5 or not HEX_RE.fullmatch(parts[3]) or not parts[4]:
            self.problem = (
                f"malformed MODULE line {line[:120]!r} "
                "(expected MODULE <os> <arch> <debug id> <debug filename>)"
            )
            return
        module_id, module_file = parts[3].upper(), parts[4]
        if (module_id, module_file) != (self.expected_id, self.expected_file):
            header = parse_header(self.head)
            if (header.code_id, header.code_file) == (self.expected_id, self.expected_file):
                return  # stored under its code file and code id
        if module_id != self.expected_id:
            self.problem = (
                f"the MODULE line's debug id {module_id} does not match the path's "
                f"{self.expected_id}"
            )
        elif module_file != self.expected_file:
            self.problem = (
                f"the MODULE line's debug filename {module_file!r} does not match the "
                f"path's {self.expected_file!r}"
            )
        if self.problem is not None:
            self.problem += " (nor does an INFO CODE_ID line name the path's code file and id)"

    def _check_lines(self, chunk: bytes) -> None:
        first = chunk.find(b"\n")
        if first < 0:
            longest = self.line_length + len(chunk)
            self.line_length = longest
        else:
            last = chunk.rfind(b"\n")
            longest = self.line_length + first
            # Lines between the first and the last newline: jump from newline
            # to the farthest newline at most MAX_LINE_LENGTH + 1 bytes on (a
            # few C-speed searches per chunk, whatever its line count).
            pos = first
            while last - pos - 1 > MAX_LINE_LENGTH:
                nxt = chunk.rfind(b"\n", pos + 1, pos + MAX_LINE_LENGTH + 2)
                if nxt < 0:
                    longest = MAX_LINE_LENGTH + 1
                    break
                pos = nxt
            self.line_length = len(chunk) - last - 1
        if longest > MAX_LINE_LENGTH:
            self.problem = (
                f"a line is longer than {MAX_LINE_LENGTH} bytes (the longest line a symbol "
                "file may have)"
            )

    def _scan(self, chunk: bytes) -> None:
        self._check_lines(chunk)
        if self.problem is not None:
            return
        if b"\x00" in chunk:
            offset = self.size + chunk.index(b"\x00")
            self.problem = f"not a text file (NUL byte at offset {offset})"
            return
        buf = self.tail + chunk
        base_line = self.lines_before - self.tail.count(b"\n")
        if self.stack_line is None:
            at = buf.find(b"\nSTACK ")
            if at >= 0:
                self.stack_line = base_line + buf.count(b"\n", 0, at) + 1
                func = buf.find(b"\nFUNC ", at)
                if func >= 0:
                    self._func_after_stack(base_line + buf.count(b"\n", 0, func) + 1)
                    return
        else:
            func = buf.find(b"\nFUNC ")
            if func >= 0:
                self._func_after_stack(base_line + buf.count(b"\n", 0, func) + 1)
                return
        self.lines_before += chunk.count(b"\n")
        self.tail = buf[-6:]

    def _func_after_stack(self, func_line: int) -> None:
        self.problem = (
            f"FUNC record on line {func_line} comes after a STACK record (line "
            f"{self.stack_line}); symbolication would silently lose every function after "
            "the first STACK record (dump_syms writes STACK records last)"
        )


def md5_and_check(
    stream, size_hint: int, checker: SymChecker | None, chunk: int = 1024 * 1024
) -> tuple[str, int]:
    """Read ``stream`` to the end: (md5 hex, size), feeding ``checker`` if given."""
    digest = hashlib.md5()
    size = 0
    while data := stream.read(chunk):
        digest.update(data)
        size += len(data)
        if checker is not None:
            checker.feed(data)
            if checker.problem is not None:
                break
    return digest.hexdigest(), size
