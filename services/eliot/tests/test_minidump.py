# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""POST /minidump with the real stackwalker (the pinned minidump-stackwalk),
its shared symbol tree, and what happens when the stackwalker is missing.
The full path from a real Crashpad crash is in realclients/."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from tecken_eliot.downloader import SymbolDownloader
from tecken_eliot.minidump import DumpModule, NotAMinidump, read_modules
from tecken_eliot.stackwalk import SymFileCache
from tecken_eliot.testing import SSLTUNNEL, SymbolServer
from tecken_shared.breakpad import symbol_key
from tecken_shared.testing import FIXTURES_DIR, realclients
from tecken_shared.testing.servers import wsgi_server

#: A minidump without a thread list: the stackwalker refuses it.
PARTIAL_DUMP = FIXTURES_DIR / "collector" / "minidump_300k.dmp"


@pytest.fixture(scope="module")
def crashed(tmp_path_factory: pytest.TempPathFactory) -> tuple[realclients.Build, bytes]:
    """The crasher built here and a real Linux minidump of it, written by
    crashpad_handler."""
    try:
        build, path = realclients.crashpad_dump(tmp_path_factory.mktemp("crash"))
    except realclients.MissingClient as exc:
        pytest.fail(str(exc), pytrace=False)
    return build, path.read_bytes()


@pytest.fixture(scope="module")
def crashpad_dump(crashed: tuple[realclients.Build, bytes]) -> bytes:
    return crashed[1]


@pytest.fixture
def stackwalker() -> str:
    try:
        return realclients.stackwalker()
    except realclients.MissingClient as exc:
        pytest.fail(str(exc), pytrace=False)


def post_dump(app, data: bytes, status: int = 200, **fields: str):  # type: ignore[no-untyped-def]
    return app.post(
        "/minidump",
        params=list(fields.items()),
        upload_files=[("upload_file_minidump", "crash.dmp", data)],
        status=status,
    )


def test_off_by_default(app) -> None:  # type: ignore[no-untyped-def]
    resp = post_dump(app, PARTIAL_DUMP.read_bytes(), status=404)
    assert "ELIOT_STACKWALKER_PATH" in resp.json["title"]
    assert "stackwalker" not in app.get("/__heartbeat__", status="*").json["checks"]


def test_a_missing_stackwalker_is_a_startup_error_and_a_heartbeat_failure(make_app, capfd) -> None:  # type: ignore[no-untyped-def]
    app = make_app(ELIOT_STACKWALKER_PATH="/nonexistent/minidump-stackwalk")
    assert "POST /minidump is unavailable" in capfd.readouterr().err
    heartbeat = app.get("/__heartbeat__", status=500).json
    assert heartbeat["checks"]["stackwalker"] == "error"
    resp = post_dump(app, PARTIAL_DUMP.read_bytes(), status=503)
    assert "not found" in resp.json["title"]


def test_a_stackwalker_of_another_version_is_refused(make_app, stackwalker) -> None:  # type: ignore[no-untyped-def]
    app = make_app(ELIOT_STACKWALKER_PATH=stackwalker, ELIOT_STACKWALKER_VERSION="nope 1.0")
    assert app.get("/__heartbeat__", status=500).json["checks"]["stackwalker"] == "error"


def test_walks_a_minidump_and_remembers_missing_symbols(
    make_app, stackwalker, symbol_server, crashpad_dump
) -> None:  # type: ignore[no-untyped-def]
    app = make_app(ELIOT_STACKWALKER_PATH=stackwalker)
    resp = post_dump(app, crashpad_dump, ProductName="Firefox")
    body = resp.json
    assert body["status"] == "OK"
    assert body["annotations"] == {"ProductName": "Firefox"}
    assert {"crash_info", "crashing_thread", "threads", "modules", "system_info"} <= set(body)
    identities = {f"{m.debug_file}/{m.debug_id}" for m in read_modules(crashpad_dump)}
    assert set(body["symbol_fetch"]["modules"]) == identities
    assert set(body["symbol_fetch"]["modules"].values()) == {"missing"}
    hits = sum(symbol_server.hits.values())
    assert hits >= len(identities)
    # A second walk asks the symbol server nothing: the misses are remembered.
    again = post_dump(app, crashpad_dump).json
    assert sum(symbol_server.hits.values()) == hits
    assert again["threads"] == body["threads"]
    assert app.get("/__heartbeat__", status="*").json["checks"]["stackwalker"] == "ok"


def test_every_frame_and_module_is_explained(make_app, stackwalker, crashed, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``module_status`` and each frame's ``status`` (v5 explain's vocabulary):
    libcrashlib's real sym file (dump_syms) is found and symbolicates the top
    frame, the crasher's sym file is garbage (malformed), the system
    libraries are missing with the URLs asked."""
    import subprocess

    build, dump = crashed
    modules = {m.debug_file: m for m in read_modules(dump)}
    root = tmp_path / "store"
    crashlib, crasher = modules["libcrashlib.so"], modules["crasher"]
    sym = subprocess.run(
        [realclients.dump_syms(), str(build.crashlib)], capture_output=True, check=True
    ).stdout
    for module, data in [(crashlib, sym), (crasher, b"MODULE Linux x86_64 nonsense\n\0\0")]:
        dest = root / symbol_key(module.debug_file, module.debug_id)
        dest.parent.mkdir(parents=True)
        dest.write_bytes(data)
    server = SymbolServer(root)
    with wsgi_server(server) as url:
        app = make_app(ELIOT_STACKWALKER_PATH=stackwalker, ELIOT_SYMBOL_URLS=url + "/")
        body = post_dump(app, dump).json
        again = post_dump(app, dump).json  # from the symbol tree: cached
    status = body["module_status"]
    assert set(status) == set(body["symbol_fetch"]["modules"])
    found = status[f"libcrashlib.so/{crashlib.debug_id}"]
    assert found["status"] == "found" and found["cache_age"] >= 0 and "urls" not in found
    bad = status[f"crasher/{crasher.debug_id}"]
    assert bad["status"] == "malformed", bad
    libc = next(v for k, v in status.items() if k.startswith("libc.so"))
    assert libc["status"] == "missing" and libc["detail"] == "no symbol server has this module"
    assert libc["urls"] and all(u.startswith(url) for u in libc["urls"])
    thread = body["threads"][body["crash_info"]["crashing_thread"]]
    statuses = [(f["module"], f["status"]) for f in thread["frames"]]
    assert statuses[0] == ("libcrashlib.so", "symbolicated")
    assert ("crasher", "module_malformed") in statuses
    assert {s for m, s in statuses if m and m.startswith("libc.so")} == {"module_missing"}
    vocabulary = {"symbolicated", "no_function", "unknown_module", "offset_outside_module"}
    vocabulary |= {"module_missing", "module_malformed", "module_error"}
    assert {f["status"] for t in body["threads"] for f in t["frames"]} <= vocabulary
    cached = again["module_status"][f"libcrashlib.so/{crashlib.debug_id}"]
    assert cached["status"] == "found" and cached["cache_age"] >= found["cache_age"]
    assert again["threads"] == body["threads"]


def test_read_modules_matches_the_stackwalker(stackwalker, crashpad_dump, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json
    import subprocess

    dump = tmp_path / "crash.dmp"
    dump.write_bytes(crashpad_dump)
    out = subprocess.run([stackwalker, "--json", str(dump)], capture_output=True, check=True)
    expected = [
        (m["debug_file"], m["debug_id"])
        for m in json.loads(out.stdout)["modules"]
        if m["debug_id"] and set(m["debug_id"]) != {"0"}
    ]
    mine = [(m.debug_file, m.debug_id) for m in read_modules(crashpad_dump)]
    names = [name for name, _ in mine]
    assert "libcrashlib.so" in names and "libnoid.so" not in names  # no build id, no identity
    assert mine == expected


@pytest.mark.parametrize(
    ("data", "status"),
    [(b"not a dump at all, just text", 400), (b"MDMP", 400), (PARTIAL_DUMP.read_bytes(), 422)],
)
def test_bad_dumps(make_app, stackwalker, data: bytes, status: int) -> None:  # type: ignore[no-untyped-def]
    app = make_app(ELIOT_STACKWALKER_PATH=stackwalker)
    post_dump(app, data, status=status)


def test_request_errors(make_app, stackwalker) -> None:  # type: ignore[no-untyped-def]
    app = make_app(ELIOT_STACKWALKER_PATH=stackwalker, ELIOT_MAX_MINIDUMP_SIZE="1kb")
    post_dump(app, PARTIAL_DUMP.read_bytes(), status=413)
    app.post("/minidump", params={"a": "b"}, status=400)  # no dump part
    app.post("/minidump", b"{}", content_type="application/json", status=400)
    with pytest.raises(NotAMinidump):
        read_modules(b"")


def test_parallel_walks_share_one_download_per_module(tmp_path: Path, symbol_server) -> None:  # type: ignore[no-untyped-def]
    symbol_server.delay = 0.2
    downloader = SymbolDownloader(
        [symbol_server.url], timeout=5, retries=0, backoff=0.01, max_size=10**9
    )
    cache = SymFileCache(tmp_path / "tree", downloader, max_size=10**9, missing_ttl=3600)
    module = DumpModule("ssltunnel", *SSLTUNNEL)
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.ensure(module))) for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert symbol_server.downloads(*SSLTUNNEL) == 1
    assert sorted(results) == ["cached"] * 5 + ["found"]
    assert (tmp_path / "tree" / "ssltunnel" / SSLTUNNEL[1] / "ssltunnel.sym").is_file()


def test_the_symbol_tree_stays_under_its_size(tmp_path: Path, symbol_server) -> None:  # type: ignore[no-untyped-def]
    downloader = SymbolDownloader(
        [symbol_server.url], timeout=5, retries=0, backoff=0.01, max_size=10**9
    )
    cache = SymFileCache(tmp_path / "tree", downloader, max_size=1, missing_ttl=0)
    assert cache.ensure(DumpModule("ssltunnel", *SSLTUNNEL)) == "found"
    assert list((tmp_path / "tree").rglob("*.sym")) == []


def test_a_walk_over_its_time_is_killed(make_app, crashpad_dump, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # A stand-in that never finishes: a real walk of a small dump is too fast
    # to time out reliably.
    hang = tmp_path / "hang"
    version = realclients.STACKWALKER_VERSION
    hang.write_text(
        f'#!/bin/sh\n[ "$1" = --version ] && echo "{version}" && exit 0\nexec sleep 30\n'
    )
    hang.chmod(0o755)
    app = make_app(
        ELIOT_STACKWALKER_PATH=str(hang),
        ELIOT_STACKWALK_TIMEOUT="0.5",
    )
    started = time.monotonic()
    assert "took over 0.5s" in post_dump(app, crashpad_dump, status=504).json["title"]
    assert time.monotonic() - started < 10


def test_a_walk_over_its_memory_fails(make_app, stackwalker, crashpad_dump) -> None:  # type: ignore[no-untyped-def]
    small = make_app(ELIOT_STACKWALKER_PATH=stackwalker, ELIOT_STACKWALK_MEMORY_LIMIT="8mb")
    assert "exited with" in post_dump(small, crashpad_dump, status=422).json["title"]


def test_a_missing_sym_file_is_rechecked_once_per_period(tmp_path: Path, symbol_server) -> None:  # type: ignore[no-untyped-def]
    downloader = SymbolDownloader(
        [symbol_server.url], timeout=5, retries=0, backoff=0.01, max_size=10**9
    )
    cache = SymFileCache(
        tmp_path / "tree", downloader, max_size=10**9, missing_ttl=3600, recheck=60
    )
    module = DumpModule("late.so", "late.so", "F" * 33)
    key = symbol_key(module.debug_file, module.debug_id)
    assert cache.ensure(module) == "missing"
    uploaded = symbol_server.root / key
    uploaded.parent.mkdir(parents=True)
    shutil.copy(symbol_server.root / symbol_key(*SSLTUNNEL), uploaded)
    try:
        assert cache.ensure(module) == "missing"  # within the period: not asked
        assert sum(symbol_server.heads.values()) == 0
        marker = tmp_path / "tree" / (key + ".missing")
        old = time.time() - 61
        os.utime(marker, (old, old))
        assert cache.ensure(module) == "found"
        assert symbol_server.heads["/" + key] == 1
        assert (tmp_path / "tree" / key).is_file() and not marker.exists()
    finally:
        shutil.rmtree(uploaded.parent.parent)
