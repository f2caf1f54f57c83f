# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Turning downloaded symbols into a symcache file with symbolic: a Breakpad
sym file or a debug file (ELF, PDB, Mach-O), after :func:`unpack` has taken
it out of its container (gzip, CAB, a tarred dSYM bundle) if it is in one."""

from __future__ import annotations

import gzip
import logging
import struct
import tarfile
import zlib
from pathlib import Path
from typing import BinaryIO

import cabarchive
import markus
import symbolic

from tecken_eliot.downloader import LineLimitedWriter, LineTooLong
from tecken_shared.breakpad import read_header

logger = logging.getLogger(__name__)
metrics = markus.get_metrics("eliot")

#: Errors symbolic raises for files it cannot use (our fault is never one of these).
MALFORMED_ERRORS: tuple[type[BaseException], ...] = (
    symbolic.ObjectErrorUnknown,
    symbolic.ObjectErrorUnsupportedObject,
    symbolic.SymCacheErrorBadDebugFile,
    symbolic.SymbolicError,
)


class MalformedSymbols(Exception):
    """The sym file cannot give a symcache for the requested module; ``reason``
    is the ``symbolicate.parse_sym_file.error`` tag."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def normalize_debug_id(debug_id: str) -> str:
    try:
        return symbolic.normalize_debug_id(debug_id)
    except (symbolic.SymbolicError, ValueError) as exc:
        metrics.incr("symbolicate.parse_sym_file.error", tags=["reason:bad_debug_id"])
        raise MalformedSymbols("bad_debug_id", f"{debug_id!r} is not a valid debug id") from exc


def module_filename(sym_path: Path, debug_filename: str) -> str:
    """The code file of the header's ``INFO CODE_ID <id> <file>`` line (PE
    modules: ``xul.dll`` for ``xul.pdb``), else ``debug_filename``. Only the
    header is read (:func:`tecken_shared.breakpad.read_header`)."""
    return read_header(sym_path).code_file or debug_filename


def build_symcache(sym_path: Path, normalized_debug_id: str, out_path: Path) -> None:
    """Parse ``sym_path`` and write the symcache of ``normalized_debug_id`` to
    ``out_path``. Raises MalformedSymbols for files that cannot be used."""
    with metrics.timer("symbolicate.parse_sym_file.parse"):
        try:
            archive = symbolic.Archive.open(str(sym_path))
            obj = archive.get_object(debug_id=normalized_debug_id)
            symcache = obj.make_symcache()
        except LookupError as exc:
            metrics.incr(
                "symbolicate.parse_sym_file.error", tags=["reason:sym_debug_id_lookup_error"]
            )
            raise MalformedSymbols(
                "sym_debug_id_lookup_error",
                f"the sym file has no module with debug id {normalized_debug_id}",
            ) from exc
        except MALFORMED_ERRORS as exc:
            metrics.incr("symbolicate.parse_sym_file.error", tags=["reason:sym_malformed"])
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise MalformedSymbols("sym_malformed", f"malformed sym file: {first}") from exc
        with open(out_path, "wb") as fp:
            symcache.dump_into(fp)


#: Containers :func:`unpack` recognises, by their first bytes.
GZIP_MAGIC = b"\x1f\x8b"
CAB_MAGIC = b"MSCF"
BZIP2_MAGIC = b"BZh"
#: An MSZIP block of a CAB file unpacks to at most 32 KiB.
CAB_BLOCK = 32768
#: Where a dSYM bundle keeps its Mach-O debug file.
DSYM_DWARF = "/Contents/Resources/DWARF/"


class _TooLarge(Exception):
    pass


def _copy(src: BinaryIO, out: Path, max_size: int, max_line: int) -> None:
    """``src`` into ``out``, at most ``max_size`` bytes; a sym file (``MODULE``
    first) with lines of at most ``max_line`` bytes."""
    size = 0
    with open(out, "wb") as fp:
        writer: BinaryIO | LineLimitedWriter = fp
        while chunk := src.read(1 << 20):
            if size == 0 and chunk.startswith(b"MODULE "):
                writer = LineLimitedWriter(fp, max_line)
            size += len(chunk)
            if size > max_size:
                raise _TooLarge(f"unpacks to more than {max_size} bytes")
            writer.write(chunk)


def _cab_bounds(data: bytes, max_size: int) -> None:
    """Refuse a CAB file whose header promises more than ``max_size`` bytes,
    before anything is decompressed."""
    try:
        coff_files, folders, files, flags = struct.unpack_from("<16xI6xHHH", data)
        offset = 36
        folder_reserve = 0
        if flags & 0x4:
            header_reserve, folder_reserve = struct.unpack_from("<HB", data, offset)
            offset += 4 + header_reserve
        blocks = 0
        for _ in range(folders):
            blocks += struct.unpack_from("<4xH", data, offset)[0]
            offset += 8 + folder_reserve
        declared = 0
        offset = coff_files
        for _ in range(files):
            declared += struct.unpack_from("<I", data, offset)[0]
            end = data.index(b"\0", offset + 16)
            offset = end + 1
    except (struct.error, ValueError) as exc:
        raise cabarchive.CorruptionError(f"bad CAB header: {exc}") from exc
    if declared > max_size or blocks > max_size // CAB_BLOCK + folders:
        raise _TooLarge(f"unpacks to more than {max_size} bytes")


def _uncab(path: Path, out: Path, max_size: int) -> None:
    """The largest file of a CAB archive (``xul.pd_`` holds ``xul.pdb``)."""
    data = path.read_bytes()
    _cab_bounds(data, max_size)
    archive = cabarchive.CabArchive(data)
    members = [f for f in archive.values() if f.buf is not None]
    if not members:
        raise cabarchive.CorruptionError("the CAB file holds no file")
    out.write_bytes(max(members, key=lambda f: len(f.buf or b"")).buf or b"")


def _untar_dsym(path: Path, out: Path, max_size: int, max_line: int) -> None:
    """The Mach-O debug file of a tarred dSYM bundle (the first regular file
    under ``*.dSYM/Contents/Resources/DWARF/``)."""
    with tarfile.open(path, "r:*") as tar:
        for member in tar:
            if member.isfile() and DSYM_DWARF in "/" + member.name:
                if member.size > max_size:
                    raise _TooLarge(f"unpacks to more than {max_size} bytes")
                src = tar.extractfile(member)
                assert src is not None  # a regular file
                _copy(src, out, max_size, max_line)
                return
    raise tarfile.ReadError(f"no file under *.dSYM{DSYM_DWARF} in the archive")


def unpack(path: Path, out: Path, *, max_size: int, max_line: int) -> Path:
    """Where symbolic finds the symbols downloaded into ``path``: ``path``
    itself (a sym file or a debug file), or ``out``, where the content of a
    gzip file, a CAB file or a tar.bz2 of a dSYM bundle is written (at most
    ``max_size`` bytes; a sym file's lines at most ``max_line`` bytes). Raises
    MalformedSymbols for a broken or too large container; an OSError is our
    own disk failing."""
    with open(path, "rb") as fp:
        magic = fp.read(4)
    try:
        if magic.startswith(GZIP_MAGIC):
            with gzip.open(path, "rb") as src:
                _copy(src, out, max_size, max_line)  # type: ignore[arg-type]
        elif magic == CAB_MAGIC:
            _uncab(path, out, max_size)
        elif magic.startswith(BZIP2_MAGIC):
            _untar_dsym(path, out, max_size, max_line)
        else:
            return path
    except _TooLarge as exc:
        metrics.incr("symbolicate.parse_sym_file.error", tags=["reason:too_large"])
        raise MalformedSymbols(
            "too_large", f"the symbol file {exc} (ELIOT_MAX_DEBUG_FILE_SIZE)"
        ) from exc
    except LineTooLong as exc:
        metrics.incr("symbolicate.parse_sym_file.error", tags=["reason:too_large"])
        raise MalformedSymbols("too_large", str(exc)) from exc
    except (
        EOFError,
        zlib.error,
        tarfile.TarError,
        cabarchive.CorruptionError,
        cabarchive.NotSupportedError,
        OSError,
    ) as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            raise  # our disk, not the file
        metrics.incr("symbolicate.parse_sym_file.error", tags=["reason:bad_container"])
        raise MalformedSymbols("bad_container", f"cannot unpack the symbol file: {exc}") from exc
    return out
