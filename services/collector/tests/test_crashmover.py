# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The scale-out path against moto's server on 127.0.0.1: S3 crash storage in
Antenna's bucket layout, SQS publishing after the save, the local outbox
surviving endpoint outages, and the crashmover process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import boto3
import pytest
from collector_helpers import ANNOTATIONS, crash_files, crash_id_of
from collector_helpers import sqs_messages as messages

from tecken_collector.crashmover import build_crashmover
from tecken_collector.multipart import encode_multipart
from tecken_collector.settings import METRICS_YAML
from tecken_shared.config import build_config_manager
from tecken_shared.metrics import load_registry, undocumented
from tecken_shared.testing.servers import free_port

DUMP = os.urandom(50_000)


@pytest.fixture
def sqs_queue(moto_server) -> str:
    client = boto3.client("sqs", endpoint_url=moto_server.endpoint_url, region_name="us-east-1")
    name = f"tecken-test-{uuid.uuid4().hex[:12]}"
    client.create_queue(QueueName=name)
    return name


def s3(endpoint: str):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


def submit(app) -> str:
    data, ctype = encode_multipart(
        ANNOTATIONS, {"upload_file_minidump": DUMP, "memory_report": b"mem"}
    )
    return crash_id_of(app.post("/submit", data, headers={"Content-Type": ctype}).text)


def mover_env(make_env, storage_url: str, endpoint: str, queue: str, **extra: str) -> dict:
    return make_env(
        crashmover_storage_url=storage_url,
        crashmover_queue=queue,
        crashmover_queue_endpoint_url=endpoint,
        **extra,
    )


def make_mover(env: dict, roots, tmp_path):
    manager = build_config_manager(env, str(tmp_path / "none.env"))
    return build_crashmover(manager, list(roots))


def assert_in_bucket(endpoint: str, bucket: str, crash_id: str) -> None:
    client = s3(endpoint)
    day = "20" + crash_id[-6:]

    def get(key: str) -> bytes:
        return client.get_object(Bucket=bucket, Key=f"prefix/{key}")["Body"].read()

    raw = json.loads(get(f"v1/raw_crash/{day}/{crash_id}"))
    assert raw["uuid"] == crash_id
    assert json.loads(get(f"v1/dump_names/{crash_id}")) == ["memory_report", "upload_file_minidump"]
    assert get(f"v1/dump/{crash_id}") == DUMP
    assert get(f"v1/memory_report/{crash_id}") == b"mem"


def test_outbox_moved_to_s3_and_published(
    make_app, make_env, roots, tmp_path, moto_server, s3_bucket, s3_storage_url, sqs_queue
):
    env = mover_env(make_env, s3_storage_url, moto_server.endpoint_url, sqs_queue)
    app = make_app(**{k.removeprefix("COLLECTOR_").lower(): v for k, v in env.items()})
    crash_id = submit(app)
    assert (roots[0] / "outbox" / crash_id).is_file()
    assert messages(moto_server.endpoint_url, sqs_queue) == []

    mover = make_mover(env, roots, tmp_path)
    assert mover.run_once() == (1, 0)
    assert_in_bucket(moto_server.endpoint_url, s3_bucket, crash_id)
    assert messages(moto_server.endpoint_url, sqs_queue) == [crash_id]
    assert crash_files(roots[0]) == []  # moved: local copy and marker gone
    assert mover.run_once() == (0, 0)


def test_keep_local_copy(
    make_app, make_env, roots, tmp_path, moto_server, s3_storage_url, sqs_queue
):
    env = mover_env(
        make_env,
        s3_storage_url,
        moto_server.endpoint_url,
        sqs_queue,
        crashmover_delete_local="false",
    )
    app = make_app(**{k.removeprefix("COLLECTOR_").lower(): v for k, v in env.items()})
    crash_id = submit(app)
    make_mover(env, roots, tmp_path).run_once()
    assert [p for p in crash_files(roots[0]) if "outbox" in p] == []
    assert any(crash_id in p and "raw_crash" in p for p in crash_files(roots[0]))


def test_endpoints_down_crash_kept_and_published_later(make_app, make_env, roots, tmp_path):
    # A moto server of this test's own, so it can be stopped and started again.
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    queue = "tecken-outage"
    storage_url = f"s3://outage/prefix?endpoint_url={endpoint}&region=us-east-1&connect_timeout=1"
    env = mover_env(make_env, storage_url, endpoint, queue)
    app = make_app(**{k.removeprefix("COLLECTOR_").lower(): v for k, v in env.items()})
    crash_id = submit(app)  # accepted while nothing listens on the endpoint
    assert (roots[0] / "outbox" / crash_id).is_file()

    mover = make_mover(env, roots, tmp_path)
    assert mover.run_once() == (0, 1)  # S3 down: kept
    assert (roots[0] / "outbox" / crash_id).is_file()

    server = start_moto_on(port)
    try:
        s3(endpoint).create_bucket(Bucket="outage")
        # S3 back, queue missing: stored but not published; marker remembers the upload.
        assert mover.run_once() == (0, 1)
        assert (roots[0] / "outbox" / crash_id).read_bytes() == b"stored\n"
        boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1").create_queue(
            QueueName=queue
        )
        assert mover.run_once() == (1, 0)
        assert_in_bucket(endpoint, "outage", crash_id)
        assert messages(endpoint, queue) == [crash_id]
    finally:
        server.stop()


def start_moto_on(port: int):
    from moto.server import ThreadedMotoServer

    from tecken_shared.testing.servers import wait_for_port

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    wait_for_port("127.0.0.1", port)
    return server


def test_inline_move(
    make_app, make_env, roots, moto_server, s3_bucket, s3_storage_url, sqs_queue, metricsmock
):
    env = mover_env(
        make_env, s3_storage_url, moto_server.endpoint_url, sqs_queue, crashmover_inline="true"
    )
    app = make_app(**{k.removeprefix("COLLECTOR_").lower(): v for k, v in env.items()})
    crash_id = submit(app)
    assert_in_bucket(moto_server.endpoint_url, s3_bucket, crash_id)
    assert messages(moto_server.endpoint_url, sqs_queue) == [crash_id]
    assert crash_files(roots[0]) == []
    metricsmock.assert_incr("collector.crashmover.move_crash.count")
    assert undocumented(metricsmock.get_records(), load_registry(METRICS_YAML)) == []


def test_inline_move_with_endpoint_down_still_accepts(make_app, make_env, roots, metricsmock):
    endpoint = f"http://127.0.0.1:{free_port()}"
    storage_url = f"s3://b/p?endpoint_url={endpoint}&region=us-east-1&connect_timeout=1"
    env = mover_env(make_env, storage_url, endpoint, "q", crashmover_inline="true")
    app = make_app(**{k.removeprefix("COLLECTOR_").lower(): v for k, v in env.items()})
    crash_id = submit(app)
    assert (roots[0] / "outbox" / crash_id).is_file()
    metricsmock.assert_incr("collector.crashmover.publish_crash_dropped.count")
    metricsmock.assert_incr(
        "collector.crashmover.retry_count", tags=["count:save_crash_exception.count"]
    )
    assert undocumented(metricsmock.get_records(), load_registry(METRICS_YAML)) == []


def test_queue_only_keeps_crash_on_disk(
    make_app, make_env, roots, tmp_path, moto_server, sqs_queue
):
    env = make_env(
        crashmover_queue=sqs_queue, crashmover_queue_endpoint_url=moto_server.endpoint_url
    )
    app = make_app(**{k.removeprefix("COLLECTOR_").lower(): v for k, v in env.items()})
    crash_id = submit(app)
    assert make_mover(env, roots, tmp_path).run_once() == (1, 0)
    assert messages(moto_server.endpoint_url, sqs_queue) == [crash_id]
    files = crash_files(roots[0])
    assert any("raw_crash" in p for p in files) and not any("outbox" in p for p in files)


def test_fallback_root_outbox_is_drained(
    make_app, make_env, roots, tmp_path, moto_server, s3_bucket, s3_storage_url, sqs_queue
):
    env = mover_env(
        make_env,
        s3_storage_url,
        moto_server.endpoint_url,
        sqs_queue,
        crashstorage_root=str(tmp_path / "missing"),
    )
    app = make_app(**{k.removeprefix("COLLECTOR_").lower(): v for k, v in env.items()})
    crash_id = submit(app)
    assert (roots[1] / "outbox" / crash_id).is_file()
    mover = make_mover(env, [tmp_path / "missing", roots[1]], tmp_path)
    assert mover.run_once() == (1, 0)
    assert_in_bucket(moto_server.endpoint_url, s3_bucket, crash_id)


def test_stale_markers_and_temp_files_swept(roots, tmp_path, make_env):
    env = make_env(crashmover_queue="q", crashmover_stale_seconds="0")
    mover = make_mover(env, roots, tmp_path)
    outbox = roots[0] / "outbox"
    outbox.mkdir()
    orphan = "de1bb258-cbbf-4589-a673-34f800160918"
    (outbox / orphan).write_bytes(b"")
    tmp = roots[0] / "20160918" / "raw_crash"
    tmp.mkdir(parents=True)
    (tmp / f".{orphan}.json.abc.tmp").write_bytes(b"{")
    time.sleep(0.01)
    assert mover.run_once() == (0, 1)
    assert not (outbox / orphan).exists()
    assert mover.sweep() == 1
    assert list(tmp.iterdir()) == []


def test_sweep_removes_parts_of_crashes_never_completed(app, roots, tmp_path, make_env):
    """RT-21: a writer killed between placing the dumps and the raw crash left
    dumps and dump names that no raw crash refers to: swept once stale; a
    complete crash is kept."""
    data, ctype = encode_multipart(ANNOTATIONS, {"upload_file_minidump": b"MDMP" * 10})
    complete = crash_id_of(app.post("/submit", data, headers={"Content-Type": ctype}).text)
    orphan = "de1bb258-cbbf-4589-a673-34f800160918"
    day = roots[0] / "20160918"
    for kind, name in (("upload_file_minidump", orphan), ("dump_names", f"{orphan}.json")):
        (day / kind).mkdir(parents=True, exist_ok=True)
        (day / kind / name).write_bytes(b"x")
    files_before = sorted(crash_files(roots[0]))

    fresh = make_mover(make_env(crashmover_stale_seconds="3600"), roots, tmp_path)
    assert fresh.sweep() == 0  # maybe a save in flight: kept
    assert sorted(crash_files(roots[0])) == files_before

    mover = make_mover(make_env(crashmover_stale_seconds="0"), roots, tmp_path)
    time.sleep(0.01)
    assert mover.sweep() == 2
    left = crash_files(roots[0])
    assert not [path for path in left if orphan in path]
    assert len([path for path in left if complete in path]) == 3


def test_crashmover_process(
    make_env, roots, tmp_path, moto_server, s3_bucket, s3_storage_url, sqs_queue
):
    env = mover_env(make_env, s3_storage_url, moto_server.endpoint_url, sqs_queue)
    # A crash saved by a collector before the crashmover starts.
    import webtest

    from tecken_collector.app import create_app

    app = webtest.TestApp(create_app(build_config_manager(env, str(tmp_path / "none.env"))))
    crash_id = submit(app)
    proc_env = dict(os.environ, **env, COLLECTOR_CRASHMOVER_POLL_INTERVAL="0.1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tecken_collector.crashmover"],
        env=proc_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while (roots[0] / "outbox" / crash_id).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not (roots[0] / "outbox" / crash_id).exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert_in_bucket(moto_server.endpoint_url, s3_bucket, crash_id)
    assert messages(moto_server.endpoint_url, sqs_queue) == [crash_id]
    assert "crashmover stopped" in err


def test_heartbeat_reports_outbox_backlog(make_app, make_env, roots):
    endpoint = f"http://127.0.0.1:{free_port()}"
    app = make_app(
        crashmover_queue="q", crashmover_queue_endpoint_url=endpoint, crashmover_max_outbox="2"
    )
    for _ in range(2):
        submit(app)
    assert app.get("/__heartbeat__").json["checks"] == {"crashstorage": "ok", "outbox": "ok"}
    submit(app)
    resp = app.get("/__heartbeat__", expect_errors=True)
    assert resp.status_int == 503
    assert resp.json["errors"][0]["name"] == "outbox"
    assert "3 crashes wait in the outbox" in resp.json["errors"][0]["msg"]


def test_many_crashes_moved_concurrently(
    make_app,
    make_env,
    roots,
    tmp_path,
    moto_server,
    s3_bucket,
    s3_storage_url,
    sqs_queue,
    metricsmock,
):
    env = mover_env(make_env, s3_storage_url, moto_server.endpoint_url, sqs_queue)
    app = make_app(**{k.removeprefix("COLLECTOR_").lower(): v for k, v in env.items()})
    ids = {submit(app) for _ in range(12)}
    mover = make_mover(dict(env, COLLECTOR_CRASHMOVER_CONCURRENCY="4"), roots, tmp_path)
    assert mover.run_once() == (12, 0)
    metricsmock.assert_gauge("collector.crashmover.outbox_size", value=12)
    assert len(metricsmock.filter_records("incr", "collector.crashmover.move_crash.count")) == 12
    assert undocumented(metricsmock.get_records(), load_registry(METRICS_YAML)) == []
    assert sorted(messages(moto_server.endpoint_url, sqs_queue)) == sorted(ids)
    for crash_id in ids:
        assert_in_bucket(moto_server.endpoint_url, s3_bucket, crash_id)
    assert crash_files(roots[0]) == []


@pytest.mark.parametrize("dump_names", [b"[not json", b"5", b"[1]"])
def test_damaged_crash_stays_others_move(
    make_app, make_env, roots, tmp_path, moto_server, s3_storage_url, sqs_queue, dump_names
):
    env = mover_env(make_env, s3_storage_url, moto_server.endpoint_url, sqs_queue)
    app = make_app(**{k.removeprefix("COLLECTOR_").lower(): v for k, v in env.items()})
    damaged, good = submit(app), submit(app)
    (roots[0] / ("20" + damaged[-6:]) / "dump_names" / f"{damaged}.json").write_bytes(dump_names)
    mover = make_mover(env, roots, tmp_path)
    assert mover.run_once() == (1, 1)
    assert messages(moto_server.endpoint_url, sqs_queue) == [good]
    assert (roots[0] / "outbox" / damaged).is_file()


# -- several crashmovers sharing one root (the fallback root on NFS) -----------


def test_two_crashmover_processes_sharing_a_root_publish_each_crash_once(
    make_env, roots, tmp_path, moto_server, s3_bucket, s3_storage_url, sqs_queue
):
    """Two crashmover processes (each with its own primary root) share the
    fallback root holding 150 crashes: each crash is stored and published
    exactly once, and the shared outbox ends empty."""
    from tecken_collector.crashid import create_crash_id
    from tecken_collector.crashstorage import FSCrashStorage

    shared = roots[1]
    store = FSCrashStorage(shared, durable=False, outbox=True)
    ids = [create_crash_id(0) for _ in range(150)]
    for crash_id in ids:
        store.save(
            crash_id, {"ProductName": "Firefox", "uuid": crash_id}, {"upload_file_minidump": DUMP}
        )
    procs = []
    for i in range(2):
        own = tmp_path / f"primary{i}"
        own.mkdir()
        env = mover_env(make_env, s3_storage_url, moto_server.endpoint_url, sqs_queue)
        env.update(
            COLLECTOR_CRASHSTORAGE_ROOT=str(own),
            COLLECTOR_CRASHSTORAGE_FALLBACK_ROOT=str(shared),
            COLLECTOR_CRASHMOVER_POLL_INTERVAL="0.05",
            COLLECTOR_CRASHMOVER_CONCURRENCY="8",
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "tecken_collector.crashmover"],
                env=dict(os.environ, **env),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        deadline = time.monotonic() + 120
        while os.listdir(shared / "outbox") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert os.listdir(shared / "outbox") == []
    finally:
        errs = []
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            errs.append(proc.communicate(timeout=30)[1])
    assert all(proc.returncode == 0 for proc in procs), errs
    published = messages(moto_server.endpoint_url, sqs_queue)
    assert sorted(published) == sorted(ids)  # each exactly once
    # Both processes took part.
    assert all("published" in err for err in errs), [err[-500:] for err in errs]
    for crash_id in ids[:5]:
        assert_in_bucket_main_dump(moto_server.endpoint_url, s3_bucket, crash_id)


def assert_in_bucket_main_dump(endpoint: str, bucket: str, crash_id: str) -> None:
    got = s3(endpoint).get_object(Bucket=bucket, Key=f"prefix/v1/dump/{crash_id}")["Body"].read()
    assert got == DUMP


def test_a_dead_movers_claim_goes_back_to_the_outbox(
    make_env, roots, tmp_path, moto_server, sqs_queue
):
    import webtest

    from tecken_collector.app import create_app
    from tecken_collector.crashmover import claim

    env = make_env(
        crashmover_queue=sqs_queue,
        crashmover_queue_endpoint_url=moto_server.endpoint_url,
        crashmover_claim_timeout="60",
    )
    app = webtest.TestApp(create_app(build_config_manager(env, str(tmp_path / "none.env"))))
    crash_id = submit(app)
    marker = roots[0] / "outbox" / crash_id
    claimed = claim(marker, "dead-mover")
    assert claimed is not None and not marker.exists()
    mover = make_mover(env, roots, tmp_path)
    assert mover.run_once() == (0, 0)  # claimed by another, not timed out
    old = time.time() - 120
    os.utime(claimed, (old, old))
    assert mover.run_once() == (1, 0)
    assert messages(moto_server.endpoint_url, sqs_queue) == [crash_id]
    assert os.listdir(roots[0] / "outbox") == []
