# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The .sym header parser and the streaming checks done at upload."""

import io
import tempfile
import zipfile

import pytest

from tecken_shared.breakpad import parse_header
from tecken_shared.storage import storage_from_url
from tecken_symbols.upload.archive import read_archive
from tecken_symbols.upload.config import UploadSettings
from tecken_symbols.upload.errors import UploadError
from tecken_symbols.upload.store import FileStorer, Target, stage_archive
from tecken_symbols.upload.symfile import SymChecker, md5_and_check
from tecken_symbols.upload.testing import DEBUG_ID, FIXTURES, make_zip, sym_key, sym_text
from tecken_symbols.upload.validate import checker_for


def check(data: bytes, debug_file="ssltunnel", debug_id=DEBUG_ID, chunk=1024 * 1024):
    checker = SymChecker(debug_file, debug_id)
    md5_and_check(io.BytesIO(data), len(data), checker, chunk=chunk)
    return checker.finish()


def test_header_of_fixtures():
    head = (FIXTURES / "symbols/ShowSSEConfig.exe/6A4B9A365000/ShowSSEConfig.sym").read_bytes()
    h = parse_header(head[:4096])
    assert (h.debug_filename, h.debug_id, h.code_file, h.code_id) == (
        "ShowSSEConfig.pdb",
        "D57F52D4A2FD56244C4C44205044422E1",
        "ShowSSEConfig.exe",
        "6A4B9A365000",
    )
    head = (
        FIXTURES
        / "symbols/libxul_correct_buildid.dylib/BE555D35C9A93D7FBC23ED48502277E30/libxul_correct_buildid.dylib.sym"
    ).read_bytes()
    h = parse_header(head)
    assert h.generator == "mozilla/dump_syms 2.3.7"
    assert h.code_id == "BE555D35C9A93D7FBC23ED48502277E3" and h.code_file is None


def test_header_of_garbage():
    assert parse_header(b"\x00\xff garbage") == parse_header(b"")


def test_good_file():
    assert check(sym_text()) is None
    assert check(sym_text().replace(b"\n", b"\r\n")) is None


@pytest.mark.parametrize("chunk", [7, 64, 1024 * 1024])
def test_stack_before_func(chunk):
    problem = check(sym_text(funcs=4, stack_between=True), chunk=chunk)
    assert (
        problem is not None
        and "FUNC record on line 8 comes after a STACK record (line 7)" in problem
    )


def test_fixtures_pass():
    for path in (FIXTURES / "symbols").glob("*/*/*.sym"):
        debug_file, debug_id, _ = path.relative_to(FIXTURES / "symbols").parts
        h = parse_header(path.read_bytes()[:2000])
        if h.debug_id != debug_id.upper():
            continue  # stored under the code file/code id path
        assert check(path.read_bytes(), debug_file, debug_id, chunk=4096) is None, path


@pytest.mark.parametrize(
    "data,expect",
    [
        (b"", "empty"),
        (b"Look at me! I'm a symbol file.", "does not start with a MODULE line"),
        (b"\x00\x01binary", "not a text file"),
        (b"\xff\xfeMODULE", "not a text file"),
        (b"MODULE Linux x86_64\n", "malformed MODULE line"),
        (b"MODULE Linux x86_64 XYZ ssltunnel\n", "malformed MODULE line"),
        (
            f"MODULE Linux x86_64 {DEBUG_ID} other\n".encode(),
            "debug filename 'other' does not match",
        ),
        (b"MODULE Linux x86_64 ABCDEF ssltunnel\n", "debug id ABCDEF does not match"),
        (sym_text() + b"FUNC 1 1 0 x\x00\n", "NUL byte"),
    ],
)
def test_bad_files(data, expect):
    problem = check(data)
    assert problem is not None and expect in problem


def test_lowercase_module_id_matches():
    assert check(sym_text(debug_id=DEBUG_ID.lower())) is None


def validate(path, **kw):
    """The .sym members' md5s once all passed the checks (UploadError
    otherwise), through the upload's own staging (nothing is written)."""
    settings = UploadSettings(**kw)
    archive = read_archive(str(path), path.stat().st_size, settings)
    with tempfile.TemporaryDirectory() as tmp:
        target = Target(storage_from_url(f"file://{tmp}?durable=false"), "", "test")
        storer = FileStorer(settings, target, [target])
        with stage_archive(archive, storer, checker_for) as staged:
            return {m.key: p.result.md5 for m, p in staged.staged if checker_for(m)}


def test_validate_sample_zip_rejected_by_default():
    with pytest.raises(UploadError) as info:
        validate(FIXTURES / "sample.zip")
    assert info.value.message == (
        "Invalid symbol file 'xpcshell.dbg/A7D6F1BB18CD4CB48/xpcshell.sym': the MODULE line's debug "
        "id BBACA09FD1C13F6C84254BFD8732AF400 does not match the path's A7D6F1BB18CD4CB48 "
        "(nor does an INFO CODE_ID line name the path's code file and id)"
    )
    assert info.value.details == {
        "refused": [
            {
                "file": "xpcshell.dbg/A7D6F1BB18CD4CB48/xpcshell.sym",
                "reason": info.value.message.split("': ", 1)[1],
            }
        ]
    }


def test_validate_duplicated_same_size_rejected_by_default():
    with pytest.raises(UploadError) as info:
        validate(FIXTURES / "duplicated-same-size.zip")
    assert "does not start with a MODULE line" in info.value.message


def test_validate_good_archive_returns_md5s(tmp_path):
    make_zip({sym_key(): sym_text(), "a/AB/b.jpeg": b"\x00\x01"}, tmp_path / "g.zip")
    md5s = validate(tmp_path / "g.zip")
    import hashlib

    assert md5s == {sym_key(): hashlib.md5(sym_text()).hexdigest()}


def test_validate_names_first_bad_member_in_order(tmp_path):
    members = [(sym_key(debug_file=f"m{i}"), sym_text(debug_file=f"m{i}")) for i in range(6)]
    members[3] = (members[3][0], b"nope")
    members[5] = (members[5][0], sym_text(debug_file="m5", stack_between=True))
    make_zip(members, tmp_path / "b.zip")
    with pytest.raises(UploadError) as info:
        validate(tmp_path / "b.zip", max_workers=3)
    assert f"'m3/{DEBUG_ID}/m3.sym'" in info.value.message


def test_corrupt_member(tmp_path):
    data = bytearray(make_zip({sym_key(): sym_text(funcs=50)}))
    # Flip bytes inside the compressed data (after the local header).
    for i in range(60, 90):
        data[i] ^= 0xFF
    (tmp_path / "c.zip").write_bytes(bytes(data))
    with pytest.raises((UploadError, zipfile.BadZipFile)) as info:
        validate(tmp_path / "c.zip")
    assert isinstance(info.value, UploadError)
    assert "cannot be read" in info.value.message


def test_sym_stored_under_its_code_file_and_code_id_is_accepted(tmp_path):
    """Issue 16 defect 5: Tecken stores some Windows modules under
    <code_file>/<code_id>/ (the fixture ShowSSEConfig.exe/6A4B9A365000/)."""
    src = FIXTURES / "symbols" / "ShowSSEConfig.exe" / "6A4B9A365000"
    members = {f"ShowSSEConfig.exe/6A4B9A365000/{p.name}": p.read_bytes() for p in src.iterdir()}
    make_zip(members, tmp_path / "code.zip")
    assert "ShowSSEConfig.exe/6A4B9A365000/ShowSSEConfig.sym" in validate(tmp_path / "code.zip")
    # A code id that does not match is still refused, naming the file and why.
    bad = {
        "ShowSSEConfig.exe/6A4B9A365001/ShowSSEConfig.sym": members[
            "ShowSSEConfig.exe/6A4B9A365000/ShowSSEConfig.sym"
        ],
        "other.pdb/AB/other.sym": b"MODULE windows x86 CD other.pdb\n",
    }
    make_zip(bad, tmp_path / "bad.zip")
    with pytest.raises(UploadError) as info:
        validate(tmp_path / "bad.zip")
    refused = info.value.details["refused"]
    assert [r["file"] for r in refused] == list(bad)
    assert "6A4B9A365001" in refused[0]["reason"] and "INFO CODE_ID" in refused[0]["reason"]
    assert "and 1 more refused files" in info.value.message


def test_over_long_lines_are_refused():
    from tecken_shared.breakpad import MAX_LINE_LENGTH

    ok = sym_text() + b"FILE 0 " + b"a" * (MAX_LINE_LENGTH - 7) + b"\n"
    assert check(ok) is None
    for bad in (
        sym_text() + b"FILE 0 " + b"a" * MAX_LINE_LENGTH + b"\n",
        sym_text() + b"FILE 0 " + b"a" * (3 * MAX_LINE_LENGTH),  # no newline at all
    ):
        problem = check(bad)
        assert problem is not None and f"longer than {MAX_LINE_LENGTH} bytes" in problem


def test_long_line_inside_one_big_chunk_is_found():
    from tecken_shared.breakpad import MAX_LINE_LENGTH

    body = sym_text() + b"x\n" * 10 + b"a" * (MAX_LINE_LENGTH + 1) + b"\n" + b"y\n" * 10
    assert "longer than" in check(body, chunk=len(body))
    ok = sym_text() + (b"b" * MAX_LINE_LENGTH + b"\n") * 3
    assert check(ok, chunk=len(ok)) is None
