# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The identity index: which stored Tecken object answers a symsrv, SSQP or
debuginfod key, and how its bytes become what that client expects.

Each object is parsed once when it is stored (and by ``tecken-symbols-admin
index-identities`` for objects stored before the index existed): gzip and
Microsoft CAB (``.pd_``/``.dl_``/``.ex_``) are expanded, tar archives (dSYM
bundles) opened, and every object ``symbolic`` finds gives its keys:

============  =========================================================
PDB           ``name.pdb/<guid><age>/name.pdb`` (symsrv, SSQP)
PE            ``name.dll/<TIMESTAMP><size>/name.dll`` (symsrv, SSQP)
CAB form      ``name.pd_`` etc. on the same path: the stored object as is
ELF           ``buildid/<id>/debuginfo|executable`` (debuginfod),
source bundle ``buildid/<id>/sources`` (debuginfod ``/source/<path>``)
              ``name/elf-buildid-<id>/name``, ``_.debug/elf-buildid-sym-<id>/_.debug`` (SSQP)
Mach-O        ``name/mach-uuid-<uuid>/name``, ``_.dwarf/mach-uuid-sym-<uuid>/_.dwarf`` (SSQP)
============  =========================================================

Keys are stored lower case (every protocol compares them without case). A
transform other than ``identity`` is applied once, lazily, into a derived
object (:func:`derived_key`). Domain code: no HTTP here."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import posixpath
import tarfile
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import IO

import markus

from tecken_symbols.db import Cursorish, Database, utcnow

logger = logging.getLogger(__name__)
metrics = markus.get_metrics("tecken")

IDENTITY = "identity"
GUNZIP = "gunzip"
CAB = "cab"
TAR_PREFIX = "tar:"
#: Kinds of file a key serves.
DEBUGINFO = "debuginfo"
EXECUTABLE = "executable"
#: A source bundle (``sentry-cli debug-files bundle-sources``): the sources of a build id.
SOURCES = "sources"
#: Where materialised (transformed) objects are written.
DERIVED_PREFIX = "_derived"
#: Members of one tar archive looked at, at most.
MAX_TAR_MEMBERS = 64
#: Windows file endings stored CAB-compressed (last character ``_``).
CAB_ENDINGS = (".pd_", ".dl_", ".ex_")
TAR_ENDINGS = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
#: SSQP pads ELF build ids to 20 bytes.
SSQP_BUILD_ID_LENGTH = 40

COLUMNS = "lookup_key, object_key, transform, file_name, kind, size, object_md5, try_symbols"


class TransformError(Exception):
    """The stored bytes could not be expanded the way the index says."""


@dataclass(frozen=True)
class Identity:
    """One key an object answers: ``lookup_key`` (lower case), the
    ``transform`` giving the served bytes, their ``file_name``, ``kind``
    (debuginfo, executable) and ``size`` (None when unknown)."""

    lookup_key: str
    transform: str
    file_name: str
    kind: str
    size: int | None


@dataclass(frozen=True)
class IndexEntry:
    """A row of the index: the stored object answering a lookup key."""

    lookup_key: str
    object_key: str
    transform: str
    file_name: str
    kind: str
    size: int | None
    object_md5: str
    try_symbols: bool


# -- protocol keys -----------------------------------------------------------


def symstore_key(name: str, some_id: str, file_name: str | None = None) -> str:
    """``name/ID/file`` as the index holds it (lower case; symsrv and SSQP)."""
    return f"{name}/{some_id}/{file_name or name}".lower()


def compressed_name(name: str) -> str:
    """symsrv's compressed form: the last character becomes ``_``."""
    return name[:-1] + "_"


def debuginfod_key(build_id: str, artifact: str) -> str:
    return f"buildid/{build_id.lower()}/{artifact}"


def ssqp_build_id(build_id: str) -> str:
    """SSQP's ELF build id: lower case, zero-padded to 20 bytes."""
    return build_id.lower().ljust(SSQP_BUILD_ID_LENGTH, "0")


def symstore_tier(name: str) -> str:
    """The first folder of a two-tier (``index2.txt``) store path."""
    tier = name[:2]
    if len(tier) == 2 and tier[1] in "./":
        tier = tier[:1]
    return tier.lower()


def derived_key(entry: IndexEntry) -> str:
    """Where the transformed bytes of ``entry`` are kept: named after the
    stored object's md5 and the transform, so a re-upload never serves stale
    bytes (the middle part is not hex: no Tecken key can collide)."""
    tag = hashlib.md5(entry.transform.encode(), usedforsecurity=False).hexdigest()[:8]
    name = entry.file_name.rsplit("/", 1)[-1] or "file"
    return f"{DERIVED_PREFIX}/{entry.object_md5 or 'nomd5'}-{tag}/{name}"


# -- parsing -----------------------------------------------------------------


def _payloads(name: str, data: bytes, max_size: int) -> Iterable[tuple[bytes, str, str]]:
    """(bytes, transform, served file name) of every file inside ``data``."""
    lower = name.lower()
    if lower.endswith(CAB_ENDINGS) and data[:4] == b"MSCF":
        from cabarchive import CabArchive

        for member_name, member in CabArchive(data).items():
            yield member.buf or b"", CAB, member_name.replace("\\", "/").rsplit("/", 1)[-1]
    elif lower.endswith(TAR_ENDINGS):
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for count, member in enumerate(tar):
                if count >= MAX_TAR_MEMBERS:
                    break
                if not member.isfile() or member.size > max_size or member.size < 16:
                    continue
                stream = tar.extractfile(member)
                if stream is not None:
                    yield stream.read(), TAR_PREFIX + member.name, member.name.rsplit("/", 1)[-1]
    elif data[:2] == b"\x1f\x8b":
        served = name[:-3] if lower.endswith(".gz") else name
        yield _gunzip(data, max_size), GUNZIP, served
    else:
        yield data, IDENTITY, name


def _gunzip(data: bytes, max_size: int) -> bytes:
    decomp = zlib.decompressobj(31)
    out = decomp.decompress(data, max_size + 1)
    if len(out) > max_size:
        raise TransformError(f"more than {max_size} bytes once gunzipped")
    return out


def _object_identities(obj, served: str, transform: str, size: int) -> list[Identity]:  # type: ignore[no-untyped-def]
    fmt = obj.file_format
    kind = obj.kind
    code_id = (obj.code_id or "").lower()
    debug_id = str(obj.debug_id or "")
    found = []

    def add(key: str, what: str) -> None:
        found.append(Identity(key, transform, served, what, size))

    if fmt == "pdb" and debug_id:
        add(symstore_key(served, debug_id.replace("-", "")), DEBUGINFO)
    elif fmt == "portablepdb" and debug_id:
        add(symstore_key(served, debug_id.replace("-", "")[:32] + "ffffffff"), DEBUGINFO)
    elif fmt == "pe" and code_id:
        add(symstore_key(served, code_id), EXECUTABLE)
    elif fmt == "elf" and code_id:
        features = set(obj.features or ())
        if "debug" in features:
            add(debuginfod_key(code_id, DEBUGINFO), DEBUGINFO)
            add(symstore_key("_.debug", f"elf-buildid-sym-{ssqp_build_id(code_id)}"), DEBUGINFO)
        if kind in ("exe", "lib"):
            add(debuginfod_key(code_id, EXECUTABLE), EXECUTABLE)
            add(symstore_key(served, f"elf-buildid-{ssqp_build_id(code_id)}"), EXECUTABLE)
    elif fmt == "sourcebundle" and code_id:
        add(debuginfod_key(code_id, SOURCES), SOURCES)
    elif fmt == "macho" and code_id:
        if kind == "dbg":
            add(symstore_key("_.dwarf", f"mach-uuid-sym-{code_id}"), DEBUGINFO)
        else:
            add(symstore_key(served, f"mach-uuid-{code_id}"), EXECUTABLE)
    return found


def identify(key: str, data: bytes, max_size: int) -> list[Identity]:
    """Every identity of the object stored under ``key`` with bytes ``data``
    (its original, uncompressed bytes). Never raises for bad content: what
    cannot be parsed has no identity (name-derived keys excepted, see
    :func:`name_identities`)."""
    name = key.rsplit("/", 1)[-1]
    if name.lower().endswith(".sym"):
        return []
    import symbolic

    found: list[Identity] = []
    try:
        for payload, transform, served in _payloads(name, data, max_size):
            try:
                archive = symbolic.Archive.from_bytes(payload)
                objects = list(archive.iter_objects())
            except Exception:  # not an object file symbolic knows
                continue
            for obj in objects:
                found += _object_identities(obj, served, transform, len(payload))
            if transform == CAB:
                # The CAB form, served as stored, on the same path.
                for ident in list(found):
                    head, _, _ = ident.lookup_key.rpartition("/")
                    found.append(
                        Identity(f"{head}/{name.lower()}", IDENTITY, name, ident.kind, len(data))
                    )
    except (TransformError, tarfile.TarError, EOFError, OSError, zlib.error, ValueError) as exc:
        logger.info("no identities for %s: %s", key, exc)
        metrics.incr("identities.unparsed")
        return name_identities(key, None)
    except Exception as exc:  # cabarchive raises its own errors
        logger.info("no identities for %s: %r", key, exc)
        metrics.incr("identities.unparsed")
        return name_identities(key, None)
    return _unique(found)


def name_identities(key: str, size: int | None) -> list[Identity]:
    """The symsrv keys of a Windows object too big to parse, from its Tecken
    key alone (``name.pdb/ID/name.pd_`` is already a symsrv key)."""
    parts = key.split("/")
    if len(parts) != 3:
        return []
    name, some_id, stored = parts
    lower = stored.lower()
    kind = DEBUGINFO if lower.endswith((".pdb", ".pd_")) else EXECUTABLE
    if lower.endswith(CAB_ENDINGS) and compressed_name(name).lower() == lower:
        return [
            Identity(symstore_key(name, some_id, stored), IDENTITY, stored, kind, size),
            Identity(symstore_key(name, some_id), CAB, name, kind, None),
        ]
    if lower.endswith((".pdb", ".dll", ".exe")) and name.lower() == lower:
        return [Identity(symstore_key(name, some_id), IDENTITY, stored, kind, size)]
    return []


def identify_stream(
    key: str, stream: IO[bytes], *, size: int, gzipped: bool, max_size: int
) -> list[Identity]:
    """:func:`identify` on a spooled object (``gzipped`` when stored so);
    objects over ``max_size`` get the name-derived keys only."""
    if key.lower().endswith(".sym"):
        return []
    if size > max_size:
        metrics.incr("identities.too_big")
        return name_identities(key, size)
    stream.seek(0)
    data = stream.read(max_size + 1)
    if gzipped:
        try:
            data = _gunzip(data, max_size)
        except (TransformError, zlib.error):
            return name_identities(key, size)
    return identify(key, data, max_size)


def _unique(found: Sequence[Identity]) -> list[Identity]:
    seen: dict[str, Identity] = {}
    for ident in found:
        seen.setdefault(ident.lookup_key, ident)
    return list(seen.values())


def apply(transform: str, data: bytes, max_size: int) -> bytes:
    """The served bytes of a stored object. Raises TransformError."""
    try:
        if transform == IDENTITY:
            return data
        if transform == GUNZIP:
            return _gunzip(data, max_size)
        if transform == CAB:
            from cabarchive import CabArchive

            members = list(CabArchive(data).values())
            if len(members) != 1:
                raise TransformError(f"the CAB holds {len(members)} files, not one")
            return members[0].buf or b""
        if transform.startswith(TAR_PREFIX):
            member = transform[len(TAR_PREFIX) :]
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                stream = tar.extractfile(member)
                if stream is None:
                    raise TransformError(f"{member} is not a file of the archive")
                return stream.read(max_size + 1)
    except TransformError:
        raise
    except Exception as exc:
        raise TransformError(f"cannot {transform}: {exc!r}") from exc
    raise TransformError(f"unknown transform {transform!r}")


# -- the table ---------------------------------------------------------------


def record(
    tx: Cursorish | Database,
    object_key: str,
    try_symbols: bool,
    object_md5: str | None,
    identities: Sequence[Identity],
) -> list[str]:
    """Replace the rows of ``object_key``; the lookup keys that changed."""
    old = [
        r["lookup_key"]
        for r in tx.fetchall(
            "SELECT lookup_key FROM symbol_identities WHERE object_key = ? AND try_symbols = ?",
            (object_key, try_symbols),
        )
    ]
    tx.execute(
        "DELETE FROM symbol_identities WHERE object_key = ? AND try_symbols = ?",
        (object_key, try_symbols),
    )
    now = utcnow()
    if identities:
        tx.executemany(
            f"INSERT INTO symbol_identities ({COLUMNS}, created_at) "  # noqa: S608
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    i.lookup_key,
                    object_key,
                    i.transform,
                    i.file_name,
                    i.kind,
                    i.size,
                    object_md5 or "",
                    try_symbols,
                    now,
                )
                for i in identities
            ],
        )
    return sorted(set(old) | {i.lookup_key for i in identities})


def find(db: Database, lookup_key: str) -> IndexEntry | None:
    """The newest regular object answering ``lookup_key`` (lower case)."""
    row = db.fetchone(
        f"SELECT {COLUMNS} FROM symbol_identities "  # noqa: S608
        "WHERE lookup_key = ? AND try_symbols = ? ORDER BY id DESC LIMIT 1",
        (lookup_key, False),
    )
    if row is None:
        return None
    return IndexEntry(**{**row, "try_symbols": bool(row["try_symbols"])})


def normalise_source_path(path: str) -> str:
    """debuginfod's source path: absolute, dot segments removed, ``//`` folded."""
    return "/" + posixpath.normpath("/" + path).lstrip("/")


def bundle_source(bundle: bytes, path: str, max_size: int) -> tuple[str, bytes] | None:
    """(member name, bytes) of the file a source bundle holds for the
    absolute ``path``; None when it holds none. Raises TransformError for
    a bundle that cannot be read."""
    wanted = normalise_source_path(path)
    try:
        with zipfile.ZipFile(io.BytesIO(bundle)) as zf:
            manifest = json.loads(zf.read("manifest.json"))
            for member, info in (manifest.get("files") or {}).items():
                if not isinstance(info, dict) or not isinstance(info.get("path"), str):
                    continue
                if normalise_source_path(info["path"]) != wanted:
                    continue
                if zf.getinfo(member).file_size > max_size:
                    raise TransformError(f"{member} is larger than {max_size} bytes")
                return member, zf.read(member)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, zlib.error) as exc:
        raise TransformError(f"unreadable source bundle: {exc!r}") from exc
    return None
