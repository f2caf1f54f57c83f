# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Turning a downloaded Breakpad sym file into a symcache file with symbolic."""

from __future__ import annotations

import logging
from pathlib import Path

import markus
import symbolic

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
