# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""A real crash through the three services, driven only by the real clients:

1. a C program (and two shared libraries, one without a build id) built here
   with the system compiler crashes; Crashpad's ``crashpad_handler`` dumps it
   and uploads the dump to the collector (gzip multipart, chunked);
2. Mozilla's ``dump_syms`` writes ``.sym`` files for the binaries and
   ``tecken-upload-symbols`` uploads them to the symbols service;
3. rust-minidump's ``minidump-stackwalk --symbols-url`` walks the stored dump
   against the symbols service over HTTP;
4. eliot's ``POST /minidump`` gives the same frames;
5. the collector's crashmover, and ``tecken-process-crash``, process the
   stored crash through ``/minidump`` into ``processed_crash/<id>.json``;
6. ``fx-crash-sig`` (with ``siggen``) symbolicates a crash ping built from the
   dump through eliot's ``/symbolicate/v5`` and gives the signature.

The services run as real processes (``make run``) on free loopback ports.
The pinned client versions are in ``tecken_shared.testing.realclients``.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tecken_shared.breakpad import read_header, symbol_key
from tecken_shared.testing import realclients
from tecken_shared.testing.realclients import Build
from tecken_shared.testing.servers import make_run, make_run_env

ROOT = Path(__file__).resolve().parents[1]
SOURCES = realclients.CRASHER_SOURCES

pytestmark = pytest.mark.slow


def _need(finder) -> str:  # type: ignore[no-untyped-def]
    try:
        return finder()
    except realclients.MissingClient as exc:
        pytest.fail(str(exc), pytrace=False)


def _line_of(source: Path, marker: str) -> int:
    for number, line in enumerate(source.read_text().splitlines(), 1):
        if marker in line:
            return number
    raise AssertionError(f"{marker!r} not in {source}")


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    return _need(lambda: realclients.build_crasher(tmp_path_factory.mktemp("build")))


@dataclass
class Stack:
    symbols: str
    eliot: str
    collector: str
    env: dict[str, str]
    crashes: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """symbols, eliot and collector started by ``make run`` on free ports."""
    tmp = tmp_path_factory.mktemp("stack")
    env, urls = make_run_env(tmp)
    env.update(
        {
            "ELIOT_STACKWALKER_PATH": _need(realclients.stackwalker),
            # Crashpad's libcurl uploader sends chunked bodies (no Content-Length).
            "COLLECTOR_ACCEPT_CHUNKED": "true",
            # The crashmover processes each stored crash through eliot's /minidump.
            "COLLECTOR_CRASHMOVER_PROCESSOR_URL": urls["ELIOT"],
        }
    )
    with make_run("run", ROOT, env, tmp / "run.log"):
        yield Stack(urls["SYMBOLS"], urls["ELIOT"], urls["COLLECTOR"], env, tmp / "crashes")


@dataclass
class Symbols:
    keys: dict[str, str]  # binary name -> symbols key


@pytest.fixture(scope="module")
def symbols(build: Build, stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Symbols:
    """``dump_syms`` on the three binaries, uploaded with tecken-upload-symbols."""
    tool = _need(realclients.dump_syms)
    tree = tmp_path_factory.mktemp("symbols")
    keys = {}
    for binary in (build.crasher, build.crashlib, build.noid):
        sym = tree / f"{binary.name}.sym.tmp"
        done = subprocess.run([tool, str(binary)], capture_output=True)
        assert done.returncode == 0, done.stderr
        sym.write_bytes(done.stdout)
        header = read_header(sym)
        key = symbol_key(header.debug_filename or "", header.debug_id or "")
        (tree / key).parent.mkdir(parents=True)
        sym.rename(tree / key)
        keys[binary.name] = key

    admin = [str(ROOT / "bin" / "tecken-symbols-admin")]
    run = {"env": stack.env, "capture_output": True, "text": True, "cwd": ROOT, "timeout": 60}
    assert subprocess.run([*admin, "superuser", "ci@example.com"], **run).returncode == 0
    made = subprocess.run([*admin, "create-token", "ci@example.com"], **run)
    assert made.returncode == 0, made.stderr
    upload = subprocess.run(
        [str(ROOT / "bin" / "tecken-upload-symbols"), "--url", stack.symbols, str(tree)],
        **{**run, "env": {**stack.env, "TECKEN_AUTH_TOKEN": made.stdout.strip()}},
    )
    assert upload.returncode == 0, upload.stdout + upload.stderr
    return Symbols(keys)


@dataclass
class Crash:
    crash_id: str
    report_id: str
    dump: bytes
    database: Path


@pytest.fixture(scope="module")
def crash(
    build: Build, stack: Stack, symbols: Symbols, tmp_path_factory: pytest.TempPathFactory
) -> Crash:
    """The crash, once the build's symbols are uploaded (as a release does)."""
    _need(realclients.crashpad_handler)
    tmp = tmp_path_factory.mktemp("crashpad")
    database = tmp / "db"
    realclients.crashpad_database(database)
    attachment = tmp / "notes.txt"
    attachment.write_text("attached by the real-client test\n")
    done = realclients.crash(
        build,
        database,
        f"--url={stack.collector}/submit?product=TeckenTest&version=1.0",
        "--no-rate-limit",
        "--annotation=ProductName=TeckenTest",
        "--annotation=Version=1.0",
        "--annotation=ReleaseChannel=test",
        f"--attachment={attachment}",
    )
    assert done.returncode == -11, done.stderr  # the program died of its SIGSEGV
    completed = list((database / "completed").glob("*.dmp"))
    assert len(completed) == 1, (done.stderr, list(database.rglob("*")))
    report_id = completed[0].stem
    meta = completed[0].with_suffix(".meta").read_bytes()
    # Crashpad keeps the server's answer as the report's remote id.
    marker = meta.index(b"CrashID=bp-")
    crash_id = meta[marker + len(b"CrashID=bp-") :][:36].decode()
    return Crash(crash_id, report_id, completed[0].read_bytes(), database)


def _stored(crashes: Path, kind: str, crash_id: str) -> Path:
    (found,) = crashes.glob(f"*/{kind}/{crash_id}*")
    return found


def test_crashpad_uploads_to_the_collector_and_the_crash_is_stored_complete(
    crash: Crash, stack: Stack
) -> None:
    raw = json.loads(_stored(stack.crashes, "raw_crash", crash.crash_id).read_text())
    assert raw["uuid"] == crash.crash_id
    assert (raw["ProductName"], raw["Version"], raw["ReleaseChannel"]) == (
        "TeckenTest",
        "1.0",
        "test",
    )
    assert raw["metadata"]["payload_compressed"] == "1"  # Crashpad gzips by default
    assert raw["metadata"]["user_agent"].startswith("Crashpad/")
    assert "guid" in raw
    names = json.loads(_stored(stack.crashes, "dump_names", crash.crash_id).read_text())
    assert sorted(names) == ["notestxt", "upload_file_minidump"]
    dump = _stored(stack.crashes, "upload_file_minidump", crash.crash_id).read_bytes()
    assert dump == crash.dump  # byte for byte what Crashpad wrote
    assert dump[:4] == b"MDMP"
    attachment = _stored(stack.crashes, "notestxt", crash.crash_id).read_text()
    assert attachment == "attached by the real-client test\n"


def test_dump_syms_output_is_uploaded_and_served(symbols: Symbols, stack: Stack) -> None:
    crashlib = symbols.keys["libcrashlib.so"]
    assert crashlib.startswith("libcrashlib.so/") and crashlib.endswith("/libcrashlib.so.sym")
    for key in symbols.keys.values():
        resp = requests.get(f"{stack.symbols}/{key}", timeout=10)
        assert resp.status_code == 200, key
        assert resp.text.startswith("MODULE Linux x86_64 ")


def _walk(dump: Path, stack: Stack, tmp: Path) -> dict:
    done = subprocess.run(
        [
            _need(realclients.stackwalker),
            "--json",
            "--symbols-url",
            stack.symbols + "/",
            "--symbols-cache",
            str(tmp / "cache"),
            "--symbols-tmp",
            str(tmp / "tmp"),
            str(dump),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _top_frames(json_dump: dict, count: int = 3) -> list[tuple]:
    thread = json_dump["threads"][json_dump["crash_info"]["crashing_thread"]]
    return [
        (f.get("module"), f.get("function"), Path(f.get("file") or "").name, f.get("line"))
        for f in thread["frames"][:count]
    ]


def expected_frames() -> list[tuple]:
    return [
        ("libcrashlib.so", "crash_here", "crashlib.c", _line_of(SOURCES / "crashlib.c", "CRASH")),
        (
            "libcrashlib.so",
            "lib_entry",
            "crashlib.c",
            _line_of(SOURCES / "crashlib.c", "crash_here(where);"),
        ),
        ("crasher", "do_work", "crasher.c", _line_of(SOURCES / "crasher.c", "lib_entry(where);")),
    ]


def test_minidump_stackwalk_over_http_against_our_symbols(
    crash: Crash, symbols: Symbols, stack: Stack, tmp_path: Path
) -> None:
    dump = _stored(stack.crashes, "upload_file_minidump", crash.crash_id)
    walked = _walk(dump, stack, tmp_path)
    assert walked["status"] == "OK"
    assert walked["crash_info"]["type"] == "SIGSEGV / SEGV_MAPERR"
    assert _top_frames(walked) == expected_frames()
    modules = {m["filename"]: m for m in walked["modules"]}
    for name in ("crasher", "libcrashlib.so"):
        assert modules[name]["loaded_symbols"], modules[name]
        # The Tecken protocol's query string names the code file and id.
        query = f"?code_file={name}&code_id={modules[name]['code_id']}"
        assert modules[name]["symbol_url"] == f"{stack.symbols}/{symbols.keys[name]}{query}"
    # Crashpad records no identifier for an ELF file without a build id (its
    # debug id is all zeros), so its symbols can't be found, though dump_syms
    # made and we stored them under dump_syms' text-section hash.
    noid = modules["libnoid.so"]
    assert set(noid["debug_id"]) == {"0"}
    assert not noid["loaded_symbols"]
    assert "/000000000000000000000000000000000/" not in symbols.keys["libnoid.so"]


def test_eliot_minidump_gives_the_same_frames(
    crash: Crash, symbols: Symbols, stack: Stack, tmp_path: Path
) -> None:
    dump = _stored(stack.crashes, "upload_file_minidump", crash.crash_id).read_bytes()
    resp = requests.post(
        f"{stack.eliot}/minidump",
        files={"upload_file_minidump": ("crash.dmp", dump)},
        data={"ProductName": "TeckenTest"},
        timeout=60,
    )
    assert resp.status_code == 200, resp.text
    json_dump = resp.json()
    assert json_dump["status"] == "OK"
    assert json_dump["crash_info"]["type"] == "SIGSEGV / SEGV_MAPERR"
    assert _top_frames(json_dump) == expected_frames()
    assert json_dump["annotations"] == {"ProductName": "TeckenTest"}
    modules = {m["filename"]: m for m in json_dump["modules"]}
    assert modules["libcrashlib.so"]["loaded_symbols"]
    assert modules["libc.so.6"]["missing_symbols"]
    fetched = json_dump["symbol_fetch"]["modules"]
    assert fetched[f"crasher/{modules['crasher']['debug_id']}"] in ("found", "cached")
    assert fetched[f"libc.so.6/{modules['libc.so.6']['debug_id']}"] == "missing"
    # Every frame explained (issue 13), in v5 explain's vocabulary.
    thread = json_dump["threads"][json_dump["crash_info"]["crashing_thread"]]
    assert thread["frames"][0]["status"] == "symbolicated"
    explained = json_dump["module_status"]
    assert explained[f"libc.so.6/{modules['libc.so.6']['debug_id']}"]["status"] == "missing"
    heartbeat = requests.get(f"{stack.eliot}/__heartbeat__", timeout=10).json()
    assert heartbeat["checks"]["stackwalker"] == "ok"


def _crash_ping(walked: dict) -> dict:
    """The crash ping Firefox sends for this crash: its client-side stack walk
    (no symbols), module list and crash info, in the shape fx-crash-sig reads."""
    names = [m["filename"] for m in walked["modules"]]
    threads = []
    for thread in walked["threads"]:
        frames = []
        for frame in thread["frames"]:
            out = {"ip": frame["offset"], "trust": frame["trust"]}
            if frame.get("module") in names:
                out["module_index"] = names.index(frame["module"])
            frames.append(out)
        threads.append({"frames": frames})
    modules = [
        {k: m[k] for k in ("debug_file", "debug_id", "filename", "base_addr", "code_id")}
        for m in walked["modules"]
    ]
    return {
        "normalized_os": "Linux",
        "payload": {
            "metadata": {},
            "stack_traces": {
                "crash_info": {
                    "type": walked["crash_info"]["type"],
                    "crashing_thread": walked["crash_info"]["crashing_thread"],
                },
                "modules": modules,
                "threads": threads,
            },
        },
    }


def test_fx_crash_sig_and_siggen_through_eliot(
    crash: Crash, symbols: Symbols, stack: Stack, tmp_path: Path
) -> None:
    from fx_crash_sig.crash_processor import CrashProcessor

    dump = _stored(stack.crashes, "upload_file_minidump", crash.crash_id)
    # The ping carries only instruction addresses and module indexes; Firefox
    # walks with the binaries' unwind tables, so walk with CFI here too.
    walked = _walk(dump, stack, tmp_path)
    processor = CrashProcessor(api_url=f"{stack.eliot}/symbolicate/v5")
    ping = _crash_ping(walked)
    symbolicated = processor.symbolicate(ping)
    frames = symbolicated["threads"][symbolicated["crashing_thread"]]["frames"]
    assert [f.get("function") for f in frames[:3]] == ["crash_here", "lib_entry", "do_work"]
    assert frames[0]["file"].endswith("crashlib.c")
    result = processor.get_signature_from_symbolicated(symbolicated)
    assert result.signature == "crash_here", (result.signature, result.notes)


def test_the_crashmover_and_the_cli_process_the_crash_through_eliot(
    crash: Crash, stack: Stack
) -> None:
    deadline = time.monotonic() + 30
    while True:
        found = list(stack.crashes.glob(f"*/processed_crash/{crash.crash_id}.json"))
        if found or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert found, "the crashmover wrote no processed crash"
    processed = json.loads(found[0].read_text())
    assert processed["uuid"] == crash.crash_id
    assert (processed["product"], processed["version"]) == ("TeckenTest", "1.0")
    assert processed["crashing_function"] == "crash_here"
    assert _top_frames(processed["json_dump"]) == expected_frames()
    assert processed["processor_notes"] == []

    found[0].unlink()
    done = subprocess.run(
        [str(ROOT / "bin" / "tecken-process-crash"), f"bp-{crash.crash_id}", "--url", stack.eliot],
        env=stack.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()) == found[0]
    again = json.loads(found[0].read_text())
    assert again["json_dump"]["threads"] == processed["json_dump"]["threads"]
