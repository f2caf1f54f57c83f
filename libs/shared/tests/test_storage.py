# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""One suite, run on the filesystem backend, on S3 (moto server over HTTP) and
on GCS (gcp-storage-emulator over HTTP)."""

import gzip
import io
import urllib.request

import pytest

from tecken_shared.storage import (
    InvalidKey,
    ObjectNotFound,
    StorageError,
    storage_from_url,
)
from tecken_shared.testing.servers import free_port


@pytest.fixture(params=["filesystem", "s3", "gcs"])
def storage(request, tmp_path):
    if request.param == "filesystem":
        return storage_from_url(f"file://{tmp_path}/store?public_url=http://localhost:3000/files")
    if request.param == "gcs":
        return storage_from_url(request.getfixturevalue("gcs_storage_url"))
    return storage_from_url(request.getfixturevalue("s3_storage_url"))


def test_missing_key(storage):
    assert storage.metadata("a/b/missing.sym") is None
    assert not storage.exists("a/b/missing.sym")
    with pytest.raises(ObjectNotFound):
        storage.get("a/b/missing.sym")
    assert storage.delete("a/b/missing.sym") is False


def test_key_with_a_very_long_component_is_missing_on_both_backends(storage):
    # 300 bytes: too long for a filesystem name, a plain 404 on S3.
    key = "a/" + "X" * 300 + "/b.sym"
    assert storage.metadata(key) is None
    assert not storage.exists(key)


def test_put_get_metadata_round_trip(storage):
    payload = gzip.compress(b"MODULE Linux x86_64 ABC xul.so\n" * 100)
    storage.put(
        "v1/xul.so/ABC/xul.so.sym",
        payload,
        content_type="text/plain",
        content_encoding="gzip",
        cache_control="no-transform",
        metadata={"original_size": "3100", "original_md5_hash": "abc123"},
    )
    info = storage.metadata("v1/xul.so/ABC/xul.so.sym")
    assert info is not None
    assert info.size == len(payload)
    assert info.content_type == "text/plain"
    assert info.content_encoding == "gzip"
    assert info.cache_control == "no-transform"
    assert info.metadata == {"original_size": "3100", "original_md5_hash": "abc123"}
    assert info.last_modified is not None
    # Stored as given: not decoded on the way out.
    assert storage.get("v1/xul.so/ABC/xul.so.sym") == payload
    with storage.open("v1/xul.so/ABC/xul.so.sym") as stream:
        assert gzip.decompress(stream.read()).startswith(b"MODULE Linux")


def test_put_stream_and_overwrite(storage):
    big = bytes(range(256)) * 8192  # 2 MiB
    storage.put("k/stream.bin", io.BytesIO(big))
    assert storage.get("k/stream.bin") == big
    storage.put("k/stream.bin", b"small")
    info = storage.metadata("k/stream.bin")
    assert info.size == 5
    assert info.content_encoding is None
    assert info.metadata == {}


def test_list_by_prefix_and_delete(storage):
    for key in ["a/1/x.sym", "a/2/y.sym", "b/1/z.sym", "ab/c"]:
        storage.put(key, key.encode())
    assert [o.key for o in storage.list("a/")] == ["a/1/x.sym", "a/2/y.sym"]
    assert [o.key for o in storage.list("a")] == ["a/1/x.sym", "a/2/y.sym", "ab/c"]
    assert [o.key for o in storage.list("")] == ["a/1/x.sym", "a/2/y.sym", "ab/c", "b/1/z.sym"]
    assert [o.size for o in storage.list("b/")] == [9]
    assert list(storage.list("nothing/")) == []
    assert storage.delete("a/1/x.sym") is True
    assert not storage.exists("a/1/x.sym")
    assert [o.key for o in storage.list("a/")] == ["a/2/y.sym"]


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "a\\b", "./a", "a/\x00"])
def test_invalid_keys_rejected(storage, key):
    with pytest.raises(InvalidKey):
        storage.put(key, b"x")


def test_public_url_serves_object(storage, request):
    storage.put("pub/file.txt", b"hello")
    url = storage.public_url("pub/file.txt")
    backend = request.node.callspec.params["storage"]
    if backend == "filesystem":
        assert url == "http://localhost:3000/files/pub/file.txt"
    elif backend == "gcs":
        # The emulator serves objects publicly at <endpoint>/<bucket>/<key>, as GCS does.
        with urllib.request.urlopen(url) as resp:
            assert resp.read() == b"hello"
    else:
        presigning = storage_from_url(request.getfixturevalue("s3_storage_url") + "&presign=60")
        url = presigning.public_url("pub/file.txt")
        assert "X-Amz-Signature" in url
        with urllib.request.urlopen(url) as resp:
            assert resp.read() == b"hello"


def test_check_passes(storage):
    storage.check()


def test_s3_unreachable_endpoint_gives_clear_error(monkeypatch):
    # Credentials of their own: the error must be about the endpoint, whichever
    # tests ran before (the moto fixture sets some).
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    port = free_port()  # nothing listens here
    storage = storage_from_url(
        f"s3://bucket/p?endpoint_url=http://127.0.0.1:{port}&region=us-east-1&connect_timeout=1"
    )
    storage.client.meta.config.retries = {"max_attempts": 1}
    with pytest.raises(StorageError) as excinfo:
        storage.put("a/b", b"x")
    message = str(excinfo.value)
    assert f"127.0.0.1:{port}" in message
    assert "cannot reach the S3 endpoint" in message
    with pytest.raises(StorageError):
        storage.metadata("a/b")
    with pytest.raises(StorageError):
        storage.check()


def test_s3_missing_bucket_is_an_error_not_a_miss(moto_server):
    storage = storage_from_url(f"s3://no-such-bucket-x?endpoint_url={moto_server.endpoint_url}")
    with pytest.raises(StorageError):
        storage.put("a", b"x")
    with pytest.raises(StorageError, match="bucket not reachable"):
        storage.check()


def test_filesystem_unwritable_root_gives_clear_error(tmp_path):
    root = tmp_path / "ro"
    root.mkdir()
    (root / "blocker").write_text("a file where a directory must go")
    storage = storage_from_url(f"file://{root}")
    with pytest.raises(StorageError, match="cannot write 'blocker/x'"):
        storage.put("blocker/x", b"data")


def test_filesystem_write_is_atomic_no_temp_files_left(tmp_path):
    storage = storage_from_url(f"file://{tmp_path}")

    class Exploding(io.RawIOBase):
        def __init__(self):
            self.calls = 0

        def readable(self):
            return True

        def read(self, n=-1):
            self.calls += 1
            if self.calls > 2:
                raise OSError("source broke")
            return b"x" * 1024

    storage.put("d/key", b"old")
    with pytest.raises(StorageError, match="source broke"):
        storage.put("d/key", Exploding())
    assert storage.get("d/key") == b"old"
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["key"]


def test_gcs_unreachable_endpoint_gives_clear_error():
    port = free_port()  # nothing listens here
    storage = storage_from_url(f"gs://bucket/p?endpoint_url=http://127.0.0.1:{port}&timeout=2")
    with pytest.raises(StorageError, match="cannot write 'a/b'"):
        storage.put("a/b", b"x")
    with pytest.raises(StorageError, match="bucket not reachable"):
        storage.check()


def test_gcs_signed_and_public_urls():
    storage = storage_from_url("gs://bucket/v1?public_url=https://cdn.example.com/")
    assert storage.public_url("a b/c") == "https://cdn.example.com/v1/a%20b/c"
    plain = storage_from_url("gs://bucket/v1")
    assert plain.public_url("x/y") == "https://storage.googleapis.com/bucket/v1/x/y"
    assert not plain.cheap_exists and plain.has_public_url


def test_storage_url_errors():
    with pytest.raises(ValueError, match="scheme"):
        storage_from_url("ftp://x/y")
    with pytest.raises(ValueError, match="no bucket"):
        storage_from_url("s3:///prefix")
    with pytest.raises(ValueError, match="unknown parameter"):
        storage_from_url("s3://b/p?endpoint=http://x")
    with pytest.raises(ValueError, match="no bucket"):
        storage_from_url("gs:///prefix")
    with pytest.raises(ValueError, match="unknown parameter"):
        storage_from_url("gs://b/p?presign=60")


def test_filesystem_file_mode_from_url(tmp_path):
    """RT-26: ``?mode=644`` makes stored objects readable by a web server
    running as another user; without it objects stay 0600."""
    import stat

    from tecken_shared.storage import storage_from_url

    shared = storage_from_url(f"file://{tmp_path}/a?mode=644&durable=false")
    shared.put("m/AB/m.sym", b"x")
    assert stat.S_IMODE((tmp_path / "a" / "m" / "AB" / "m.sym").stat().st_mode) == 0o644
    private = storage_from_url(f"file://{tmp_path}/b?durable=false")
    private.put("m/AB/m.sym", b"x")
    assert stat.S_IMODE((tmp_path / "b" / "m" / "AB" / "m.sym").stat().st_mode) == 0o600
    with pytest.raises(ValueError):
        storage_from_url(f"file://{tmp_path}/c?mode=999")


def test_direct_upload_writes_the_object_with_its_headers(storage):
    """A client PUTs straight to the backend (GCS resumable session, S3
    presigned PUT); the filesystem has no direct uploads."""
    import hashlib

    import requests

    key = "v1/xul.so/ABC/xul.so.sym"
    payload = gzip.compress(b"MODULE Linux x86_64 ABC xul.so\n" * 10)
    headers = {
        "content_type": "text/plain",
        "content_encoding": "gzip",
        "cache_control": "no-transform",
        "metadata": {"original_size": "310", "original_md5_hash": "abc123"},
    }
    if storage.direct_upload_protocol is None:
        with pytest.raises(NotImplementedError):
            storage.direct_upload(key, size=None, expires=60, **headers)
        return
    upload = storage.direct_upload(key, size=None, expires=60, **headers)
    resp = requests.put(upload.url, payload, headers=upload.headers, timeout=10)
    assert resp.status_code == 200, resp.text
    info = storage.metadata(key)
    assert info.size == len(payload) and info.md5 == hashlib.md5(payload).hexdigest()
    assert info.content_encoding == "gzip" and info.cache_control == "no-transform"
    assert info.metadata == headers["metadata"]
    assert storage.get(key) == payload
