# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Every metric emitted on the main paths is documented in metrics.yaml, and
every metric of Eliot's spec is emitted."""

import json
import os
import time

from tecken_eliot.cache_manager import CacheManager
from tecken_eliot.diskcache import DiskCache
from tecken_eliot.naming import cache_stem
from tecken_eliot.settings import METRICS_YAML, count_scrub_error
from tecken_eliot.testing import BROKEN, QIPCAP, SSLTUNNEL, WRONGID
from tecken_shared.metrics import load_registry, undocumented
from tecken_shared.sentry import guarded

SPEC_METRICS = {
    "eliot.pageview",
    "eliot.symbolicate.api",
    "eliot.symbolicate.request_error",
    "eliot.symbolicate.jobs_count",
    "eliot.symbolicate.stacks_count",
    "eliot.symbolicate.frames_count",
    "eliot.symbolicate.parse_sym_file.parse",
    "eliot.symbolicate.parse_sym_file.error",
    "eliot.downloader.download",
    "eliot.diskcache.get",
    "eliot.diskcache.set",
    "eliot.diskcache.evict",
    "eliot.diskcache.usage",
    "eliot.sentry_scrub_error",
}


def test_main_paths_emit_only_documented_metrics(make_app, symbol_server, cache_dir, metricsmock):
    app = make_app(ELIOT_SYMBOLS_CACHE_MAX_SIZE="100kb")
    modules = [SSLTUNNEL, QIPCAP, BROKEN, WRONGID, ("x", "ABC"), ("missing.pdb", "A" * 33)]
    payload = {
        "jobs": [{"memoryMap": [list(m) for m in modules], "stacks": [[[i, 16] for i in range(6)]]}]
    }
    app.post_json("/symbolicate/v5", payload, headers={"Debug": "1"})
    app.post_json("/symbolicate/v5", payload)
    app.post_json("/symbolicate/v4", payload["jobs"][0])
    for body in (b"{", json.dumps({"jobs": [1] * 11}), json.dumps({"jobs": 1})):
        app.post("/symbolicate/v5", body, expect_errors=True)
    for bad in ({"memoryMap": 1, "stacks": []}, {"memoryMap": [], "stacks": 1}):
        app.post_json("/symbolicate/v5", bad, expect_errors=True)
    app.get("/")
    app.get("/__heartbeat__", expect_errors=True)
    # a corrupt entry, met by a fresh worker
    symc = cache_dir / "cache" / (cache_stem(*QIPCAP) + ".symc")
    symc.write_bytes(b"junk")
    make_app().post_json("/symbolicate/v5", payload)
    # the cache manager, over the limit at start-up
    old = time.time() - 1000
    os.utime(symc, (old, old))
    manager = CacheManager(DiskCache(cache_dir, max_size=20_000), poll_ms=10)
    manager.start()
    manager.close()
    # a scrubber failure
    guarded(lambda e, h: 1 / 0, count_scrub_error("webapp"))({}, None)

    records = metricsmock.get_records()
    registry = load_registry(METRICS_YAML)
    assert undocumented(records, registry) == []
    emitted = {r.key for r in records}
    assert SPEC_METRICS - emitted == set()
    assert SPEC_METRICS <= set(registry)


def test_sentry_scrub_errors_are_counted(tmp_path):
    import sentry_sdk
    from markus.testing import MetricsMock

    from tecken_eliot.settings import setup_eliot_process
    from tecken_shared.config import build_config_manager

    env = {
        "ELIOT_SECRET_SENTRY_DSN": "http://public@127.0.0.1:9/1",
        "ELIOT_METRICS_BACKEND": "none",
    }
    setup_eliot_process(build_config_manager(env, str(tmp_path / "none.env")), "webapp")
    metricsmock = MetricsMock()
    metricsmock.__enter__()  # after the set-up, which configures markus
    try:
        before_send = sentry_sdk.get_client().options["before_send"]
        assert before_send({"request": {"headers": {"Cookie": "x"}}}, None) is not None
        assert before_send({"request": {"headers": 5, "env": 7, "cookies": 1}}, None) is not None
        assert before_send(None, None) is None  # the scrubber raised: dropped and counted
        metricsmock.assert_incr("eliot.sentry_scrub_error", tags=["service:webapp"])
    finally:
        metricsmock.__exit__(None, None, None)
        sentry_sdk.init(dsn=None)
