# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Validation of symbolication payloads. The messages are Eliot's, word for
word, because clients show them to people; the checks are stricter (no
booleans as numbers, no non-object payloads) so bad input is always a 400."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

MAX_JOBS = 10

T = TypeVar("T")

# Eliot's patterns, matched whole (fullmatch): its "^...$" let a trailing newline through.
DEBUG_FILENAME_RE = re.compile(r"[A-Za-z0-9_.+{}@<> ~-]*")
DEBUG_ID_RE = re.compile(r"[A-Fa-f0-9]*")
#: A code id (ELF build id, Mach-O UUID, PE timestamp and size): hex, at most 64 bytes.
CODE_ID_RE = re.compile(r"[A-Fa-f0-9]{1,128}")


class InvalidPayload(ValueError):
    """A payload the API refuses: ``message`` is the error's title, ``reason``
    the ``symbolicate.request_error`` tag (None: no metric), ``status`` the
    HTTP status (400, or 413 for a payload over a size limit)."""

    def __init__(self, message: str, reason: str | None, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class Limits:
    """How much one request may ask for (``ELIOT_MAX_MODULES``,
    ``ELIOT_MAX_FRAMES``)."""

    max_modules: int
    max_frames: int


def check_limits(raw_jobs: list[Any], limits: Limits) -> None:
    """Refuse (413) a request with more modules or frames than ``limits``
    allow, counted over every job before anything is validated or fetched.
    Parts of the wrong shape are left for validation to name."""
    modules = frames = 0
    for job in raw_jobs:
        if not isinstance(job, dict):
            continue
        memory_map = job.get("memoryMap")
        if isinstance(memory_map, list):
            modules += len(memory_map)
        stacks = job.get("stacks")
        if isinstance(stacks, list):
            frames += sum(len(stack) for stack in stacks if isinstance(stack, list))
    if modules > limits.max_modules:
        raise InvalidPayload(
            f"too many modules: {modules} in this request, the limit is "
            f"{limits.max_modules} (ELIOT_MAX_MODULES); split the request",
            "too_many_modules",
            413,
        )
    if frames > limits.max_frames:
        raise InvalidPayload(
            f"too many frames: {frames} in this request, the limit is "
            f"{limits.max_frames} (ELIOT_MAX_FRAMES); split the request",
            "too_many_frames",
            413,
        )


@dataclass
class Job:
    memory_map: list[tuple[str, str]]
    stacks: list[list[tuple[int, int]]]
    #: the code id of each module sent with one (in a memoryMap entry's third element)
    code_ids: dict[tuple[str, str], str] = field(default_factory=dict)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_json(body: bytes) -> Any:
    """The payload as Python's json reads it (its values, its refusals)."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidPayload("Payload is not valid JSON", "bad_json") from exc


def parse_and_validate(body: bytes, validate: Callable[[Any], T]) -> tuple[Any, T]:
    """``(payload, validate(payload))``, the payload parsed by orjson (about
    twice as fast). orjson reads a few things differently from Python's json
    (integers past 64 bits become floats; NaN and lone surrogates are
    refused), and what it reads differently never validates: so whatever
    orjson refuses, or ``validate`` refuses after orjson, is read again by
    :func:`parse_json` and validated again, and the answer (or the refusal)
    is the one Python's json gives."""
    try:
        payload = orjson.loads(body)
        return payload, validate(payload)
    except (orjson.JSONDecodeError, InvalidPayload):
        pass
    payload = parse_json(body)
    return payload, validate(payload)


def jobs_of_v5(payload: Any) -> list[Any]:
    """The raw job list of a v5 payload; a payload without ``jobs`` is one job."""
    if isinstance(payload, dict) and "jobs" in payload:
        jobs = payload["jobs"]
        if not isinstance(jobs, list):
            raise InvalidPayload("jobs must be a list of jobs", "invalid_jobs")
    else:
        jobs = [payload]
    if len(jobs) > MAX_JOBS:
        raise InvalidPayload(
            f"please limit number of jobs in a single request to <= {MAX_JOBS}", "too_many_jobs"
        )
    return jobs


def validate_modules(
    i: int, memory_map: Any, code_ids: dict[tuple[str, str], str] | None = None
) -> list[tuple[str, str]]:
    """The ``(debug_filename, debug_id)`` of each memoryMap entry. An entry
    may have a third element (ours: Eliot takes pairs only), an object whose
    ``code_id`` (the ELF build id; null for none) is put in ``code_ids``."""
    prefix = f"job {i} has invalid modules: "
    if not isinstance(memory_map, list):
        raise InvalidPayload(prefix + "modules must be a list", "invalid_modules")
    modules = []
    for j, item in enumerate(memory_map):
        if (
            not isinstance(item, list)
            or len(item) not in (2, 3)
            or (len(item) == 3 and not isinstance(item[2], dict))
        ):
            raise InvalidPayload(
                prefix + f"module index {j} does not have a debug_filename and debug_id",
                "invalid_modules",
            )
        debug_filename, debug_id = item[:2]
        code_id = item[2].get("code_id") if len(item) == 3 else None
        if code_id is not None and (
            not isinstance(code_id, str) or not CODE_ID_RE.fullmatch(code_id)
        ):
            raise InvalidPayload(
                prefix + f"module index {j} has an invalid code_id", "invalid_modules"
            )
        if not isinstance(debug_filename, str) or not DEBUG_FILENAME_RE.fullmatch(debug_filename):
            raise InvalidPayload(
                prefix + f"module index {j} has an invalid debug_filename", "invalid_modules"
            )
        if not isinstance(debug_id, str) or not DEBUG_ID_RE.fullmatch(debug_id):
            raise InvalidPayload(
                prefix + f"module index {j} has an invalid debug_id", "invalid_modules"
            )
        modules.append((debug_filename, debug_id))
        if code_id and code_ids is not None:
            code_ids[(debug_filename, debug_id)] = code_id
    return modules


def _valid_stacks(stacks: Any, module_count: int) -> bool:
    """Whether every frame is well formed: the common case, checked without
    building anything (:func:`validate_stacks` names what is wrong)."""
    if type(stacks) is not list or not stacks:
        return False
    for stack in stacks:
        if type(stack) is not list:
            return False
        for frame in stack:
            if type(frame) is not list or len(frame) != 2:
                return False
            index, offset = frame
            # type() is int: not a bool, not a float
            if type(index) is not int or type(offset) is not int:
                return False
            if not -1 <= index < module_count or offset < -1:
                return False
    return True


def validate_stacks(i: int, stacks: Any, module_count: int) -> list[list[tuple[int, int]]]:
    """The stacks, each frame a ``(module_index, module_offset)`` pair (a
    two-item list as sent, when every frame is valid)."""
    if _valid_stacks(stacks, module_count):
        return stacks
    prefix = f"job {i} has invalid stacks: "

    def bad(message: str) -> InvalidPayload:
        return InvalidPayload(prefix + message, "invalid_stacks")

    if not isinstance(stacks, list):
        raise bad("stacks must be a list of lists")
    if not stacks:
        raise bad("no stacks specified")
    result = []
    for k, stack in enumerate(stacks):
        if not isinstance(stack, list):
            raise bad(f"stack {k} is not a list")
        frames = []
        for f, frame in enumerate(stack):
            if not isinstance(frame, list) or len(frame) != 2:
                raise bad(f"stack {k} frame {f} is not a list of two items")
            module_index, module_offset = frame
            if not _is_int(module_index):
                raise bad(f"stack {k} frame {f} has an invalid module_index")
            if not -1 <= module_index < module_count:
                raise bad(f"stack {k} frame {f} has a module_index that isn't in modules")
            if not _is_int(module_offset) or module_offset < -1:
                raise bad(f"stack {k} frame {f} has an invalid module_offset")
            frames.append((module_index, module_offset))
        result.append(frames)
    return result


def validate_job(i: int, job: Any) -> Job:
    if not isinstance(job, dict):
        raise InvalidPayload(f"job {i} is invalid", None)
    if "stacks" not in job:
        raise InvalidPayload(f"job {i} is invalid: no stacks specified", None)
    if "memoryMap" not in job:
        raise InvalidPayload(f"job {i} is invalid: no memoryMap specified", None)
    code_ids: dict[tuple[str, str], str] = {}
    modules = validate_modules(i, job["memoryMap"], code_ids)
    stacks = validate_stacks(i, job["stacks"], len(modules))
    return Job(modules, stacks, code_ids)
