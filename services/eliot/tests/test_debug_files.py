# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Symbols in every form a store holds them (gzipped sym files, ELF, PDB in
CAB, dSYM bundles, debug files built here with the system compiler), and a
remembered miss rechecked with HEAD requests. A real symbol server over HTTP
(``tecken_eliot.testing.SymbolServer``) on a tree of its own."""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import webtest

from tecken_eliot.app import create_app
from tecken_eliot.naming import format_filename
from tecken_eliot.testing import CPPFILT, DYLIB, FIXTURES, QIPCAP, SOURCES, SSLTUNNEL, SymbolServer
from tecken_shared.config import build_config_manager
from tecken_shared.testing import realclients
from tecken_shared.testing.servers import wsgi_server
from tecken_shared.testing.services import RunningService, running_service, service_env

FIXTURE_DIRS = {module: FIXTURES / Path(rel).parent for module, rel in SOURCES.items()}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SymbolServer]:
    """A symbol server over an empty tree (``store.root``) of its own."""
    root = tmp_path / "store"
    root.mkdir()
    server = SymbolServer(root)
    with wsgi_server(server) as url:
        server.url = url + "/"
        yield server


def put(store: SymbolServer, module: tuple[str, str], fmt: str, data: bytes) -> None:
    name = format_filename(fmt, module[0])
    assert name is not None
    dest = store.root / module[0] / module[1] / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)


def make(store: SymbolServer, tmp_path: Path, **extra: str) -> webtest.TestApp:
    cache = tmp_path / f"cache{len(list(tmp_path.glob('cache*')))}"
    cache.mkdir()
    env = {
        "ELIOT_SYMBOL_URLS": store.url,
        "ELIOT_SYMBOLS_CACHE_DIR": str(cache),
        "ELIOT_DOWNLOAD_RETRIES": "0",
        "ELIOT_DOWNLOAD_TIMEOUT": "2",
        "ELIOT_METRICS_BACKEND": "none",
        **extra,
    }
    return webtest.TestApp(create_app(build_config_manager(env, str(tmp_path / "none.env"))))


def v5(app: webtest.TestApp, module: tuple[str, str], *offsets: int) -> dict:
    payload = {"jobs": [{"memoryMap": [list(module)], "stacks": [[[0, o] for o in offsets]]}]}
    return app.post_json("/symbolicate/v5", payload).json["results"][0]


def fixture(module: tuple[str, str], name: str) -> bytes:
    return (FIXTURE_DIRS[module] / name).read_bytes()


def test_a_store_with_only_debug_files_symbolicates(store, symbol_server, tmp_path):
    """The fixtures' real debug files, each in the form its platform's stores
    use, give the answers of their sym files."""
    put(store, SSLTUNNEL, "dbg.gz", fixture(SSLTUNNEL, "ssltunnel.dbg.gz"))  # ELF, gzipped
    put(store, QIPCAP, "pd_", fixture(QIPCAP, "qipcap64.pd_"))  # PDB in a CAB
    put(store, CPPFILT, "sym.gz", gzip.compress(fixture(CPPFILT, "c++filt.sym")))
    put(store, DYLIB, "dsym", fixture(DYLIB, "libxul_correct_buildid.dylib.dSYM.tar.bz2"))
    from_debug = make(store, tmp_path)
    from_sym = make(symbol_server, tmp_path)

    assert v5(from_debug, CPPFILT, 0x2000, 0x3000) == v5(from_sym, CPPFILT, 0x2000, 0x3000)
    # A PDB: the sym file's functions, files and lines (the module keeps its
    # debug file name: only the sym file's INFO line names the DLL).
    got = v5(from_debug, QIPCAP, 0x1010, 0x1020, 0x1140)["stacks"][0]
    want = v5(from_sym, QIPCAP, 0x1010, 0x1020, 0x1140)["stacks"][0]
    assert [f["module"] for f in got] == ["qipcap64.pdb"] * 3
    for frame, expected in zip(got, want, strict=True):
        for key in ("function", "function_offset", "line"):
            assert frame.get(key) == expected.get(key), (key, frame, expected)
        # The PDB has the build's paths, the sym file its source-server ones.
        basename = re.split(r"[\\/]", frame["file"])[-1]
        assert basename and basename in expected["file"], (frame, expected)

    # ELF: the same function, offset, file and line as dump_syms's sym file;
    # the name as the debug file has it (mangled; demangling is not this path's).
    got = v5(from_debug, SSLTUNNEL, 0x50D4)
    want = v5(from_sym, SSLTUNNEL, 0x50D4)
    assert got["found_modules"] == {"ssltunnel/8A07C88A3DA44E20A3490D88791183060": True}
    frame, expected = got["stacks"][0][0], want["stacks"][0][0]
    assert (
        frame["function"] == "_ZNSt6__ndk16vectorI13server_info_tNS_9allocatorIS1_EEED2B8dn210000Ev"
    )
    assert expected["function"].endswith("::~vector[abi:dn210000]()")
    for key in ("function_offset", "file", "line"):
        assert frame[key] == expected[key], key

    # Mach-O from a dSYM bundle: found (its sym file has no functions either).
    assert v5(from_debug, DYLIB, 0x10)["found_modules"] == {"/".join(DYLIB): True}


def test_the_plain_pdb_is_read_too(store, tmp_path):
    import cabarchive

    pdb = cabarchive.CabArchive(fixture(QIPCAP, "qipcap64.pd_"))["qipcap64.pdb"].buf
    put(store, QIPCAP, "debug", pdb)
    frame = v5(make(store, tmp_path), QIPCAP, 0x1010)["stacks"][0][0]
    assert frame["function"] == "DllMain(void*, unsigned long, void*)"
    assert frame["file"].endswith("dummydll.cpp") and frame["line"] == 11


def _build_id(elf: Path) -> str:
    """The GNU build id of an ELF file, as readelf reads it (hex)."""
    notes = subprocess.run(["readelf", "-n", str(elf)], capture_output=True, text=True).stdout
    return notes.split("Build ID:")[1].split()[0]


def _breakpad_id(elf: Path) -> str:
    """The Breakpad debug id of an ELF file from its GNU build id (readelf's
    reading of it, not symbolic's): the first 16 bytes as a GUID, age 0."""
    build_id = bytes.fromhex(_build_id(elf))[:16]
    guid = build_id[3::-1] + build_id[5:3:-1] + build_id[7:5:-1] + build_id[8:16]
    return guid.hex().upper() + "0"


def _address(elf: Path, function: str) -> int:
    for line in subprocess.run(
        ["nm", str(elf)], capture_output=True, text=True
    ).stdout.splitlines():
        parts = line.split()
        if parts[-1] == function:
            return int(parts[0], 16)
    raise AssertionError(f"{function} not in {elf}")


def _line_of(source: Path, marker: str) -> int:
    lines = source.read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if marker in line)


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> realclients.Build:
    if not shutil.which("readelf") or not shutil.which("nm"):
        pytest.fail("readelf and nm are needed (Debian: apt-get install binutils)", pytrace=False)
    try:
        return realclients.build_crasher(tmp_path_factory.mktemp("build"))
    except realclients.MissingClient as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.mark.parametrize("fmt", ["debug", "dbg.gz"])
def test_an_elf_built_here_symbolicates_from_its_debug_file(build, store, tmp_path, fmt):
    lib = build.crashlib  # cc -g, with a GNU build id
    module = (lib.name, _breakpad_id(lib))
    data = lib.read_bytes()
    put(store, module, fmt, gzip.compress(data) if fmt == "dbg.gz" else data)
    address = _address(lib, "crash_here")
    frame = v5(make(store, tmp_path), module, address + 2)["stacks"][0][0]
    assert frame["function"] == "crash_here"
    assert frame["function_offset"] == "0x2"
    assert frame["file"].endswith("crashlib.c")
    source = realclients.CRASHER_SOURCES / "crashlib.c"
    assert frame["line"] in range(_line_of(source, "crash_here") - 0, _line_of(source, "CRASH") + 1)


def test_a_debug_file_is_found_by_build_id_through_debuginfod(build, store, tmp_path):
    """A module sent with its code id (the ELF build id), no Tecken-shaped
    form on the server: eliot asks the debuginfod route, HEAD first."""
    lib = build.crashlib
    build_id = _build_id(lib)
    module = (lib.name, _breakpad_id(lib))
    dest = store.root / "buildid" / build_id / "debuginfo"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(lib.read_bytes())
    memory_map = [[*module, {"code_id": build_id.upper()}]]
    payload = {"memoryMap": memory_map, "stacks": [[[0, _address(lib, "crash_here") + 2]]]}
    app = make(store, tmp_path)
    frame = app.post_json("/symbolicate/v5", {"jobs": [payload]}).json["results"][0]["stacks"]
    assert frame[0][0]["function"] == "crash_here"
    assert frame[0][0]["file"].endswith("crashlib.c")
    assert store.heads[f"/buildid/{build_id}/debuginfo"] == 1
    assert store.hits[f"/buildid/{build_id}/debuginfo"] == 1
    # Without the code id there is nothing to ask debuginfod for.
    store.heads.clear()
    other = make(store, tmp_path)
    assert v5(other, module, 1)["found_modules"] == {"/".join(module): False}
    assert not [p for p in store.heads if p.startswith("/buildid/")]


def test_a_module_no_protocol_has_costs_a_head_per_path(store, tmp_path):
    """A server that is not ours (404 everywhere): each protocol path costs one
    HEAD, no GET; a bad code id is a 400."""
    module, code_id = ("libgone.so", "E" * 33), "ab" * 20
    app = make(store, tmp_path, ELIOT_SYMBOL_PROTOCOLS="symsrv,debuginfod,ssqp")
    payload = {"memoryMap": [[*module, {"code_id": code_id}]], "stacks": [[[0, 1]]]}
    result = app.post_json("/symbolicate/v5", {"jobs": [payload]}).json["results"][0]
    assert result["found_modules"] == {"/".join(module): False}
    assert [p for p in store.hits if not p.startswith("/libgone.so/")] == []
    assert sorted(p for p in store.heads if not p.startswith("/libgone.so/")) == [
        f"/buildid/{code_id}/debuginfo",
        f"/buildid/{code_id}/executable",
        f"/ssqp/_.debug/elf-buildid-sym-{code_id}/_.debug",
        "/ssqp/_.dwarf/mach-uuid-sym-" + "e" * 32 + "/_.dwarf",
    ]
    bad = {"memoryMap": [[*module, {"code_id": "xyz"}]], "stacks": [[[0, 1]]]}
    resp = app.post_json("/symbolicate/v5", {"jobs": [bad]}, status=400)
    assert "invalid code_id" in resp.text


def test_a_sym_file_is_preferred_and_each_form_costs_a_request(store, tmp_path):
    put(store, SSLTUNNEL, "sym", fixture(SSLTUNNEL, "ssltunnel.sym"))
    put(store, SSLTUNNEL, "dbg.gz", fixture(SSLTUNNEL, "ssltunnel.dbg.gz"))
    frame = v5(make(store, tmp_path), SSLTUNNEL, 0x50D4)["stacks"][0][0]
    assert frame["function"].endswith("::~vector[abi:dn210000]()")  # the sym file's name
    assert [p for p in store.hits if "dbg.gz" in p] == []

    missing = ("nothere.pdb", "A" * 33)
    v5(make(store, tmp_path), missing, 1)
    # Only the sym file is asked for with a GET (a symbol server may count
    # GET 404s as missing symbols); the other forms with a HEAD each.
    assert [p for p in store.hits if p.startswith("/nothere.pdb/")] == [
        "/nothere.pdb/" + "A" * 33 + "/nothere.sym"
    ]
    tried = sorted(p.rsplit("/", 1)[1] for p in store.heads if p.startswith("/nothere.pdb/"))
    assert tried == ["nothere.pd_", "nothere.pdb", "nothere.sym.gz"]
    # Then the symsrv route (ELIOT_SYMBOL_PROTOCOLS), with a HEAD too.
    assert [p for p in store.heads if p.startswith("/symsrv/")] == [
        "/symsrv/nothere.pdb/" + "A" * 33 + "/nothere.pdb"
    ]
    store.hits.clear()
    store.heads.clear()
    v5(make(store, tmp_path, ELIOT_SYMBOL_FORMATS="sym", ELIOT_SYMBOL_PROTOCOLS="none"), missing, 1)
    assert list(store.hits) == ["/nothere.pdb/" + "A" * 33 + "/nothere.sym"]
    assert not store.heads


def test_unknown_symbol_format_is_a_configuration_error(store, tmp_path):
    with pytest.raises(Exception, match="unknown symbol format"):
        make(store, tmp_path, ELIOT_SYMBOL_FORMATS="sym,zip")


def test_malformed_debug_files_are_logged_counted_and_remembered(
    store, tmp_path, capfd, metricsmock
):
    broken_cab = ("broken.pdb", "B" * 33)
    put(store, broken_cab, "pd_", b"MSCF" + b"\0" * 60)
    wrong_elf = ("wrong", "C" * 33)  # a real debug file, of another module
    put(store, wrong_elf, "dbg.gz", fixture(SSLTUNNEL, "ssltunnel.dbg.gz"))
    app = make(store, tmp_path)
    payload = {
        "jobs": [{"memoryMap": [list(broken_cab), list(wrong_elf)], "stacks": [[[0, 1], [1, 1]]]}]
    }
    for _ in range(2):
        result = app.post_json("/symbolicate/v5", payload, headers={"Debug": "1"}).json
        assert set(result["results"][0]["found_modules"].values()) == {False}
    statuses = result["debug"]["modules"]["status_per_module"]
    assert statuses["broken.pdb/" + "B" * 33]["status"] == "malformed"
    assert statuses["broken.pdb/" + "B" * 33]["cached"] is True
    assert "cannot unpack" in statuses["broken.pdb/" + "B" * 33]["detail"]
    assert "no module with debug id" in statuses["wrong/" + "C" * 33]["detail"]
    assert store.hits["/broken.pdb/" + "B" * 33 + "/broken.pd_"] == 1  # remembered
    reasons = {
        tag
        for record in metricsmock.filter_records("incr", "eliot.symbolicate.parse_sym_file.error")
        for tag in record.tags
    }
    assert {"reason:bad_container", "reason:sym_debug_id_lookup_error"} <= reasons
    logged = capfd.readouterr()
    warnings = [
        line for line in (logged.out + logged.err).splitlines() if "malformed symbols" in line
    ]
    assert len(warnings) == 2 and any("broken.pdb" in w for w in warnings)


def test_debug_files_are_bounded(store, tmp_path):
    put(store, SSLTUNNEL, "dbg.gz", fixture(SSLTUNNEL, "ssltunnel.dbg.gz"))  # 65 kB -> 198 kB
    app = make(store, tmp_path, ELIOT_MAX_DEBUG_FILE_SIZE="100kb")
    result = app.post_json(
        "/symbolicate/v5",
        {"jobs": [{"memoryMap": [list(SSLTUNNEL)], "stacks": [[[0, 0x50D4]]]}]},
        headers={"Debug": "1"},
    ).json
    (status,) = result["debug"]["modules"]["status_per_module"].values()
    assert status["status"] == "malformed"
    assert "unpacks to more than 100000 bytes (ELIOT_MAX_DEBUG_FILE_SIZE)" in status["detail"]
    app = make(store, tmp_path, ELIOT_MAX_DEBUG_FILE_SIZE="10kb")  # the download itself
    assert v5(app, SSLTUNNEL, 0x50D4)["found_modules"] == {"/".join(SSLTUNNEL): False}


def test_a_missing_module_is_rechecked_and_found_once_uploaded(store, tmp_path, metricsmock):
    app = make(store, tmp_path, ELIOT_MISSING_SYMBOLS_RECHECK="1s")
    assert v5(app, QIPCAP, 0x1010)["found_modules"] == {"/".join(QIPCAP): False}
    gets, heads = sum(store.hits.values()), sum(store.heads.values())
    put(store, QIPCAP, "sym", fixture(QIPCAP, "qipcap64.sym"))
    # Within the period: the remembered miss is served, nothing is asked.
    assert v5(app, QIPCAP, 0x1010)["found_modules"] == {"/".join(QIPCAP): False}
    assert sum(store.heads.values()) == heads and sum(store.hits.values()) == gets
    time.sleep(1.05)
    frame = v5(app, QIPCAP, 0x1010)["stacks"][0][0]
    assert frame["function"] == "DllMain(void*, unsigned long, void*)"
    assert store.heads["/qipcap64.pdb/293A285ED25871934C4C44205044422E1/qipcap64.sym"] == 1
    assert metricsmock.has_record("incr", "eliot.diskcache.recheck", value=1, tags=["result:found"])


def test_a_recheck_that_finds_nothing_asks_once_per_period(store, tmp_path, metricsmock):
    missing = ("nothere.pdb", "D" * 33)
    app = make(store, tmp_path, ELIOT_MISSING_SYMBOLS_RECHECK="1s")
    v5(app, missing, 1)
    gets, heads = sum(store.hits.values()), sum(store.heads.values())
    time.sleep(1.05)
    for _ in range(3):
        assert v5(app, missing, 1)["found_modules"] == {"/".join(missing): False}
    # One HEAD per form (4 for a .pdb) and one for symsrv, once; no download.
    assert sum(store.heads.values()) == heads + 5 and sum(store.hits.values()) == gets
    assert metricsmock.has_record(
        "incr", "eliot.diskcache.recheck", value=1, tags=["result:missing"]
    )


def test_rechecks_can_be_turned_off(store, tmp_path):
    app = make(store, tmp_path, ELIOT_MISSING_SYMBOLS_RECHECK="0")
    v5(app, QIPCAP, 0x1010)
    heads = sum(store.heads.values())
    put(store, QIPCAP, "sym", fixture(QIPCAP, "qipcap64.sym"))
    time.sleep(1.05)
    assert v5(app, QIPCAP, 0x1010)["found_modules"] == {"/".join(QIPCAP): False}
    assert sum(store.heads.values()) == heads


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningService, ...]]:
    """The symbols service and eliot under gunicorn (their shipped confs), eliot
    asking the symbols service and rechecking misses after 1 s."""
    tmp = tmp_path_factory.mktemp("deployed")
    with running_service("symbols", tmp / "symbols", workers=1) as symbols:
        extra = {"ELIOT_SYMBOL_URLS": symbols.url + "/", "ELIOT_MISSING_SYMBOLS_RECHECK": "1s"}
        with running_service("eliot", tmp / "eliot", workers=1, extra_env=extra) as eliot:
            yield symbols, eliot


def _upload(symbols: RunningService, tree: Path) -> None:
    """``tree`` uploaded with the tecken-upload-symbols CLI, with a token made
    by the symbols admin CLI."""
    env = service_env("symbols", symbols.workdir, symbols.port, 1)
    run = {"env": env, "cwd": symbols.workdir, "capture_output": True, "text": True}
    admin = [sys.executable, "-m", "tecken_symbols.cli"]
    assert subprocess.run([*admin, "superuser", "ci@example.com"], **run).returncode == 0
    made = subprocess.run([*admin, "create-token", "ci@example.com"], **run)
    assert made.returncode == 0, made.stderr
    cli = Path(sys.executable).parent / "tecken-upload-symbols"
    done = subprocess.run(
        [str(cli), "--url", symbols.url, str(tree)],
        **{**run, "env": {**env, "TECKEN_AUTH_TOKEN": made.stdout.strip()}},
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_an_upload_after_a_miss_symbolicates_the_next_request(build, deployed, tmp_path):
    """request -> miss -> upload with the CLI -> the next request is
    symbolicated: a sym file, and an ELF debug file built here (``.dbg.gz``,
    the only form of that module on the server)."""
    symbols, eliot = deployed
    lib = build.crashlib
    elf = (lib.name, _breakpad_id(lib))
    payload = {
        "jobs": [
            {
                "memoryMap": [list(CPPFILT), list(elf)],
                "stacks": [[[0, 0x2000], [1, _address(lib, "crash_here") + 2]]],
            }
        ]
    }

    def ask() -> dict:
        resp = requests.post(f"{eliot.url}/symbolicate/v5", json=payload, timeout=30)
        assert resp.status_code == 200, resp.text
        return resp.json()["results"][0]

    assert set(ask()["found_modules"].values()) == {False}
    missed = time.monotonic()

    tree = tmp_path / "upload"
    key = f"{CPPFILT[0]}/{CPPFILT[1]}/c++filt.sym"
    (tree / key).parent.mkdir(parents=True)
    shutil.copy(FIXTURES / SOURCES[CPPFILT], tree / key)
    debug = tree / elf[0] / elf[1] / f"{elf[0]}.dbg.gz"
    debug.parent.mkdir(parents=True)
    debug.write_bytes(gzip.compress(lib.read_bytes()))
    _upload(symbols, tree)

    time.sleep(max(0.0, missed + 1.05 - time.monotonic()))  # the recheck period
    result = ask()
    assert set(result["found_modules"].values()) == {True}
    cppfilt, crash = result["stacks"][0]
    assert cppfilt["function"] and cppfilt["module"] == "c++filt"
    assert crash["function"] == "crash_here" and crash["file"].endswith("crashlib.c")


BY_ID_SOURCE = """int by_id_square(int x) {
    int y = x * x; /* SQUARE */
    return y;
}
"""


def test_debug_files_uploaded_under_other_names_are_found_through_the_index(
    build, deployed, tmp_path
):
    """Issue 14's last bullet, end to end: the symbols service and eliot under
    gunicorn; an ELF built here (``cc -g -Wl,--build-id``) uploaded only as
    its plain debug file, and a PDB only as the ``.pdb`` itself, with the
    upload CLI. The Tecken route serves neither ending, so eliot finds them
    through the service's identity index: debuginfod by build id, symsrv by
    the PDB's debug id."""
    symbols, eliot = deployed
    src = tmp_path / "byid.c"
    src.write_text(BY_ID_SOURCE)
    lib = tmp_path / "libbyid.so"
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "a C compiler is needed (Debian: apt-get install gcc)"
    subprocess.run(
        [cc, "-g", "-O0", "-shared", "-fPIC", "-Wl,--build-id=sha1", "-o", lib, src], check=True
    )
    elf = (lib.name, _breakpad_id(lib))
    import cabarchive

    tree = tmp_path / "upload"
    for (name, did), data in [
        (elf, lib.read_bytes()),
        (QIPCAP, cabarchive.CabArchive(fixture(QIPCAP, "qipcap64.pd_"))["qipcap64.pdb"].buf),
    ]:
        (tree / name / did).mkdir(parents=True)
        (tree / name / did / name).write_bytes(data)
    _upload(symbols, tree)
    # The Tecken-shaped URL of the plain debug file is not served.
    plain = f"{symbols.url}/{elf[0]}/{elf[1]}/{elf[0]}"
    assert requests.head(plain, timeout=10).status_code == 404

    payload = {
        "jobs": [
            {
                "memoryMap": [[*elf, {"code_id": _build_id(lib)}], list(QIPCAP)],
                "stacks": [[[0, _address(lib, "by_id_square") + 4], [1, 0x1010]]],
            }
        ]
    }
    resp = requests.post(f"{eliot.url}/symbolicate/v5", json=payload, timeout=30)
    assert resp.status_code == 200, resp.text
    result = resp.json()["results"][0]
    assert set(result["found_modules"].values()) == {True}
    square, dllmain = result["stacks"][0]
    assert square["function"] == "by_id_square" and square["file"].endswith("byid.c")
    assert square["line"] in (1, 2)
    assert dllmain["function"] == "DllMain(void*, unsigned long, void*)"
    assert dllmain["file"].endswith("dummydll.cpp") and dllmain["line"] == 11
