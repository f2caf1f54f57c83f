# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Symbolication of the real fixtures, fetched over HTTP from a symbol
server on 127.0.0.1."""

import json
import os
import urllib.request

from tecken_eliot.app import create_app
from tecken_eliot.testing import (
    BROKEN,
    CPPFILT,
    DYLIB,
    PUBONLY,
    QIPCAP,
    SHOWSSE,
    SSLTUNNEL,
    WRONGID,
)
from tecken_shared.config import build_config_manager
from tecken_shared.testing.servers import wsgi_server

NDK = "/builds/worker/fetches/android-ndk/toolchains/llvm/prebuilt/linux-x86_64/sysroot/usr/include/c++/v1/"
SSLTUNNEL_CPP = (
    "git:github.com/mozilla-firefox/firefox:testing/mochitest/ssltunnel/ssltunnel.cpp:"
    "ced8f3c97c2b119aee3c230611bbb6e9c679abb7"
)
VECTOR = "std::__ndk1::vector<server_info_t, std::__ndk1::allocator<server_info_t> >"
STRING = (
    "std::__ndk1::basic_string<char, std::__ndk1::char_traits<char>, std::__ndk1::allocator<char> >"
)

SSLTUNNEL_0x50D4 = {
    "frame": 0,
    "module": "ssltunnel",
    "module_offset": "0x50d4",
    "function": f"{VECTOR}::~vector[abi:dn210000]()",
    "function_offset": "0x44",
    "file": NDK + "__vector/vector.h",
    "line": 259,
    "inlines": [
        {
            "function": f"{STRING}::__get_long_pointer[abi:dn210000]()",
            "file": NDK + "string",
            "line": 2020,
        },
        {"function": f"{STRING}::~basic_string()", "file": NDK + "string", "line": 1239},
        {"function": "server_info_t::~server_info_t()", "file": SSLTUNNEL_CPP, "line": 134},
        {
            "function": "_ZNSt6__ndk112__destroy_atB8dn210000I13server_info_tTnNS_9enable_ifIXntsr8is_arrayIT_EE5valueEiE4typeELi0EEEvPS3_",
            "file": NDK + "__memory/construct_at.h",
            "line": 66,
        },
        {
            "function": "_ZNSt6__ndk116allocator_traitsINS_9allocatorI13server_info_tEEE7destroyB8dn210000IS2_vTnNS_9enable_ifIXntsr13__has_destroyIS3_PT_EE5valueEiE4typeELi0EEEvRS3_S8_",
            "file": NDK + "__memory/allocator_traits.h",
            "line": 329,
        },
        {
            "function": f"{VECTOR}::__base_destruct_at_end[abi:dn210000](server_info_t*)",
            "file": NDK + "__vector/vector.h",
            "line": 749,
        },
        {
            "function": f"{VECTOR}::clear[abi:dn210000]()",
            "file": NDK + "__vector/vector.h",
            "line": 531,
        },
        {
            "function": f"{VECTOR}::__destroy_vector::operator()[abi:dn210000]()",
            "file": NDK + "__vector/vector.h",
            "line": 248,
        },
    ],
}


def key(module):
    return "/".join(module)


def v5(app, memory_map, stacks, **kw):
    payload = {"jobs": [{"memoryMap": [list(m) for m in memory_map], "stacks": stacks}]}
    return app.post_json("/symbolicate/v5", payload, **kw).json


def test_linux_inlines_over_real_http(symbol_server, cache_dir, tmp_path):
    """Eliot itself served over HTTP too: the full request/response path."""
    env = {
        "ELIOT_SYMBOL_URLS": symbol_server.url,
        "ELIOT_SYMBOLS_CACHE_DIR": str(cache_dir),
        "ELIOT_METRICS_BACKEND": "none",
    }
    app = create_app(build_config_manager(env, str(tmp_path / "none.env")))
    body = json.dumps(
        {"jobs": [{"memoryMap": [list(SSLTUNNEL)], "stacks": [[[0, 0x50D4]]]}], "version": 5}
    ).encode()
    with wsgi_server(app) as url:
        req = urllib.request.Request(
            url + "/symbolicate/v5", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "application/json"
            raw = resp.read()
    result = json.loads(raw)
    assert result == {
        "results": [{"stacks": [[SSLTUNNEL_0x50D4]], "found_modules": {key(SSLTUNNEL): True}}]
    }
    # json.dumps defaults, key order as Eliot emits it
    assert raw.startswith(b'{"results": [{"stacks": [[{"frame": 0, "module": "ssltunnel", ')
    assert symbol_server.downloads(*SSLTUNNEL) == 1


def test_windows_pe_remapping_and_mac(app, symbol_server):
    result = v5(app, [QIPCAP, SHOWSSE, DYLIB], [[[0, 0x1010], [1, 0x1010], [2, 0x10]]])
    assert result["results"][0] == {
        "stacks": [
            [
                {
                    "frame": 0,
                    "module": "qipcap64.dll",
                    "module_offset": "0x1010",
                    "function": "DllMain(void*, unsigned long, void*)",
                    "function_offset": "0x10",
                    "file": "hg:hg.mozilla.org/releases/mozilla-esr115:toolkit/library/dummydll/dummydll.cpp:1ae4eda3ce5ebde1d0b4a615ebc814ecaf5e751a",
                    "line": 11,
                },
                {
                    "frame": 1,
                    "module": "ShowSSEConfig.exe",
                    "module_offset": "0x1010",
                    "function": "wmain()",
                    "function_offset": "0x10",
                    "file": "git:github.com/mozilla-firefox/firefox:mozglue/tests/ShowSSEConfig.cpp:46e9f12a8f9b9b746a71e1b02464fcae95f8da64",
                    "line": 14,
                },
                # Found (MODULE+INFO only), but no symbol covers the address.
                {"frame": 2, "module": "libxul_correct_buildid.dylib", "module_offset": "0x10"},
            ]
        ],
        "found_modules": {key(QIPCAP): True, key(SHOWSSE): True, key(DYLIB): True},
    }


def test_public_symbols(app, symbol_server):
    result = v5(app, [CPPFILT, PUBONLY], [[[0, 0x27FF], [1, 0x1800], [1, 0x10], [1, 0x7FFFFF]]])
    frames = result["results"][0]["stacks"][0]
    assert frames[0] == {
        "frame": 0,
        "module": "c++filt",
        "module_offset": "0x27ff",
        "function": "<.plt.sec ELF section in c++filt>",
        "function_offset": "0x3df",
    }
    assert frames[1] == {
        "frame": 1,
        "module": "pubonly.dll",
        "module_offset": "0x1800",
        "function": "first_public",
        "function_offset": "0x800",
    }
    # Below the first symbol: no function.
    assert frames[2] == {"frame": 2, "module": "pubonly.dll", "module_offset": "0x10"}
    # A PUBLIC extends without limit (kept for compatibility, spec weakness 16).
    assert frames[3]["function"] == "second_public"
    assert frames[3]["function_offset"] == hex(0x7FFFFF - 0x2000)


def test_unknown_modules_offsets_and_found_modules(app, symbol_server):
    memory_map = [
        SSLTUNNEL,
        ("missing.pdb", "ABCDEF0123456789ABCDEF0123456789A"),
        ("", ""),
        CPPFILT,
    ]
    result = v5(app, memory_map, [[[0, -1], [1, 16], [-1, 32], [2, 5]]])
    assert result["results"][0] == {
        "stacks": [
            [
                {"frame": 0, "module": "ssltunnel", "module_offset": "-0x1"},
                {"frame": 1, "module": "missing.pdb", "module_offset": "0x10"},
                {"frame": 2, "module": "<unknown>", "module_offset": "0x20"},
                {"frame": 3, "module": "<unknown>", "module_offset": "0x5"},
            ]
        ],
        "found_modules": {
            key(SSLTUNNEL): True,
            "missing.pdb/ABCDEF0123456789ABCDEF0123456789A": False,
            "/": None,
            key(CPPFILT): None,
        },
    }


def test_found_modules_shared_across_jobs(app, symbol_server):
    payload = {
        "jobs": [
            {"memoryMap": [list(SSLTUNNEL), list(CPPFILT)], "stacks": [[[0, 0x50D4]]]},
            {"memoryMap": [list(CPPFILT), list(CPPFILT)], "stacks": [[[1, 0x27FF]]]},
        ]
    }
    results = app.post_json("/symbolicate/v5", payload).json["results"]
    assert results[0]["found_modules"] == {key(SSLTUNNEL): True, key(CPPFILT): True}
    assert results[1]["found_modules"] == {key(CPPFILT): True}
    assert results[1]["stacks"][0][0]["function"] == "<.plt.sec ELF section in c++filt>"


def test_payload_without_jobs_is_one_job(app, symbol_server):
    payload = {"memoryMap": [list(SSLTUNNEL)], "stacks": [[[0, 0x50D4]]]}
    results = app.post_json("/symbolicate/v5", payload).json["results"]
    assert results[0]["stacks"] == [[SSLTUNNEL_0x50D4]]


def test_lower_case_debug_id_is_found_cold(app, symbol_server):
    """Eliot answered false for a lower-case id unless an upper-case request
    had cached the module first; here the answer never depends on history."""
    lower = (QIPCAP[0], QIPCAP[1].lower())
    result = v5(app, [lower], [[[0, 0x1010]]])
    assert result["results"][0]["found_modules"] == {key(lower): True}
    assert result["results"][0]["stacks"][0][0]["module"] == "qipcap64.dll"


def test_malformed_and_wrong_debug_id(app, symbol_server, metricsmock):
    result = v5(app, [BROKEN, WRONGID, ("x", "ABC")], [[[0, 1], [1, 2], [2, 3]]])
    assert result["results"][0]["found_modules"] == {
        key(BROKEN): False,
        key(WRONGID): False,
        "x/ABC": False,
    }
    for reason in ("sym_malformed", "sym_debug_id_lookup_error", "bad_debug_id"):
        metricsmock.assert_incr("eliot.symbolicate.parse_sym_file.error", tags=[f"reason:{reason}"])


def test_v4(app, symbol_server):
    payload = {
        "memoryMap": [
            list(QIPCAP),
            ["missing.pdb", "ABCDEF0123456789ABCDEF0123456789A"],
            list(CPPFILT),
        ],
        "stacks": [[[0, 0x1010], [1, 0x10], [-1, 0x20], [0, 0x1]]],
        "version": 4,
    }
    resp = app.post_json("/symbolicate/v4", payload, headers={"Debug": "true"})
    assert resp.json == {
        "symbolicatedStacks": [
            [
                "DllMain(void*, unsigned long, void*) (in qipcap64.dll)",
                "0x10 (in missing.pdb)",
                "0x20 (in <unknown>)",
                "0x1 (in qipcap64.dll)",
            ]
        ],
        "knownModules": [True, False, None],
    }


def test_debug_block(app, symbol_server):
    memory_map = [SSLTUNNEL, ("missing.pdb", "ABCDEF0123456789ABCDEF0123456789A")]
    stacks = [[[0, 0x50D4], [0, 0x50D4], [1, 1]]]
    result = v5(app, memory_map, stacks, headers={"Debug": "false"})
    debug = result["debug"]
    assert set(debug) == {
        "time",
        "cache_lookups",
        "downloads",
        "parse_sym",
        "save_symcache",
        "modules",
    }
    assert debug["downloads"]["count"] == 2
    # One lookup per module, as Mozilla's Eliot counts; the disk reads apart.
    assert debug["cache_lookups"]["count"] == 2
    assert debug["cache_lookups"]["hits"] == 0
    assert debug["cache_lookups"]["disk_reads"] == 4
    assert debug["downloads"]["size_per_module"] == {key(SSLTUNNEL): 68176}
    assert key(SSLTUNNEL) in debug["parse_sym"]["time_per_module"]
    assert key(SSLTUNNEL) in debug["save_symcache"]["time_per_module"]
    assert debug["modules"]["count"] == 2
    assert debug["modules"]["stacks_per_module"] == {
        key(SSLTUNNEL): 2,
        "missing.pdb/ABCDEF0123456789ABCDEF0123456789A": 1,
    }
    assert (
        debug["modules"]["status_per_module"]["missing.pdb/ABCDEF0123456789ABCDEF0123456789A"][
            "status"
        ]
        == "missing"
    )
    # Warm: everything comes from the worker's open symcaches.
    debug = v5(app, memory_map, stacks, headers={"Debug": "1"})["debug"]
    assert debug["cache_lookups"]["hits"] >= 1
    assert debug["downloads"]["count"] == 0
    assert "debug" not in v5(app, memory_map, stacks)


def test_offsets_beyond_64_bits_stay_bare(app, symbol_server):
    result = v5(app, [SSLTUNNEL], [[[0, 2**64], [0, 10**30], [0, 2**64 - 1]]])
    frames = result["results"][0]["stacks"][0]
    assert frames[0] == {"frame": 0, "module": "ssltunnel", "module_offset": hex(2**64)}
    assert frames[1] == {"frame": 1, "module": "ssltunnel", "module_offset": hex(10**30)}
    assert frames[2]["module_offset"] == "0xffffffffffffffff"


def test_number_too_long_to_parse_is_a_400(app):
    body = '{"jobs": [{"memoryMap": [], "stacks": [[[-1, ' + "9" * 5000 + "]]]}]}"
    resp = app.post("/symbolicate/v5", body, content_type="application/json", expect_errors=True)
    assert resp.status_int == 400
    assert resp.json == {"title": "Payload is not valid JSON", "error": "Payload is not valid JSON"}


def test_synthetic_module_probes(make_app, symbol_server, tmp_path):
    """A generated 2 MB libxul-like sym file: every probe resolves to the
    function, offset, file and line the generator recorded."""
    import subprocess
    import sys
    from pathlib import Path

    from tecken_shared.testing import SYNTHETIC_SYM_TOOL

    tool = Path(os.environ.get("ELIOT_SYNTH_TOOL", "") or SYNTHETIC_SYM_TOOL)
    out = subprocess.run(
        [
            sys.executable,
            str(tool),
            "--size-mb",
            "2",
            "--seed",
            "7",
            "--probes",
            "12",
            "--debug-filename",
            "synthtest.pdb",
            "--out",
            str(symbol_server.root),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    meta = json.loads(out.strip().splitlines()[-1])
    app = make_app()
    module = (meta["debug_filename"], meta["debug_id"])
    probes = meta["probes"]
    result = v5(app, [module], [[[0, p["module_offset"]] for p in probes]])
    frames = result["results"][0]["stacks"][0]
    assert result["results"][0]["found_modules"] == {key(module): True}
    for frame, probe in zip(frames, probes, strict=True):
        assert frame["function"] == probe["function"]
        assert frame["function_offset"] == hex(probe["function_offset"])
        assert frame["file"] == probe["file"]
        assert frame["line"] == probe["line"]
