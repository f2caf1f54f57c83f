#!/usr/bin/env python3
# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Generate a deterministic, realistic Breakpad SYM file of a chosen size.

Used to benchmark sym-file parsing / symcache building / lookups at sizes
that resemble real large modules (xul.pdb / libxul.so sym files are
hundreds of MB), where the real test fixtures are only a few dozen KB.

The output contains the record types real dump_syms output has:

    MODULE <os> <arch> <debug_id> <debug_filename>
    INFO CODE_ID <code_id> [<code_file>]
    INFO GENERATOR ...
    FILE <n> <path>
    INLINE_ORIGIN <n> <name>
    FUNC [m] <addr> <size> <param_size> <name>
      <addr> <size> <line> <filenum>          (line records)
    INLINE <nest> <call_line> <call_file> <origin> <addr> <size> [...]
    PUBLIC [m] <addr> <param_size> <name>
    STACK CFI INIT / STACK CFI  (a few, for realism; not used by lookups)

Functions are laid out back to back at increasing addresses with small gaps;
every FUNC is fully covered by line records; about a third of functions carry
one or two levels of INLINE records; PUBLIC records are placed in the gaps.

Same arguments (size, seed, names) => byte-identical output.

Usage:

    python make_synthetic_sym.py --size-mb 100 --seed 1 \
        --debug-filename synth.pdb --out /tmp/symbols

writes /tmp/symbols/synth.pdb/<DEBUGID>/synth.sym (symbol-server layout:
debug_filename/DEBUG_ID/sym_filename, where sym_filename replaces a trailing
.pdb with .sym, otherwise appends .sym) and prints a JSON line with the
path, debug id, size, counts and a handful of probe addresses together with
the expected outermost function name / line / file and inline names for each,
so a symbolication service can be checked against the generated file.

Pass --out-file PATH instead of --out to write a single file.
"""

import argparse
import hashlib
import json
import os
import random
import sys

NAMESPACES = [
    "mozilla",
    "mozilla::dom",
    "mozilla::net",
    "mozilla::layers",
    "js",
    "js::jit",
    "js::gc",
    "nsContentUtils",
    "std",
    "core::fmt",
    "alloc::vec",
    "webrender::renderer",
    "style::properties",
    "mozilla::ipc",
]
WORDS = [
    "Alloc",
    "Buffer",
    "Channel",
    "Dispatch",
    "Element",
    "Frame",
    "Get",
    "Handle",
    "Init",
    "Layer",
    "Message",
    "Node",
    "Observer",
    "Paint",
    "Process",
    "Queue",
    "Read",
    "Run",
    "Send",
    "Set",
    "Stream",
    "Task",
    "Update",
    "Visit",
    "Write",
    "Worker",
    "Compile",
    "Trace",
    "Sweep",
    "Mark",
]
ARGS = [
    "",
    "int",
    "unsigned int",
    "void*",
    "bool",
    "nsresult const&",
    "mozilla::Maybe<int>&&",
    "JSContext*, JS::Handle<JSObject*>",
    "nsTArray<unsigned char> const&",
    "std::string const&",
]
DIRS = [
    "dom/base",
    "dom/ipc",
    "netwerk/protocol/http",
    "js/src/jit",
    "js/src/gc",
    "gfx/layers",
    "layout/generic",
    "xpcom/threads",
    "ipc/glue",
    "servo/components/style",
    "gfx/wr/webrender/src",
]


def sym_filename_for(debug_filename):
    if debug_filename.endswith(".pdb"):
        return debug_filename[:-4] + ".sym"
    return debug_filename + ".sym"


def make_debug_id(seed, debug_filename):
    digest = hashlib.sha256(f"{seed}:{debug_filename}".encode()).hexdigest()
    return digest[:32].upper() + "1"


def func_name(rng, i):
    ns = rng.choice(NAMESPACES)
    return f"{ns}::{rng.choice(WORDS)}{rng.choice(WORDS)}{i}({rng.choice(ARGS)})"


def generate(fp, size_bytes, seed, debug_filename, debug_id, os_name, arch, nprobes=8):
    rng = random.Random(seed)
    written = 0

    def w(s):
        nonlocal written
        fp.write(s)
        written += len(s)

    code_file = debug_filename[:-4] + ".dll" if debug_filename.endswith(".pdb") else ""
    w(f"MODULE {os_name} {arch} {debug_id} {debug_filename}\n")
    code_id = hashlib.md5(debug_id.encode()).hexdigest().upper()[:16]
    w(f"INFO CODE_ID {code_id}{(' ' + code_file) if code_file else ''}\n")
    w("INFO GENERATOR synthetic make_synthetic_sym.py 1.0\n")

    # Scale the number of files/origins with size (real xul: ~100k files).
    nfiles = max(16, min(200_000, size_bytes // 4000))
    norigins = max(16, min(400_000, size_bytes // 1500))
    files = []
    for i in range(nfiles):
        d = rng.choice(DIRS)
        path = (
            f"hg:hg.mozilla.org/mozilla-central:{d}/"
            f"{rng.choice(WORDS)}{rng.choice(WORDS)}{i}.cpp:"
            f"{hashlib.sha1(str(i).encode()).hexdigest()}"
        )
        files.append(path)
        w(f"FILE {i} {path}\n")
    origins = []
    for i in range(norigins):
        name = func_name(rng, i)
        origins.append(name)
        w(f"INLINE_ORIGIN {i} {name}\n")

    # Reserve roughly 8% of the budget for PUBLIC + STACK records at the end.
    func_budget = int(size_bytes * 0.92)
    addr = 0x1000
    nfunc = nlines = ninlines = 0
    publics = []
    probes = []
    probe_every = None
    next_probe = 0
    stack_lines = []

    while written < func_budget:
        func_start_bytes = written
        fsize = rng.randint(0x10, 0x600)
        name = func_name(rng, nfunc)
        param = rng.choice((0, 0, 0, 4, 8, 16))
        w(f"FUNC {addr:x} {fsize:x} {param:x} {name}\n")
        # Line records covering the whole function.
        fileno = rng.randrange(nfiles)
        line = rng.randint(1, 5000)
        off = 0
        line_recs = []
        while off < fsize:
            chunk = min(fsize - off, rng.randint(1, 0x40))
            line_recs.append((addr + off, chunk, line, fileno))
            w(f"{addr + off:x} {chunk:x} {line} {fileno}\n")
            nlines += 1
            off += chunk
            line += rng.randint(-3, 12)
            if line < 1:
                line = 1
            if rng.random() < 0.1:
                fileno = rng.randrange(nfiles)
        # Inlines for about a third of functions (need a body >= 0x20).
        inl = []
        if fsize >= 0x20 and rng.random() < 0.35:
            start = addr + rng.randrange(0, fsize // 2)
            length = rng.randint(8, max(8, (addr + fsize - start) // 2))
            o0 = rng.randrange(norigins)
            w(
                f"INLINE 0 {rng.randint(1, 3000)} {rng.randrange(nfiles)} {o0} "
                f"{start:x} {length:x}\n"
            )
            ninlines += 1
            inl.append((start, length, o0))
            if length >= 8 and rng.random() < 0.5:
                s1 = start + rng.randrange(0, length // 2)
                l1 = rng.randint(2, max(2, (start + length - s1) // 2))
                o1 = rng.randrange(norigins)
                w(f"INLINE 1 {rng.randint(1, 3000)} {rng.randrange(nfiles)} {o1} {s1:x} {l1:x}\n")
                ninlines += 1
                inl.append((s1, l1, o1))
        if rng.random() < 0.02:
            stack_lines.append(
                f"STACK CFI INIT {addr:x} {fsize:x} .cfa: $rsp 8 + .ra: .cfa -8 + ^\n"
            )
        # Record probes in roughly evenly spaced inline-free functions.
        if probe_every is None:
            # Estimate the function count from an average function's bytes.
            per_func = max(written - func_start_bytes, 1) * 2
            probe_every = max(1, int((func_budget - written) / per_func / max(nprobes, 1)))
        if nfunc >= next_probe and not inl and len(probes) < nprobes:
            next_probe = nfunc + probe_every
            a, ln, lineno, f = line_recs[len(line_recs) // 2]
            probe_addr = a
            exp = {
                "module_offset": probe_addr,
                "function": name,
                "function_offset": probe_addr - addr,
                "line": lineno,
                "file": files[f],
            }
            probes.append(exp)
        nfunc += 1
        gap = rng.choice((0, 0, 0x10, 0x20, 0x40))
        if gap:
            publics.append((addr + fsize, f"public_thunk_{nfunc}"))
        addr += fsize + gap

    for paddr, pname in publics:
        w(f"PUBLIC {paddr:x} 0 {pname}\n")
        if written >= size_bytes:
            break
    for s in stack_lines:
        w(s)
    return {
        "bytes": written,
        "functions": nfunc,
        "line_records": nlines,
        "inline_records": ninlines,
        "files": nfiles,
        "inline_origins": norigins,
        "publics": len(publics),
        "max_address": addr,
        "probes": probes,
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--size-mb", type=float, default=100.0, help="approximate output size in MiB (default 100)"
    )
    p.add_argument("--seed", type=int, default=1, help="RNG seed (default 1)")
    p.add_argument("--debug-filename", default="synthetic.pdb")
    p.add_argument(
        "--debug-id", default=None, help="33 hex chars; default derived from seed+filename"
    )
    p.add_argument("--os", dest="os_name", default="windows")
    p.add_argument("--arch", default="x86_64")
    p.add_argument("--probes", type=int, default=8)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument(
        "--out", help="symbol-server root; writes <root>/<debug_filename>/<DEBUGID>/<sym_filename>"
    )
    g.add_argument("--out-file", help="write to this exact path")
    args = p.parse_args(argv)

    debug_id = (args.debug_id or make_debug_id(args.seed, args.debug_filename)).upper()
    if args.out:
        d = os.path.join(args.out, args.debug_filename, debug_id)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, sym_filename_for(args.debug_filename))
    else:
        path = args.out_file
    size_bytes = int(args.size_mb * 1024 * 1024)
    with open(path, "w", encoding="ascii", newline="\n", buffering=1 << 20) as fp:
        info = generate(
            fp,
            size_bytes,
            args.seed,
            args.debug_filename,
            debug_id,
            args.os_name,
            args.arch,
            args.probes,
        )
    info.update(
        {
            "path": path,
            "debug_filename": args.debug_filename,
            "debug_id": debug_id,
            "seed": args.seed,
        }
    )
    json.dump(info, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
