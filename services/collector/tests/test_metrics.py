# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Every metric the collector emits is documented, and every metric of the spec
is emitted on the main paths."""

from __future__ import annotations

import gzip

from collector_helpers import ANNOTATIONS

from tecken_collector.multipart import encode_multipart
from tecken_collector.settings import METRICS_YAML
from tecken_shared.metrics import load_registry, undocumented

SPEC_METRICS = {
    "collector.breakpad_resource.gzipped_crash",
    "collector.breakpad_resource.gzipped_crash_decompress",
    "collector.breakpad_resource.crash_size",
    "collector.breakpad_resource.on_post.time",
    "collector.breakpad_resource.malformed",
    "collector.breakpad_resource.incoming_crash",
    "collector.breakpad_resource.throttle_rule",
    "collector.breakpad_resource.throttle",
    "collector.breakpad_resource.unauthorized_uuid",
    "collector.crashmover.crash_handling.time",
    "collector.crashmover.save_crash_dropped.count",
    "collector.crashmover.save_crash.count",
    "collector.crashmover.crash_save.time",
    "collector.health.broken.count",
    "collector.health.version.count",
    "collector.health.lbheartbeat.count",
    "collector.health.heartbeat.count",
}


def test_main_paths_emit_documented_metrics(make_app, metricsmock, tmp_path):
    app = make_app()
    data, ctype = encode_multipart(ANNOTATIONS, {"upload_file_minidump": b"x" * 100})
    headers = {"Content-Type": ctype}
    app.post("/submit", data, headers=headers)
    app.post("/submit", gzip.compress(data), headers=dict(headers, **{"Content-Encoding": "gzip"}))
    app.post("/submit", b"junk", headers=dict(headers, **{"Content-Encoding": "gzip"}), status=400)
    app.post("/submit", b"junk", headers=headers, status=400)
    rejected, rctype = encode_multipart({"ProductName": "Nope"}, {})
    app.post("/submit", rejected, headers={"Content-Type": rctype})
    uuid_crash, uctype = encode_multipart(dict(ANNOTATIONS, uuid="x"), {})
    app.post("/submit", uuid_crash, headers={"Content-Type": uctype}, status=401)
    for path in ("/__lbheartbeat__", "/__heartbeat__", "/__version__"):
        app.get(path)
    app.get("/__broken__", expect_errors=True)
    broken = make_app(crashstorage_root=str(tmp_path / "x"), crashstorage_fallback_root="")
    broken.post("/submit", data, headers=headers, status=500)

    records = metricsmock.get_records()
    registry = load_registry(METRICS_YAML)
    assert undocumented(records, registry) == []
    emitted = {r.key for r in records}
    assert SPEC_METRICS <= emitted, SPEC_METRICS - emitted
    metricsmock.assert_incr("collector.breakpad_resource.malformed", tags=["reason:bad_gzip"])
    metricsmock.assert_incr(
        "collector.breakpad_resource.throttle_rule", tags=["rule:unsupported_product"]
    )
    metricsmock.assert_incr("collector.breakpad_resource.throttle", tags=["result:reject"])
    # The crash saves' fsync rounds (group commit): two requests per crash.
    assert {r.value for r in records if r.key == "collector.crashmover.fsync_round_size"} >= {1}
