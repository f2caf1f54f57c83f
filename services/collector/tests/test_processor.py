# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The crashmover processing stored crashes through a real eliot's POST
/minidump (in-process, with the pinned stackwalker) and a real Crashpad dump:
the processed crash beside the raw crash and in the bucket, eliot down (kept
in the outbox), a dump eliot refuses (stored with a note), and
``tecken-process-crash``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from collector_helpers import ANNOTATIONS, crash_id_of

from tecken_collector.crashmover import build_crashmover
from tecken_collector.multipart import encode_multipart
from tecken_collector.processor import main as process_crash_main
from tecken_collector.processor import processed_path
from tecken_shared.config import build_config_manager
from tecken_shared.testing import realclients
from tecken_shared.testing.servers import free_port
from tecken_shared.testing.services import running_service


@pytest.fixture(scope="module")
def crashpad_dump(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    try:
        _, path = realclients.crashpad_dump(tmp_path_factory.mktemp("crash"))
    except realclients.MissingClient as exc:
        pytest.fail(str(exc), pytrace=False)
    return path.read_bytes()


@pytest.fixture(scope="module")
def eliot_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real eliot (its own gunicorn process) with /minidump on, whose symbol
    server refuses connections: every module is missing."""
    try:
        stackwalker = realclients.stackwalker()
    except realclients.MissingClient as exc:
        pytest.fail(str(exc), pytrace=False)
    extra = {"ELIOT_STACKWALKER_PATH": stackwalker, "ELIOT_METRICS_BACKEND": "none"}
    with running_service("eliot", tmp_path_factory.mktemp("eliot"), 1, extra) as eliot:
        yield eliot.url


def submit(app, dump: bytes) -> str:  # type: ignore[no-untyped-def]
    data, ctype = encode_multipart(ANNOTATIONS, {"upload_file_minidump": dump})
    return crash_id_of(app.post("/submit", data, headers={"Content-Type": ctype}).text)


def mover(env: dict, roots, tmp_path: Path):  # type: ignore[no-untyped-def]
    return build_crashmover(build_config_manager(env, str(tmp_path / "none.env")), list(roots))


def test_the_crashmover_stores_the_processed_crash_beside_the_raw_crash(
    make_app, make_env, roots, tmp_path, eliot_url, crashpad_dump
) -> None:  # type: ignore[no-untyped-def]
    app = make_app(crashmover_processor_url=eliot_url)
    crash_id = submit(app, crashpad_dump)
    assert (roots[0] / "outbox" / crash_id).is_file()  # processing alone fills the outbox
    env = make_env(crashmover_processor_url=eliot_url)
    assert mover(env, roots, tmp_path).run_once() == (1, 0)
    processed = json.loads(processed_path(roots[0], crash_id).read_text())
    assert processed["uuid"] == crash_id
    assert processed["product"] == ANNOTATIONS["ProductName"]
    assert processed["json_dump"]["crash_info"]["type"] == "SIGSEGV / SEGV_MAPERR"
    assert processed["processor_notes"] == []
    assert not (roots[0] / "outbox" / crash_id).exists()


def test_eliot_down_keeps_the_crash_in_the_outbox(
    make_app, make_env, roots, tmp_path, crashpad_dump
) -> None:  # type: ignore[no-untyped-def]
    down = f"http://127.0.0.1:{free_port()}"
    app = make_app(crashmover_processor_url=down)
    crash_id = submit(app, crashpad_dump)
    env = make_env(crashmover_processor_url=down, crashmover_processor_timeout="2")
    assert mover(env, roots, tmp_path).run_once() == (0, 1)
    assert (roots[0] / "outbox" / crash_id).is_file()
    assert not processed_path(roots[0], crash_id).exists()


def test_a_dump_eliot_refuses_is_stored_with_a_note(
    make_app, make_env, roots, tmp_path, eliot_url
) -> None:  # type: ignore[no-untyped-def]
    app = make_app(crashmover_processor_url=eliot_url)
    crash_id = submit(app, b"not a minidump")
    assert mover(make_env(crashmover_processor_url=eliot_url), roots, tmp_path).run_once() == (
        1,
        0,
    )
    processed = json.loads(processed_path(roots[0], crash_id).read_text())
    assert "json_dump" not in processed
    assert processed["processor_notes"][0].startswith("eliot /minidump answered 400")


def test_the_processed_crash_goes_to_the_bucket(
    make_app,
    make_env,
    roots,
    tmp_path,
    eliot_url,
    crashpad_dump,
    moto_server,
    s3_bucket,
    s3_storage_url,
) -> None:  # type: ignore[no-untyped-def]
    settings = {"crashmover_processor_url": eliot_url, "crashmover_storage_url": s3_storage_url}
    app = make_app(**settings)
    crash_id = submit(app, crashpad_dump)
    assert mover(make_env(**settings), roots, tmp_path).run_once() == (1, 0)
    client = boto3.client("s3", endpoint_url=moto_server.endpoint_url, region_name="us-east-1")
    key = f"prefix/v1/processed_crash/{crash_id}"
    processed = json.loads(client.get_object(Bucket=s3_bucket, Key=key)["Body"].read())
    assert processed["json_dump"]["status"] == "OK"
    assert not processed_path(roots[0], crash_id).exists()  # the local copy went with the rest


def test_tecken_process_crash(
    make_app, make_env, roots, tmp_path, eliot_url, crashpad_dump, monkeypatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    crash_id = submit(make_app(), crashpad_dump)
    for key, value in make_env().items():
        monkeypatch.setenv(key, value)
    assert process_crash_main([f"bp-{crash_id}", "--url", eliot_url]) == 0
    assert capsys.readouterr().out.strip() == str(processed_path(roots[0], crash_id))
    assert json.loads(processed_path(roots[0], crash_id).read_text())["json_dump"]
    assert process_crash_main(["00000000-0000-0000-0000-000000261201", "--url", eliot_url]) == 1
