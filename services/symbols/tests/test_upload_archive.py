# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Archive reception and member-name validation (spec 2.2 steps 1-5)."""

import io
import os

import pytest

from tecken_symbols.upload.archive import check_archive_name, read_archive, spool_stream
from tecken_symbols.upload.config import UploadSettings
from tecken_symbols.upload.errors import UploadError
from tecken_symbols.upload.testing import FIXTURES, make_zip, sym_key, sym_text


def read(path, **kw):
    return read_archive(str(path), os.path.getsize(path), UploadSettings(**kw))


def error_of(path, **kw) -> UploadError:
    with pytest.raises(UploadError) as info:
        read(path, **kw)
    return info.value


def test_sample_zip_members():
    archive = read(FIXTURES / "sample.zip")
    assert [m.key for m in archive.to_store] == [
        "flag/DEADBEEF/flag.jpeg",
        "xpcshell.dbg/A7D6F1BB18CD4CB48/xpcshell.sym",
    ]
    assert archive.ignored_keys == ["build-symbols.txt"]
    assert len(archive.content_hash) == 30


def test_sample_with_ignorable_files():
    archive = read(FIXTURES / "sample-with-ignorable-files.zip")
    assert sorted(archive.ignored_keys) == [
        "build-symbols.txt",
        "flag/.DS_Store",
        "xpcshell.dbg/A7D6F1BB18CD4CB48/.DS_Store",
    ]
    assert len(archive.to_store) == 2


def test_invalid_zip():
    err = error_of(FIXTURES / "invalid.zip")
    assert err.status == 400
    assert err.message == (
        "Unrecognized file pattern. Should only be <module>/<hex>/<file> or <name>-symbols.txt "
        "and nothing else. (First unrecognized pattern was 'xpcshell.sym')"
    )


def test_invalid_characters():
    err = error_of(FIXTURES / "invalid-characters.zip")
    assert (
        "(First unrecognized pattern was 'xpcfoo.dbg/A7D6F1BB18CD4CB48/p%eter.sym')" in err.message
    )


def test_not_a_zip():
    assert error_of(FIXTURES / "notazipdespiteitsname.zip").message == "File is not a zip file"


def test_empty_body_is_not_a_zip(tmp_path):
    (tmp_path / "e.zip").write_bytes(b"")
    assert error_of(tmp_path / "e.zip").message == "File is not a zip file"


def test_duplicated_same_size():
    archive = read(FIXTURES / "duplicated-same-size.zip")
    assert [m.key for m in archive.to_store] == [
        "foo.pdb/50FEB8DBDC024C66B42193D881CE80E12/ntdll.sym"
    ]


def test_duplicated_different_size():
    assert error_of(FIXTURES / "duplicated-different-size.zip").message == (
        "The zipfile buffer contains two files both called "
        "foo.pdb/50FEB8DBDC024C66B42193D881CE80E12/ntdll.sym and they have difference sizes (24 != 39)"
    )


def test_empty_zip_rejected(tmp_path):
    make_zip({}, tmp_path / "empty.zip")
    assert "no files" in error_of(tmp_path / "empty.zip").message


def test_only_directories_is_empty(tmp_path):
    make_zip({"a/": b"", "a/b/": b""}, tmp_path / "dirs.zip")
    assert "no files" in error_of(tmp_path / "dirs.zip").message


@pytest.mark.parametrize(
    "name",
    ["../x/ABCDEF/y.sym", "x/../ABCDEF/y.sym", "/x/ABCDEF/y.sym", "a/../../x/ABC/y.sym"],
)
def test_members_leaving_the_archive_rejected(tmp_path, name):
    make_zip({name: b"x", sym_key(): sym_text()}, tmp_path / "evil.zip")
    err = error_of(tmp_path / "evil.zip")
    assert err.status == 400
    assert name in err.message and "outside the archive" in err.message


def test_disallowed_snippet(tmp_path):
    make_zip({"qcom/proprietary/ABCDEF/x.sym": b"x"}, tmp_path / "q.zip")
    assert error_of(tmp_path / "q.zip").message == (
        "Content of archive file contains the snippet 'qcom/proprietary' which is not allowed"
    )


def test_snippets_configurable(tmp_path):
    make_zip({"secret/ABCDEF/x.sym": b"x"}, tmp_path / "q.zip")
    assert "'secret'" in error_of(tmp_path / "q.zip", disallowed_snippets=("secret",)).message
    assert read(tmp_path / "q.zip", disallowed_snippets=())


def test_symbols_txt_only_at_root(tmp_path):
    make_zip({"sub/build-symbols.txt": b"x"}, tmp_path / "t.zip")
    assert (
        "First unrecognized pattern was 'sub/build-symbols.txt'"
        in error_of(tmp_path / "t.zip").message
    )
    make_zip({"BUILD-SYMBOLS.TXT": b"x", sym_key(): sym_text()}, tmp_path / "u.zip")
    assert read(tmp_path / "u.zip").ignored_keys == ["BUILD-SYMBOLS.TXT"]


@pytest.mark.parametrize(
    "name",
    [
        "a/NOTHEX/b.sym",
        "a/ABC/b/c.sym",
        "a/ABC/",
        "a b/AB\\C/x.sym",
        "a/AB/x\u00e9.sym",
        "a/AB/x|y.sym",
    ],
)
def test_bad_patterns(tmp_path, name):
    make_zip({name: b"x"} if not name.endswith("/") else {name + "c/d": b"x"}, tmp_path / "p.zip")
    assert "Unrecognized file pattern" in error_of(tmp_path / "p.zip").message


def test_lowercase_debug_id_is_upper_cased_in_the_key(tmp_path):
    make_zip({"xul.pdb/abcdef0123/xul.sym": b"x"}, tmp_path / "l.zip")
    assert [m.key for m in read(tmp_path / "l.zip").to_store] == ["xul.pdb/ABCDEF0123/xul.sym"]


def test_limits(tmp_path):
    make_zip({f"a/AB/{i}.sym": b"x" * 100 for i in range(5)}, tmp_path / "m.zip")
    assert error_of(tmp_path / "m.zip", max_files=4).status == 413
    err = error_of(tmp_path / "m.zip", max_extracted_size=499)
    assert err.status == 413 and "500 bytes" in err.message
    assert len(read(tmp_path / "m.zip", max_files=5, max_extracted_size=500).to_store) == 5


@pytest.mark.parametrize(
    "name,ext", [("x.tar.gz", ".gz"), ("x", ""), ("x.ZIP", None), ("sample.zip", None)]
)
def test_archive_name(name, ext):
    if ext is None:
        check_archive_name(name)
    else:
        with pytest.raises(UploadError) as info:
            check_archive_name(name)
        assert info.value.message == f'Unrecognized archive file extension "{ext}"'


def test_spool_stream(tmp_path):
    path, size = spool_stream(io.BytesIO(b"x" * 3_000_000), str(tmp_path), 3_000_000)
    assert size == 3_000_000 and os.path.getsize(path) == size
    with pytest.raises(UploadError) as info:
        spool_stream(io.BytesIO(b"x" * 3_000_001), str(tmp_path), 3_000_000)
    assert info.value.status == 413
    with pytest.raises(UploadError):
        spool_stream(io.BytesIO(b""), str(tmp_path), 10, expected=11)
    assert os.listdir(tmp_path) == [os.path.basename(path)]  # the refused ones are gone
