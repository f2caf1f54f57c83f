# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Every metric the upload paths emit is documented in metrics.yaml, and the
spec's upload metrics are emitted."""

import gzip
import hashlib

from tecken_shared.metrics import load_registry, undocumented
from tecken_symbols.settings import METRICS_YAML
from tecken_symbols.upload import cleanup
from tecken_symbols.upload.testing import make_token, make_zip, sym_key, sym_text

SPEC_UPLOAD_METRICS = {
    "tecken.upload_archive",
    "tecken.upload_dump_and_extract",
    "tecken.upload_file_exists",
    "tecken.upload_file_upload",
    "tecken.upload_gzip_payload",
    "tecken.upload_put_object",
    "tecken.upload_v2",
    "tecken.initiate_file_upload",
    "tecken.upload_file_upload_skip",
    "tecken.upload_file_upload_upload",
    "tecken.upload_file_upload_error",
    "tecken.upload_skip_early_compressed",
    "tecken.upload_skip_early_uncompressed",
    "tecken.upload_uploads",
    "tecken.api",
    "tecken.api_stats",
    "tecken.clearuploads.count_timing",
    "tecken.clearuploads.delete_timing",
    "tecken.clearuploads.record_count",
    "tecken.clearuploads.records_deleted",
}


def test_upload_metrics_documented(make_service, metricsmock, tmp_path):
    svc = make_service()
    token = make_token(svc.ctx, ["upload_symbols", "view_all_uploads"])
    h = {"Auth-Token": token}
    data = make_zip({sym_key(): sym_text(), "a.pdb/ABC/a.pd_": b"cab"})
    for _ in range(2):
        svc.app.post("/upload/", upload_files=[("s.zip", "s.zip", data)], headers=h, status=201)
    bad = make_zip({sym_key(): b"not a sym"})
    svc.app.post("/upload/", upload_files=[("b.zip", "b.zip", bad)], headers=h, status=400)
    body = sym_text("v2")
    files = [
        {"key": sym_key("v2"), "size": len(body), "md5_hash": hashlib.md5(body).hexdigest()},
        {"key": "bad", "size": 1, "md5_hash": "0" * 32},
    ]
    resp = svc.app.post_json("/upload/v2/", {"files": files}, headers=h, status=201).json
    url = resp["files"][0]["action"]["url"].replace("http://symbols.test", "")
    svc.app.put(url, gzip.compress(body), headers=h)
    for path in ("/api/uploads/", "/api/stats/", "/api/uploads/files/"):
        svc.app.get(path, headers=h)
    cleanup.cleanup_uploads(svc.ctx.db, try_days=30, regular_days=730, writer=svc.ctx.writer)

    records = metricsmock.get_records()
    registry = load_registry(METRICS_YAML)
    assert undocumented(records, registry) == []
    emitted = {r.key for r in records}
    assert SPEC_UPLOAD_METRICS - emitted == set()
