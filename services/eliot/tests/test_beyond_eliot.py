# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Answers beyond Eliot's, each asked for in the v5 payload: ``demangle``
(LLVM's demanglers, checked against llvm-symbolizer) and ``explain`` (why
each frame is, or is not, symbolicated); and the memoised frames every
answer is built from, checked against symbolic's own lookup."""

from __future__ import annotations

import glob
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import symbolic

from tecken_eliot.frames import SymcacheFrames
from tecken_eliot.testing import BROKEN, DYLIB, FIXTURES, QIPCAP, SOURCES, SSLTUNNEL
from tecken_shared.breakpad import symbol_key

MISSING = ("missing.pdb", "ABCDEF0123456789ABCDEF0123456789A")


def key(module: tuple[str, str]) -> str:
    return "/".join(module)


def v5(app, memory_map, stacks, **fields):  # type: ignore[no-untyped-def]
    payload = {"jobs": [{"memoryMap": [list(m) for m in memory_map], "stacks": stacks}], **fields}
    return app.post_json("/symbolicate/v5", payload).json


def without_extras(answer: dict) -> dict:
    """``answer`` without the keys ``explain`` adds."""
    for result in answer["results"]:
        result.pop("module_status")
        for stack in result["stacks"]:
            for frame in stack:
                frame.pop("status")
    return answer


# -- the memoised frames ------------------------------------------------------


def test_frames_are_what_symbolic_finds(tmp_path):
    """Every FUNC and line address of the ssltunnel fixture (and the bytes
    around them) gives what SymCache.lookup gives, memoised or not."""
    sym = FIXTURES / SOURCES[SSLTUNNEL]
    obj = symbolic.Archive.open(str(sym)).get_object(
        debug_id=symbolic.normalize_debug_id(SSLTUNNEL[1])
    )
    path = tmp_path / "ssltunnel.symc"
    with open(path, "wb") as fp:
        obj.make_symcache().dump_into(fp)
    symcache = symbolic.SymCache.open(str(path))
    frames = SymcacheFrames(symcache, max_size=20_000)
    addresses = {0, 2**64 - 1}
    for line in sym.read_text().splitlines():
        parts = line.split()
        if parts[0] == "FUNC":
            addresses.add(int(parts[2] if parts[1] == "m" else parts[1], 16))
        elif re.fullmatch(r"[0-9a-f]+", parts[0]):
            addresses.update(int(parts[0], 16) + d for d in (-1, 0, 1))
    assert len(addresses) > 500
    for offset in sorted(addresses) * 2:  # the second time from the memo
        expected = [
            (loc.symbol, loc.full_path or "", loc.line, loc.sym_addr)
            for loc in symcache.lookup(offset)
        ]
        assert [tuple(loc) for loc in frames.locations(offset)] == expected
        keys, function = frames.frame(offset)
        assert function == (expected[-1][0] if expected else None)
        assert (keys == "") == (not expected)
    assert frames.size <= 20_000 + 2_000  # bounded: dropped whole when full
    assert frames.locations(-1) == [] and frames.locations(2**64) == []


# -- demangling ----------------------------------------------------------------


def llvm_symbolizer() -> str:
    """The newest llvm-symbolizer here: the oracle of demangling."""
    found = sorted(
        glob.glob("/usr/lib/llvm-*/bin/llvm-symbolizer"),
        key=lambda p: int(p.split("llvm-")[1].split("/")[0]),
    )
    path = found[-1] if found else shutil.which("llvm-symbolizer")
    if not path:
        pytest.fail("llvm-symbolizer is needed: make test-tools (apt-get install llvm-19)")
    return path


def oracle(names: list[str], tmp_path: Path) -> dict[str, str]:
    """What ``llvm-symbolizer --demangle`` calls each name: an object built
    with the system C compiler holds one two-byte function per name."""
    asm = [".text"]
    for name in names:
        asm += [
            f".globl {name}",
            f".type {name},@function",
            f"{name}:",
            "nop",
            "nop",
            f".size {name}, 2",
        ]
    (tmp_path / "names.s").write_text("\n".join(asm) + "\n")
    subprocess.run(["cc", "-c", "names.s", "-o", "names.o"], cwd=tmp_path, check=True)
    addresses = [hex(2 * i) for i in range(len(names))]
    out = subprocess.run(
        [llvm_symbolizer(), "--demangle", f"--obj={tmp_path / 'names.o'}", *addresses],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    blocks = [b.splitlines() for b in out.strip().split("\n\n")]
    return {name: block[0] for name, block in zip(names, blocks, strict=True)}


def test_demangled_inlinees_of_ssltunnel(app, symbol_server, tmp_path):
    """The two mangled inlinees at ssltunnel 0x50d4 (modern clang names
    Eliot and Symbolicator leave mangled) come back demangled as
    llvm-symbolizer demangles them, with the raw names beside them."""
    default = v5(app, [SSLTUNNEL], [[[0, 0x50D4]]])
    answer = v5(app, [SSLTUNNEL], [[[0, 0x50D4]]], demangle=True)
    frame = answer["results"][0]["stacks"][0][0]
    raw_frame = default["results"][0]["stacks"][0][0]
    mangled = [i["function"] for i in raw_frame["inlines"] if i["function"].startswith("_Z")]
    assert len(mangled) == 2
    expected = oracle(mangled, tmp_path)
    assert all(not name.startswith("_Z") for name in expected.values()), (
        f"{llvm_symbolizer()} is too old to demangle {mangled}: make test-tools"
    )
    by_raw = {i.get("raw_function", i["function"]): i for i in frame["inlines"]}
    for name in mangled:
        assert by_raw[name]["function"] == expected[name]
        assert by_raw[name]["raw_function"] == name
    assert expected[mangled[0]].startswith("void std::__ndk1::__destroy_at[abi:dn210000]")
    # Names that are not mangled stay as they are, without raw_function; so
    # does everything else in the frame.
    for got, raw in zip(frame["inlines"], raw_frame["inlines"], strict=True):
        if raw["function"] not in mangled:
            assert got == raw
    assert {k: v for k, v in frame.items() if k != "inlines"} == {
        k: v for k, v in raw_frame.items() if k != "inlines"
    }
    # Asked again: from the memo, the same.
    assert v5(app, [SSLTUNNEL], [[[0, 0x50D4]]], demangle=True) == answer


def test_demangles_msvc_rust_and_swift(tmp_path):
    from tecken_eliot.frames import demangle

    assert demangle("?foo@@YAXXZ") == "void __cdecl foo(void)"
    assert demangle("_RNvCs1234_7mycrate3foo") == "mycrate::foo"
    assert demangle("$s4main3fooyyF") == "main.foo() -> ()"
    for plain in ("main", "std::vector<int>::foo()", "<.plt.sec ELF section in c++filt>", ""):
        assert demangle(plain) is None
    # A name with a mangling's prefix that does not demangle stays raw.
    assert demangle("_Zzzz") is None


@pytest.mark.parametrize("field", ["demangle", "explain"])
@pytest.mark.parametrize("value", [1, "yes", None, [True]])
def test_option_fields_must_be_booleans(app, field, value):
    payload = {"jobs": [{"memoryMap": [], "stacks": [[[-1, 1]]]}], field: value}
    resp = app.post_json("/symbolicate/v5", payload, expect_errors=True)
    assert resp.status_int == 400
    assert resp.json["error"] == f"{field} must be true or false"


# -- every frame explained -----------------------------------------------------


def test_every_frame_explained(make_app, symbol_server):
    symbol_server.faults["/qipcap64.pdb/"] = "500"
    app = make_app()
    memory_map = [SSLTUNNEL, DYLIB, MISSING, BROKEN, QIPCAP, ("", "")]
    stacks = [[[0, 0x50D4], [0, -1], [1, 0x10], [2, 0x10], [3, 1], [4, 0x1010], [5, 3], [-1, 4]]]
    answer = v5(app, memory_map, stacks, explain=True)
    result = answer["results"][0]
    assert [f["status"] for f in result["stacks"][0]] == [
        "symbolicated",
        "offset_outside_module",
        "no_function",
        "module_missing",
        "module_malformed",
        "module_error",
        "unknown_module",
        "unknown_module",
    ]
    status = result["module_status"]
    assert set(status) == {key(m) for m in memory_map[:5]}
    found = status[key(SSLTUNNEL)]
    assert found["status"] == "found" and 0 <= found["cache_age"] < 60
    missing = status[key(MISSING)]
    assert missing["status"] == "missing"
    assert missing["urls"] == [symbol_server.url + symbol_key(*MISSING)]
    assert missing["cache_age"] is not None
    assert status[key(BROKEN)]["status"] == "malformed"
    assert "malformed sym file" in status[key(BROKEN)]["detail"]
    error = status[key(QIPCAP)]
    assert error["status"] == "error" and error["cache_age"] is None
    assert error["urls"] == [symbol_server.url + symbol_key(*QIPCAP)]
    assert "500" in error["detail"]
    # Without the extra keys it is the default answer, byte for byte.
    default = v5(app, memory_map, stacks)
    assert json.dumps(without_extras(answer)) == json.dumps(default)


def test_explain_and_demangle_together(app, symbol_server):
    both = v5(app, [SSLTUNNEL], [[[0, 0x50D4]]], explain=True, demangle=True)
    demangled = v5(app, [SSLTUNNEL], [[[0, 0x50D4]]], demangle=True)
    assert without_extras(both) == demangled


# -- the answer's text ---------------------------------------------------------

ODD = ("odd.pdb", "0DD0DD0DD0DD0DD0DD0DD0DD0DD0DD0D1")
ODD_SYM = f"""MODULE windows x86_64 {ODD[1]} {ODD[0]}
INFO CODE_ID 5F0000001000 odd.dll
FILE 0 c:\\src\\caf\u00e9\\"quoted\u2028".cpp
INLINE_ORIGIN 0 inl\u00ednéd<\U0001f600>()
FUNC 1000 20 0 na\u00efve::\u00fcber<"q\\\\">(\t)
INLINE 0 7 0 0 1004 8
1000 20 12 0
PUBLIC 3000 0 pub\u00e9
"""


def test_answers_are_what_json_dumps_writes(app, symbol_server):
    """Built from pre-encoded pieces, the answer is still exactly the text
    json.dumps writes for it (separators, key order, escapes of quotes,
    backslashes, control and non-ASCII characters), with every option."""
    path = symbol_server.root / symbol_key(*ODD)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(ODD_SYM, encoding="utf-8")
    symbol_server.faults["/qipcap64.pdb/"] = "500"
    memory_map = [list(ODD), list(MISSING), list(QIPCAP), ["", ""], list(SSLTUNNEL)]
    stacks = [[[0, 0x1006], [0, 0x3010], [0, 0x10], [1, 5], [2, 6], [3, 7], [-1, 8], [4, 0x50D4]]]
    payload = {"jobs": [{"memoryMap": memory_map, "stacks": stacks * 3}] * 2}
    for fields in ({}, {"demangle": True}, {"explain": True}):
        for headers in ({}, {"Debug": "1"}):
            resp = app.post_json("/symbolicate/v5", {**payload, **fields}, headers=headers)
            assert resp.body == json.dumps(json.loads(resp.body)).encode()
    frame = resp.json["results"][0]["stacks"][0][0]
    assert frame["function"] == 'na\u00efve::\u00fcber<"q\\\\">(\t)'
    assert frame["file"] == 'c:\\src\\caf\u00e9\\"quoted\u2028".cpp'
    assert frame["inlines"][0]["function"] == "inl\u00edn\u00e9d<\U0001f600>()"


# -- open symcaches, bounded by memory -----------------------------------------


def test_open_symcaches_are_bounded_by_memory(make_app, symbol_server):
    """ELIOT_OPEN_SYMCACHES_MAX_SIZE bounds what a worker keeps open (mapped
    bytes and memos): under it every module of a request stays open; over
    it the least recently used are let go, the last one kept whatever its
    size. ELIOT_OPEN_SYMCACHES still bounds the count."""
    modules = [SSLTUNNEL, QIPCAP, DYLIB]
    stacks = [[[i, 0x1010] for i in range(len(modules))]]
    app = make_app()
    v5(app, modules, stacks)
    store = app.app.store
    assert len(store._open) == 3
    held = sum(o.weight for o in store._open.values())
    assert held > sum(o.entry.size for o in store._open.values())  # memos count too

    app = make_app(ELIOT_OPEN_SYMCACHES_MAX_SIZE=str(held - 1))
    first = v5(app, modules, stacks)
    store = app.app.store
    assert 1 <= len(store._open) < 3
    assert sum(o.weight for o in store._open.values()) <= held - 1 or len(store._open) == 1
    # Let go of, not lost: asked again, they are opened again from disk.
    assert v5(app, modules, stacks) == first

    app = make_app(ELIOT_OPEN_SYMCACHES_MAX_SIZE="1")
    assert v5(app, modules, stacks) == first
    assert len(app.app.store._open) == 1

    app = make_app(ELIOT_OPEN_SYMCACHES="2")
    assert v5(app, modules, stacks) == first
    assert len(app.app.store._open) == 2
