# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Storing members: gzip, headers and metadata, dedupe, try lookups, faults;
on the filesystem backend and on S3 (moto over real HTTP)."""

import gzip
import hashlib
import os
import stat

import pytest

from tecken_shared.storage import storage_from_url
from tecken_symbols.upload.archive import read_archive
from tecken_symbols.upload.config import UploadSettings
from tecken_symbols.upload.store import FileStorer, Target, store_archive
from tecken_symbols.upload.testing import FIXTURES, make_zip, sym_key, sym_text

SYM = "xpcshell.dbg/A7D6F1BB18CD4CB48/xpcshell.sym"
JPEG = "flag/DEADBEEF/flag.jpeg"


@pytest.fixture(params=["fs", "s3", "gcs"])
def storage(request, tmp_path):
    if request.param == "fs":
        return storage_from_url(f"file://{tmp_path}/store?durable=false")
    if request.param == "gcs":
        return storage_from_url(request.getfixturevalue("gcs_storage_url"))
    return storage_from_url(request.getfixturevalue("s3_storage_url"))


def run(path, storage, settings=None, try_=False, written=None):
    settings = settings or UploadSettings(validate_content=False, max_workers=2)
    regular = Target(storage, "v1/", "bucket")
    target = Target(storage, "try/v1/", "bucket") if try_ else regular
    lookups = [regular, target] if try_ else [regular]
    archive = read_archive(str(path), os.path.getsize(path), settings)
    storer = FileStorer(
        settings, target, lookups, on_written=written.append if written is not None else None
    )
    return {r.key: r for r in store_archive(archive, storer)}


def test_sample_zip_stored(storage):
    written = []
    results = run(FIXTURES / "sample.zip", storage, written=written)
    assert sorted(written) == [JPEG, SYM]
    assert not any(r.skipped or r.error for r in results.values())
    info = storage.metadata("v1/" + SYM)
    original = (FIXTURES / "sample.zip").exists() and None
    assert info.content_encoding == "gzip"
    assert info.content_type == "text/plain"
    assert info.cache_control == "no-transform"
    raw = gzip.decompress(storage.get("v1/" + SYM))
    assert raw.startswith(b"MODULE mac x86_64 BBACA09FD1C13F6C84254BFD8732AF400 xpcshell")
    assert info.metadata == {
        "original_size": "1156",
        "original_md5_hash": hashlib.md5(raw).hexdigest(),
    }
    assert results[SYM].compressed and results[SYM].stored_size == info.size
    assert results[SYM].header.debug_id == "BBACA09FD1C13F6C84254BFD8732AF400"
    jpeg = storage.metadata("v1/" + JPEG)
    assert jpeg.content_encoding is None and jpeg.size == 69183
    assert not results[JPEG].compressed and original is None

    # A second upload of the same files skips both and writes nothing.
    written.clear()
    again = run(FIXTURES / "sample.zip", storage, written=written)
    assert all(r.skipped for r in again.values()) and written == []


def test_changed_content_same_size_is_uploaded(storage, tmp_path):
    make_zip({"a.pdb/ABC/a.pd_": b"one"}, tmp_path / "1.zip")
    make_zip({"a.pdb/ABC/a.pd_": b"two"}, tmp_path / "2.zip")
    run(tmp_path / "1.zip", storage)
    result = run(tmp_path / "2.zip", storage)["a.pdb/ABC/a.pd_"]
    assert not result.skipped and result.is_update
    assert storage.get("v1/a.pdb/ABC/a.pd_") == b"two"


def test_foreign_uncompressed_object_compared_by_size(storage, tmp_path):
    storage.put("v1/a.pdb/ABC/a.pd_", b"xyz")  # no metadata: Tecken compares sizes only
    make_zip({"a.pdb/ABC/a.pd_": b"abc"}, tmp_path / "1.zip")
    assert run(tmp_path / "1.zip", storage)["a.pdb/ABC/a.pd_"].skipped


def test_legacy_compressed_object_same_gzip_size_skipped(storage, tmp_path):
    data = sym_text()
    make_zip({sym_key(): data}, tmp_path / "1.zip")
    first = run(tmp_path / "1.zip", storage)[sym_key()]
    stored = storage.get("v1/" + sym_key())
    storage.put("v1/" + sym_key(), stored, content_encoding="gzip")  # metadata lost
    assert first.stored_size == len(stored)
    assert run(tmp_path / "1.zip", storage)[sym_key()].skipped


def test_try_upload_skips_files_in_regular(storage, tmp_path):
    make_zip({sym_key(): sym_text(), "a.pdb/ABC/a.pd_": b"pd"}, tmp_path / "1.zip")
    run(tmp_path / "1.zip", storage)
    results = run(tmp_path / "1.zip", storage, try_=True)
    assert all(r.skipped for r in results.values())
    assert storage.metadata("try/v1/" + sym_key()) is None
    make_zip({"b.pdb/ABC/b.pd_": b"pd"}, tmp_path / "2.zip")
    assert not run(tmp_path / "2.zip", storage, try_=True)["b.pdb/ABC/b.pd_"].skipped
    assert storage.get("try/v1/b.pdb/ABC/b.pd_") == b"pd"
    assert storage.metadata("v1/b.pdb/ABC/b.pd_") is None


def test_big_member_spills_and_is_whole(storage, tmp_path):
    data = sym_text(funcs=20000)
    make_zip({sym_key(): data}, tmp_path / "big.zip")
    settings = UploadSettings(
        validate_content=False, spool_size=10_000, tempdir=str(tmp_path / "t")
    )
    run(tmp_path / "big.zip", storage, settings)
    assert gzip.decompress(storage.get("v1/" + sym_key())) == data
    assert os.listdir(tmp_path / "t") == []


def test_compression_configurable(tmp_path):
    storage = storage_from_url(f"file://{tmp_path}/store?durable=false")
    make_zip({"a.pdb/ABC/a.pd_": b"pd" * 100, sym_key(): sym_text()}, tmp_path / "1.zip")
    settings = UploadSettings(
        validate_content=False,
        compress_extensions=("pd_",),
        mime_overrides={"pd_": "application/x-cab"},
    )
    run(tmp_path / "1.zip", storage, settings)
    assert storage.metadata("v1/a.pdb/ABC/a.pd_").content_encoding == "gzip"
    assert storage.metadata("v1/a.pdb/ABC/a.pd_").content_type == "application/x-cab"
    assert storage.get("v1/" + sym_key()) == sym_text()


def test_storage_failure_mid_upload(tmp_path):
    """A directory that cannot be written (a file where a directory must go)
    fails those members; the rest of the work stops and is reported, nothing
    half-written is visible."""
    storage = storage_from_url(f"file://{tmp_path}/store?durable=false")
    members = {f"m{i}/ABC/m{i}.pd_": b"x" * 10 for i in range(10)}
    make_zip(members, tmp_path / "1.zip")
    (tmp_path / "store" / "v1").mkdir(parents=True)
    (tmp_path / "store" / "v1" / "m3").write_bytes(b"in the way")
    settings = UploadSettings(validate_content=False, max_workers=1)
    results = run(tmp_path / "1.zip", storage, settings)
    assert len(results) == 10
    errors = [k for k, r in results.items() if r.error]
    assert "m3/ABC/m3.pd_" in errors
    assert any("not attempted" in results[k].error for k in errors if k != "m3/ABC/m3.pd_")
    stored = {i.key for i in storage.list("v1/")} - {"v1/m3"}
    assert stored == {f"v1/{k}" for k, r in results.items() if not r.error}
    for _dirpath, _, files in os.walk(tmp_path / "store"):
        assert not [f for f in files if f.endswith(".tmp")]
    # A retry after the fault is fixed completes and skips what made it.
    os.unlink(tmp_path / "store" / "v1" / "m3")
    again = run(tmp_path / "1.zip", storage, settings)
    assert not any(r.error for r in again.values())
    assert {k for k, r in again.items() if not r.skipped} == set(errors)
    assert stat.S_ISDIR(os.stat(tmp_path / "store" / "v1" / "m3").st_mode)


def test_s3_down_reports_errors(tmp_path, moto_server, s3_bucket):
    from tecken_shared.storage.s3 import S3Storage
    from tecken_shared.testing.servers import free_port

    dead = S3Storage(
        s3_bucket,
        "p",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        region="us-east-1",
        max_attempts=1,
        connect_timeout=0.5,
    )
    make_zip({sym_key(): sym_text()}, tmp_path / "1.zip")
    results = run(tmp_path / "1.zip", dead)
    assert "cannot reach" in results[sym_key()].error


def test_a_large_member_is_gzipped_on_several_threads_into_one_gzip_member(tmp_path):
    import zlib

    from tecken_symbols.upload.store import THREADED_GZIP_MIN, stage_archive
    from tecken_symbols.upload.validate import checker_for

    storage = storage_from_url(f"file://{tmp_path}/store?durable=false")
    body = sym_text("big")
    line = b"PUBLIC 1000 0 some_public_symbol_name_that_repeats\n"
    body += line * (THREADED_GZIP_MIN // len(line) + 1000)
    path = tmp_path / "big.zip"
    path.write_bytes(make_zip({sym_key("big"): body}))
    settings = UploadSettings(validate_content=True, max_workers=2)
    target = Target(storage, "v1/", "bucket")
    archive = read_archive(str(path), os.path.getsize(path), settings)
    with stage_archive(archive, FileStorer(settings, target, [target]), checker_for) as staged:
        [result] = list(staged)
    stored = storage.get("v1/" + sym_key("big"))
    # One ordinary gzip member: what a client's zlib (wbits 31) inflates whole.
    inflater = zlib.decompressobj(31)
    assert inflater.decompress(stored) == body and inflater.eof and not inflater.unused_data
    assert result.md5 == hashlib.md5(body).hexdigest() and result.stored_size == len(stored)
