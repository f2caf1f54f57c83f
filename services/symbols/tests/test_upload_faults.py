# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Storage failing mid-upload, for real: the upload answers 5xx, the record
says why, the files that made it are recorded, a retry completes the upload,
and nothing half-written is ever served."""

import gzip

from tecken_shared.testing.servers import free_port
from tecken_symbols.upload.testing import make_token, make_zip, sym_key, sym_text


def post(svc, token, data, status="*"):
    return svc.app.post(
        "/upload/",
        upload_files=[("s.zip", "s.zip", data)],
        headers={"Auth-Token": token},
        status=status,
    )


def test_filesystem_fault_mid_upload_then_retry(make_service, tmp_path):
    svc = make_service({"SYMBOLS_UPLOAD_FILE_UPLOAD_MAX_WORKERS": "1"})
    token = make_token(svc.ctx, ["upload_symbols"])
    members = {sym_key(f"m{i}"): sym_text(f"m{i}") for i in range(6)}
    data = make_zip(members)
    root = tmp_path / "storage" / "v1"
    root.mkdir(parents=True)
    (root / "m3").write_bytes(b"a file where a directory must go")

    resp = post(svc, token, data, status=503)
    assert (
        "Storing" in resp.json["error"]
        and "m3/" in resp.json["error"]
        and "retry" in resp.json["error"]
    )
    up = svc.ctx.db.fetchone("SELECT * FROM uploads ORDER BY id DESC LIMIT 1")
    assert up["completed_at"] is None and "m3/" in up["error"]
    recorded = {
        r["key"]
        for r in svc.ctx.db.fetchall(
            "SELECT key FROM file_uploads WHERE upload_id = ?", (up["id"],)
        )
    }
    regular = svc.ctx.storages.regular.storage
    stored = {k for k in members if regular.metadata(k) is not None}
    assert recorded == stored and sym_key("m3") not in stored
    # Whatever is visible is whole.
    for key in stored:
        assert gzip.decompress(regular.get(key)) == members[key]
    svc.app.get(f"/{sym_key('m3')}", status=404)

    (root / "m3").unlink()
    again = post(svc, token, data, status=201).json["upload"]
    assert set(again["skipped_keys"]) == stored
    for key, content in members.items():
        assert gzip.decompress(regular.get(key)) == content
    svc.app.get(f"/{sym_key('m3')}", status=302)


def test_s3_unreachable(make_service, moto_server):  # moto_server: AWS test credentials
    dead = f"http://127.0.0.1:{free_port()}"
    svc = make_service(
        {
            "SYMBOLS_STORAGE_URL": f"s3://bucket/v1?endpoint_url={dead}&region=us-east-1&connect_timeout=0.5",
            "SYMBOLS_TRY_STORAGE_URL": f"s3://bucket/try/v1?endpoint_url={dead}&region=us-east-1&connect_timeout=0.5",
        }
    )
    token = make_token(svc.ctx, ["upload_symbols"])
    resp = post(svc, token, make_zip({sym_key(): sym_text()}), status=503)
    assert "cannot reach the S3 endpoint" in resp.json["error"]
    up = svc.ctx.db.fetchone("SELECT completed_at, error FROM uploads")
    assert up["completed_at"] is None and up["error"]


def test_s3_bucket_missing_then_created(make_service, moto_server):
    import uuid

    import boto3

    bucket = f"tecken-late-{uuid.uuid4().hex[:8]}"
    q = f"endpoint_url={moto_server.endpoint_url}&region=us-east-1"
    svc = make_service(
        {
            "SYMBOLS_STORAGE_URL": f"s3://{bucket}/v1?{q}",
            "SYMBOLS_TRY_STORAGE_URL": f"s3://{bucket}/try/v1?{q}",
        }
    )
    token = make_token(svc.ctx, ["upload_symbols"])
    data = make_zip({sym_key(): sym_text()})
    assert post(svc, token, data).status_int >= 500
    boto3.client(
        "s3", endpoint_url=moto_server.endpoint_url, region_name="us-east-1"
    ).create_bucket(Bucket=bucket)
    assert post(svc, token, data, status=201).json["upload"]["skipped_keys"] == []
    assert gzip.decompress(svc.ctx.storages.regular.storage.get(sym_key())) == sym_text()
