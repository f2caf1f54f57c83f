# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""symsrv, SSQP and debuginfod through the real clients, against the symbols
service over loopback HTTP, from one Tecken-style upload made with
``tecken-upload-symbols``:

* elfutils' ``debuginfod-find`` fetches the debuginfo and the executable of a
  program built here with the system compiler (its debug file uploaded
  gzipped, as Mozilla uploads ``.dbg.gz``), LLVM's ``llvm-debuginfod-find``
  the debuginfo, ``llvm-symbolizer --build-id`` and ``gdb`` with
  ``DEBUGINFOD_URLS`` the source line of a function of the stripped program,
  and ``debuginfod-find source`` a source file from the program's source
  bundle (``sentry-cli debug-files bundle-sources``, a dev dependency);
* Mozilla's ``dump_syms --symbol-server 'SRV*cache*http://...'`` fetches a PDB
  and a PE uploaded as CABs (``.pd_``/``.dl_``) and writes their symbols;
* the PyPI ``symstore`` tool's layout for the same Windows files, plain and
  compressed, is compared key by key with what ``/symsrv/`` answers.

``debuginfod-find``, ``gdb`` and LLVM 19 come from Debian (``make debuginfod``
installs them); ``dump_syms`` from ``make setup``; ``symstore`` is a dev
dependency."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from cabarchive import CabArchive

from tecken_shared.breakpad import read_header, symbol_key
from tecken_shared.config import build_config_manager
from tecken_shared.testing import FIXTURES_DIR, realclients
from tecken_shared.testing.servers import free_port, wsgi_server
from tecken_symbols.app import create_app_and_context
from tecken_symbols.upload.testing import make_token

ROOT = Path(__file__).resolve().parents[1]
SYMBOLS_DIR = FIXTURES_DIR / "symbols" / "symbols"
PDB_KEY = "qipcap64.pdb/293A285ED25871934C4C44205044422E1/qipcap64.pd_"
DLL_KEY = "libEGL.dll/6A4B8EEE10000/libEGL.dl_"
EXE_KEY = "ShowSSEConfig.exe/6A4B9A365000/ShowSSEConfig.ex_"
WINDOWS_KEYS = (PDB_KEY, DLL_KEY, EXE_KEY)
DEBIAN_CLIENTS = "run `make debuginfod` (apt-get install debuginfod gdb llvm-19)"

PROGRAM = """\
#include <stdio.h>

static int square(int x) {
    return x * x;  /* square-line */
}

int main(int argc, char **argv) {
    printf("%d\\n", square(argc));
    return 0;
}
"""

pytestmark = pytest.mark.slow


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: {DEBIAN_CLIENTS}", pytrace=False)
    return path


@dataclass
class Program:
    stripped: Path  # what is installed: no debug info, a build id
    debug: Path  # objcopy --only-keep-debug
    full: Path  # as built
    build_id: str
    source: Path


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Program:
    cc = shutil.which(os.environ.get("CC", "cc")) or _tool("gcc")
    out = tmp_path_factory.mktemp("prog")
    source = out / "square.c"
    source.write_text(PROGRAM)
    full = out / "square.full"
    subprocess.run(
        [cc, "-g", "-O0", "-Wl,--build-id=sha1", "-o", full, source], check=True, cwd=out
    )
    # The stripped program alone in its own directory: gdb can only find its
    # debug info through debuginfod.
    (out / "installed").mkdir()
    debug, stripped = out / "square.debug", out / "installed" / "square"
    subprocess.run(["objcopy", "--only-keep-debug", full, debug], check=True)
    subprocess.run(["objcopy", "--strip-debug", full, stripped], check=True)
    notes = subprocess.run(
        ["readelf", "-n", stripped], check=True, capture_output=True, text=True
    ).stdout
    build_id = notes.split("Build ID:")[1].split()[0]
    return Program(stripped, debug, full, build_id, source)


@dataclass
class Server:
    url: str
    ctx: object


@pytest.fixture(scope="module")
def server(program: Program, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The symbols service on a free port, holding one upload made with
    tecken-upload-symbols: the program's .sym (dump_syms), its debug file
    gzipped and the stripped program under the same Tecken key prefix, and
    the Windows fixtures as CABs."""
    tmp = tmp_path_factory.mktemp("symbols")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "SYMBOLS_DATABASE_URL": f"sqlite:///{tmp}/symbols.db",
        "SYMBOLS_STORAGE_URL": f"file://{tmp}/storage/v1?durable=false",
        "SYMBOLS_TRY_STORAGE_URL": f"file://{tmp}/storage/try/v1?durable=false",
        "SYMBOLS_PUBLIC_URL": url,
        "SYMBOLS_METRICS_BACKEND": "none",
        "SYMBOLS_LOG_FORMAT": "text",
    }
    app, ctx = create_app_and_context(build_config_manager(env, str(tmp / "none.env")))

    tree = tmp / "tree"
    sym = subprocess.run(
        [realclients.dump_syms(), str(program.full)],
        capture_output=True,
        check=True,
    ).stdout
    (tmp / "square.sym").write_bytes(sym)
    header = read_header(tmp / "square.sym")
    key = symbol_key(header.debug_filename or "", header.debug_id or "")
    prefix = tree / key.rsplit("/", 1)[0]
    prefix.mkdir(parents=True)
    (tree / key).write_bytes(sym)
    (prefix / "square.dbg.gz").write_bytes(gzip.compress(program.debug.read_bytes()))
    shutil.copy(program.stripped, prefix / "square")
    bundled = subprocess.run(
        [_sentry_cli(), "debug-files", "bundle-sources", "--output", str(tmp), str(program.full)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bundled.returncode == 0, bundled.stderr
    shutil.copy(tmp / "square.src.zip", prefix / "square.src.zip")
    for windows in WINDOWS_KEYS:
        (tree / windows).parent.mkdir(parents=True)
        shutil.copy(SYMBOLS_DIR / windows, tree / windows)

    token = make_token(ctx, ["upload_symbols"])
    with wsgi_server(app, port=port):
        done = subprocess.run(
            [str(ROOT / "bin" / "tecken-upload-symbols"), "--url", url, str(tree)],
            env={**os.environ, "TECKEN_AUTH_TOKEN": token},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        yield Server(url, ctx)
    ctx.close()  # type: ignore[attr-defined]


def _sentry_cli() -> str:
    path = shutil.which("sentry-cli", path=str(Path(sys.executable).parent))
    if path is None:
        pytest.fail("sentry-cli (a dev dependency) is missing: run `make setup`", pytrace=False)
    return path


def test_debuginfod_find_gets_a_source_file_from_the_source_bundle(
    program: Program, server: Server, tmp_path: Path
) -> None:
    done = subprocess.run(
        [_tool("debuginfod-find"), "source", program.build_id, str(program.source)],
        env=_debuginfod_env(server, tmp_path / "cache"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).read_text() == PROGRAM


def _debuginfod_env(server: Server, cache: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DEBUGINFOD_URLS": server.url,
        "DEBUGINFOD_CACHE_PATH": str(cache),
        "DEBUGINFOD_VERBOSE": "1",
        "DEBUGINFOD_TIMEOUT": "10",
    }


def test_debuginfod_find_gets_the_debuginfo_and_the_executable(
    program: Program, server: Server, tmp_path: Path
) -> None:
    find = _tool("debuginfod-find")
    env = _debuginfod_env(server, tmp_path / "cache")
    for artifact, expected in (("debuginfo", program.debug), ("executable", program.stripped)):
        done = subprocess.run(
            [find, artifact, program.build_id], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert Path(done.stdout.strip()).read_bytes() == expected.read_bytes()
    # A 503 on a section: the client falls back to the whole debuginfo.
    done = subprocess.run(
        [find, "section", program.build_id, ".debug_info"],
        env={**env, "DEBUGINFOD_CACHE_PATH": str(tmp_path / "cache2")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    # A miss is a 404 (ENOENT), never a retried 5xx.
    done = subprocess.run(
        [find, "debuginfo", "00" * 20], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "No such file" in done.stderr or "404" in done.stderr


def _llvm(name: str) -> str:
    for candidate in (f"{name}-19", name):
        if path := shutil.which(candidate):
            return path
    pytest.fail(f"{name} is not installed: {DEBIAN_CLIENTS}", pytrace=False)


def test_llvm_debuginfod_find_and_symbolizer(
    program: Program, server: Server, tmp_path: Path
) -> None:
    env = _debuginfod_env(server, tmp_path / "cache")
    done = subprocess.run(
        [_llvm("llvm-debuginfod-find"), "--debuginfo", program.build_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).read_bytes() == program.debug.read_bytes()
    # The symbolizer finds the file and line of square() by build id alone.
    symbols = subprocess.run(
        ["nm", program.full], check=True, capture_output=True, text=True
    ).stdout
    address = next(line.split()[0] for line in symbols.splitlines() if line.endswith(" square"))
    done = subprocess.run(
        [_llvm("llvm-symbolizer"), f"--build-id={program.build_id}", f"0x{address}"],
        env={**env, "DEBUGINFOD_CACHE_PATH": str(tmp_path / "cache2")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    line = next(n for n, text in enumerate(PROGRAM.splitlines(), 1) if "static int square" in text)
    assert done.stdout.splitlines()[0] == "square", done.stdout + done.stderr
    assert f"square.c:{line}:" in done.stdout, done.stdout


def test_gdb_finds_the_source_line_through_debuginfod(
    program: Program, server: Server, tmp_path: Path
) -> None:
    gdb = _tool("gdb")
    env = _debuginfod_env(server, tmp_path / "cache")
    done = subprocess.run(
        [
            gdb,
            "-nx",
            "-batch",
            "-iex",
            "set debuginfod enabled on",
            "-ex",
            "info line square",
            str(program.stripped),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    line = next(n for n, text in enumerate(PROGRAM.splitlines(), 1) if "static int square" in text)
    assert f'Line {line} of "' in done.stdout, done.stdout + done.stderr


def _expanded(key: str) -> bytes:
    (member,) = CabArchive((SYMBOLS_DIR / key).read_bytes()).values()
    return member.buf


def test_dump_syms_fetches_pdb_and_pe_from_the_symbol_server(
    server: Server, tmp_path: Path
) -> None:
    tool = realclients.dump_syms()
    cache = tmp_path / "cache"
    for key, flag in ((PDB_KEY, "--debug-id"), (DLL_KEY, "--code-id")):
        name, some_id, _ = key.split("/")
        done = subprocess.run(
            [
                tool,
                "--symbol-server",
                f"SRV*{cache}*{server.url}/symsrv",
                flag,
                some_id,
                name,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("MODULE windows "), done.stdout[:200]
        assert some_id.upper() in done.stdout.splitlines()[0].upper() or flag == "--code-id"
        cached = list(cache.rglob(name.rsplit(".", 1)[0] + ".*"))
        assert cached, list(cache.rglob("*"))


def _windows_minidump(rip_offset: int) -> bytes:
    """A minimal Windows x64 minidump written here (system info, one module:
    qipcap64.dll with its CodeView record naming qipcap64.pdb and its debug
    id, one thread whose RIP is ``rip_offset`` into it, its stack, an access
    violation): the stackwalker needs its module's symbols for frame 0."""
    base, debug_id = 0x180000000, PDB_KEY.split("/")[1]
    out = bytearray(32)

    def put(data: bytes) -> int:
        out.extend(b"\0" * (-len(out) % 8))
        out.extend(data)
        return len(out) - len(data)

    def string(text: str) -> int:
        data = text.encode("utf-16-le")
        return put(struct.pack("<I", len(data)) + data + b"\0\0")

    sysinfo = struct.pack("<HHHBBIIIIIHH", 9, 6, 0, 4, 1, 10, 0, 19041, 2, string(""), 0, 0)
    guid, age = uuid.UUID(debug_id[:32]), int(debug_id[32:], 16)
    codeview = b"RSDS" + guid.bytes_le + struct.pack("<I", age) + b"qipcap64.pdb\0"
    module = struct.pack(  # code id 6A4806059000: timestamp 6A480605, size 9000
        "<QIIII", base, 0x9000, 0, 0x6A480605, string("C:\\Windows\\qipcap64.dll")
    )
    module += struct.pack("<13I", 0xFEEF04BD, 0x10000, *[0] * 11)
    module += struct.pack("<IIIIQQ", len(codeview), put(codeview), 0, 0, 0, 0)
    stack_at, stack = 0x10000, put(b"\0" * 0x200)
    context = bytearray(1232)  # CONTEXT_AMD64 with the control and integer registers
    struct.pack_into("<I", context, 0x30, 0x100003)
    struct.pack_into("<QQ", context, 0x98, stack_at, stack_at + 0x100)  # rsp, rbp
    struct.pack_into("<Q", context, 0xF8, base + rip_offset)  # rip
    where = struct.pack("<II", len(context), put(bytes(context)))
    memory = struct.pack("<QII", stack_at, 0x200, stack)
    thread = struct.pack("<IIIIQ", 1, 0, 0, 0, 0) + memory + where
    exception = struct.pack("<IIIIQQII", 1, 0, 0xC0000005, 0, 0, base + rip_offset, 0, 0)
    streams = [
        (7, sysinfo + b"\0" * 24),
        (4, struct.pack("<I", 1) + module),
        (3, struct.pack("<I", 1) + thread),
        (5, struct.pack("<I", 1) + memory),
        (6, exception + b"\0" * 120 + where),
    ]
    directory = b"".join(struct.pack("<III", kind, len(data), put(data)) for kind, data in streams)
    at = put(directory)
    out[:32] = struct.pack("<IIIIIIQ", 0x504D444D, 0xA793, len(streams), at, 0, 0, 0)
    return bytes(out)


def test_minidump_stackwalk_does_not_use_the_cab_form(server: Server, tmp_path: Path) -> None:
    """Issue 13/14: can ``minidump-stackwalk`` symbolicate a Windows module
    whose only upload is the ``.pd_`` CAB? The pinned 0.25.0 cannot: over
    ``--symbols-url`` it reads Breakpad sym files only and asks for the
    ``.sym`` alone (rust-minidump's CAB fallback, the ``mozilla_cab_symbols``
    feature, covers the binaries and PDBs it locates for other uses, and
    this build does not seem to have it: its trace message is not in the
    binary). The symbols service has the PDB (the Tecken ``.pd_`` URL and
    symsrv serve it) but nothing is fetched. The same dump symbolicates from
    the fixture's sym file, so the dump is right: this test says when a new
    stackwalker changes that."""
    dump = tmp_path / "windows.dmp"
    dump.write_bytes(_windows_minidump(0x1010))
    walker = realclients.stackwalker()
    local = subprocess.run(
        [walker, "--json", "--symbols-path", str(SYMBOLS_DIR), str(dump)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    frame = json.loads(local.stdout)["threads"][0]["frames"][0]
    assert frame["function"] == "DllMain(void*, unsigned long, void*)" and frame["line"] == 11

    assert requests.head(f"{server.url}/{PDB_KEY}", timeout=10).status_code == 200
    cache = tmp_path / "cache"
    remote = subprocess.run(
        [walker, "--json", "--symbols-url", server.url + "/", "--symbols-cache", str(cache)]
        + ["--symbols-tmp", str(cache), str(dump)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    walked = json.loads(remote.stdout)
    (module,) = walked["modules"]
    assert module["debug_file"] == "qipcap64.pdb" and module["missing_symbols"]
    assert walked["threads"][0]["frames"][0]["function"] is None
    assert not [p for p in cache.rglob("*") if p.is_file()]  # nothing fetched


def _symstore_keys(store: Path) -> list[str]:
    return sorted(
        str(p.relative_to(store))
        for p in store.rglob("*")
        if p.is_file() and p.parts[len(store.parts)] not in ("000Admin", "pingme.txt")
    )


def test_symstore_layout_matches_what_symsrv_answers(server: Server, tmp_path: Path) -> None:
    """PyPI symstore writes a store for the expanded Windows files; every key
    it wrote is answered by /symsrv/ with the same bytes, and its CAB twin
    (``_`` form: what ``symstore -z`` would write; that option needs gcab's
    GObject bindings, which a virtualenv lacks) with a CAB of them."""
    originals = tmp_path / "files"
    originals.mkdir()
    for key in WINDOWS_KEYS:
        (originals / key.split("/")[0]).write_bytes(_expanded(key))
    store = tmp_path / "store"
    symstore = shutil.which("symstore", path=str(Path(sys.executable).parent))
    assert symstore, "the symstore dev dependency is missing: run `make setup`"
    done = subprocess.run(
        [symstore, str(store), *sorted(map(str, originals.iterdir()))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    keys = _symstore_keys(store)
    assert len(keys) == 3, keys
    for key in keys:
        theirs = (store / key).read_bytes()
        assert _get(server, f"/symsrv/{key}") == theirs, key
        (member,) = CabArchive(_get(server, f"/symsrv/{key[:-1]}_")).values()
        assert member.buf == theirs, key
    # symstore's marker file is answered too.
    assert (store / "pingme.txt").exists()
    assert requests.get(f"{server.url}/symsrv/pingme.txt", timeout=10).status_code == 200


def _get(server: Server, path: str) -> bytes:
    resp = requests.get(server.url + path, allow_redirects=False, timeout=10)
    assert resp.status_code == 302, path
    return requests.get(server.url + urlsplit(resp.headers["Location"]).path, timeout=10).content
