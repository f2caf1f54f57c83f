# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The one table of Breakpad naming rules both services follow."""

from __future__ import annotations

import pytest

from tecken_shared.breakpad import (
    HEADER_LIMIT,
    SymHeader,
    is_hex,
    parse_header,
    read_header,
    sym_filename,
    symbol_key,
)

# (debug file, sym file). The upper-case rows are where symbols and eliot
# used to disagree (symbols matched ".pdb" in any case, eliot only lower case).
SYM_FILENAMES = [
    ("xul.pdb", "xul.sym"),
    ("libxul.so", "libxul.so.sym"),
    ("XUL", "XUL.sym"),
    ("c++filt", "c++filt.sym"),
    ("foo.dll", "foo.dll.sym"),
    ("firefox.exe.pdb", "firefox.exe.sym"),
    ("XUL.PDB", "XUL.PDB.sym"),
    ("xul.Pdb", "xul.Pdb.sym"),
    (".pdb", ".sym"),
    ("pdb", "pdb.sym"),
    ("a b.pdb", "a b.sym"),
]


@pytest.mark.parametrize("debug_file, expected", SYM_FILENAMES)
def test_sym_filename(debug_file: str, expected: str) -> None:
    assert sym_filename(debug_file) == expected


@pytest.mark.parametrize("debug_file, expected", SYM_FILENAMES)
def test_symbol_key_uses_the_same_rule_and_keeps_the_id(debug_file: str, expected: str) -> None:
    assert symbol_key(debug_file, "ab12") == f"{debug_file}/ab12/{expected}"


@pytest.mark.parametrize(
    "value, expected",
    [("0123456789abcdefABCDEF", True), ("", False), ("12 ", False), ("g1", False), ("1\n", False)],
)
def test_is_hex(value: str, expected: bool) -> None:
    assert is_hex(value) is expected


HEAD = (
    b"MODULE windows x86_64 44e4ec8c2f41492b9369d6b9a059577c2 xul.pdb\r\n"
    b"INFO CODE_ID 5b8f4f2a1d8000 xul.dll\r\n"
    b"INFO GENERATOR mozilla/dump_syms 2.3.4\r\n"
    b"FILE 0 a.cpp\n"
    b"INFO CODE_ID FFFF ignored.dll\n"
)


def test_parse_header_reads_module_and_info_lines() -> None:
    assert parse_header(HEAD) == SymHeader(
        debug_filename="xul.pdb",
        debug_id="44E4EC8C2F41492B9369D6B9A059577C2",
        code_file="xul.dll",
        code_id="5B8F4F2A1D8000",
        generator="mozilla/dump_syms 2.3.4",
    )


@pytest.mark.parametrize(
    "head, expected",
    [
        (b"", SymHeader()),
        (b"\x00\xff garbage", SymHeader()),
        (b"MODULE Linux x86\n", SymHeader()),
        (
            b"MODULE Linux x86 ABC file name with spaces\nINFO CODE_ID 0A\n",
            SymHeader("file name with spaces", "ABC", None, "0A"),
        ),
        (
            b"MODULE mac arm64 ABC a\nINFO GENERATOR " + b"x" * 300 + b"\n",
            SymHeader("a", "ABC", generator="x" * 100),
        ),
    ],
)
def test_parse_header_never_raises(head: bytes, expected: SymHeader) -> None:
    assert parse_header(head) == expected


def test_read_header_reads_a_bounded_head(tmp_path) -> None:
    path = tmp_path / "a.sym"
    path.write_bytes(HEAD + b"FUNC 0 1 0 f\n" * (HEADER_LIMIT // 8))
    assert read_header(path).code_file == "xul.dll"
    assert read_header(tmp_path / "missing.sym") == SymHeader()
