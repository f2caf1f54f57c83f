# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Just enough of the minidump format to list a dump's modules with their
Breakpad identities (debug file, debug id), so their symbol files can be
fetched before the stackwalker runs.

Layout (Microsoft's MINIDUMP_* structures, little-endian): a 32-byte header
(``MDMP``, version, stream count, directory offset), a directory of 12-byte
entries (stream type, size, offset), and the module list stream (type 4): a
count then 108-byte module records. A record's CodeView record is either
``RSDS`` (PDB: GUID, age, PDB path) or Breakpad's ``LEpB`` (ELF: the build id
bytes). A module without an identity (all zeros) is left out.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

MODULE_LIST_STREAM = 4
MODULE_RECORD_SIZE = 108
CV_PDB70 = b"RSDS"
CV_ELF = b"LEpB"  # the 32-bit signature 0x4270454C, little-endian


class NotAMinidump(ValueError):
    pass


@dataclass(frozen=True)
class DumpModule:
    name: str
    debug_file: str
    debug_id: str


def _guid_text(raw: bytes) -> str:
    """A 16-byte GUID as Breakpad prints it: the first three fields are
    little-endian integers, the last eight bytes are in order."""
    data1, data2, data3 = struct.unpack_from("<IHH", raw)
    return f"{data1:08X}{data2:04X}{data3:04X}{raw[8:16].hex().upper()}"


def _basename(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]


def _string(data: bytes, rva: int) -> str:
    if rva + 4 > len(data):
        return ""
    (size,) = struct.unpack_from("<I", data, rva)
    return data[rva + 4 : rva + 4 + size].decode("utf-16-le", "replace")


def _identity(name: str, cv: bytes) -> tuple[str, str] | None:
    if cv[:4] == CV_PDB70 and len(cv) >= 24 and cv[4:20].strip(b"\0"):
        (age,) = struct.unpack_from("<I", cv, 20)
        pdb = cv[24:].split(b"\0", 1)[0].decode("utf-8", "replace")
        return _basename(pdb) or _basename(name), f"{_guid_text(cv[4:20])}{age:X}"
    if cv[:4] == CV_ELF and len(cv) > 4:
        build_id = cv[4:]
        if not build_id.strip(b"\0"):
            return None
        return _basename(name), _guid_text(build_id[:16].ljust(16, b"\0")) + "0"
    return None


def read_modules(data: bytes) -> list[DumpModule]:
    """The modules of a minidump with a Breakpad identity; raises NotAMinidump
    when ``data`` is not one."""
    if len(data) < 32 or data[:4] != b"MDMP":
        raise NotAMinidump("not a minidump (no MDMP signature)")
    _, _, count, directory = struct.unpack_from("<4sIII", data)
    modules: list[DumpModule] = []
    for i in range(count):
        offset = directory + 12 * i
        if offset + 12 > len(data):
            raise NotAMinidump("truncated stream directory")
        kind, size, rva = struct.unpack_from("<III", data, offset)
        if kind != MODULE_LIST_STREAM or rva + 4 > len(data):
            continue
        (number,) = struct.unpack_from("<I", data, rva)
        for n in range(min(number, max(0, (size - 4) // MODULE_RECORD_SIZE))):
            record = rva + 4 + n * MODULE_RECORD_SIZE
            if record + MODULE_RECORD_SIZE > len(data):
                break
            name = _string(data, struct.unpack_from("<I", data, record + 20)[0])
            cv_size, cv_rva = struct.unpack_from("<II", data, record + 76)
            identity = _identity(name, data[cv_rva : cv_rva + cv_size])
            if identity:
                modules.append(DumpModule(name, *identity))
    return modules
