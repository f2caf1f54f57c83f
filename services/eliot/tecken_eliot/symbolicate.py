# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Symbolication of validated jobs: Eliot's v5 result shape, frame by frame."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain
from typing import Any

import markus

from tecken_eliot.frames import MAX_ADDRESS, SymcacheFrames, dumps_str
from tecken_eliot.naming import module_key
from tecken_eliot.status import FRAME_STATUS, ModuleResult, ModuleStatus
from tecken_eliot.store import Stats, SymcacheStore
from tecken_eliot.validation import InvalidPayload, Job

metrics = markus.get_metrics("eliot")


class AnswerTooLarge(InvalidPayload):
    """The answer would be larger than ``ELIOT_MAX_RESPONSE_SIZE`` (a 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the answer would be larger than {limit} bytes (ELIOT_MAX_RESPONSE_SIZE); "
            "split the request into smaller ones",
            "answer_too_large",
            413,
        )


@dataclass(frozen=True)
class Options:
    """What a request asks for beyond Eliot's answer (each off by default, so
    the default answer is Eliot's, byte for byte)."""

    #: demangled function names, the raw ones in ``raw_function``
    demangle: bool = False
    #: a ``status`` per frame and a ``module_status`` per job
    explain: bool = False


class JobAnswer:
    """One job's answer: its JSON text (an element of v5's ``results``) and
    its ``found_modules``."""

    __slots__ = ("text", "found_modules")

    def __init__(self, text: str, found_modules: dict[str, bool | None]) -> None:
        self.text = text
        self.found_modules = found_modules


def answer_text(answers: list[JobAnswer], debug: dict[str, Any] | None = None) -> str:
    """The v5 answer, exactly as ``json.dumps`` writes the same object."""
    text = '{"results": [' + ", ".join(a.text for a in answers) + "]"
    if debug is not None:
        text += ', "debug": ' + json.dumps(debug)
    return text + "}"


class Symbolicator:
    def __init__(
        self,
        store: SymcacheStore,
        max_response_size: int | None = None,
        explainer: Callable[[str, str, ModuleResult], dict[str, Any]] | None = None,
    ) -> None:
        self.store = store
        #: the cap on the answer's size (None: no cap)
        self.max_response_size = max_response_size
        #: a module's ``module_status`` entry (explain answers)
        self.explainer = explainer

    def symbolicate(
        self, jobs: list[Job], stats: Stats | None = None, options: Options = Options()
    ) -> tuple[list[JobAnswer], dict[tuple[str, str], ModuleResult]]:
        """Eliot's v5 ``results`` for ``jobs``, as text, and the per-module
        outcomes. Raises :class:`AnswerTooLarge` as soon as the answer being
        built is over ``max_response_size``, so its memory stays bounded.

        Frames come from each symcache's memo (:mod:`tecken_eliot.frames`),
        and a stack repeated in the request (same frames, same modules) is
        written once."""
        stats = stats or Stats()
        wanted: set[tuple[str, str]] = set()
        code_ids: dict[tuple[str, str], str] = {}
        for job in jobs:
            code_ids.update(job.code_ids)
            used = {index for stack in job.stacks for index, _offset in stack}
            for index in used:
                if index >= 0:
                    name, did = job.memory_map[index]
                    if name and did:
                        wanted.add((name, did))
        modules = self.store.get_many(sorted(wanted), stats, code_ids)
        budget = self.max_response_size if self.max_response_size is not None else -1
        size = 0
        total_frames = 0
        #: (memory map number, stack's numbers) -> its JSON text, for repeated stacks
        stacks_done: dict[tuple[int, tuple[int, ...]], str] = {}
        maps: dict[tuple[tuple[str, str], ...], int] = {}
        answers = []
        for job in jobs:
            memory_map = tuple(job.memory_map)
            map_number = maps.setdefault(memory_map, len(maps))
            # Per module index: its JSON name, its frames if found, its status.
            resolved = []
            for name, did in memory_map:
                result = modules.get((name, did))
                if result is not None and result.status is ModuleStatus.FOUND:
                    resolved.append((dumps_str(result.filename or name), result.frames, None))
                else:
                    status = "unknown_module" if result is None else FRAME_STATUS[result.status]
                    resolved.append((dumps_str(name or "<unknown>"), None, status))
            out_stacks = []
            for stack in job.stacks:
                total_frames += len(stack)
                key = (map_number, tuple(chain.from_iterable(stack)))
                text = stacks_done.get(key)
                if text is None:
                    text = self._stack(stack, resolved, options, budget - size)
                    stacks_done[key] = text
                size += len(text) + 2
                if 0 <= budget < size:
                    raise AnswerTooLarge(budget)
                out_stacks.append(text)
            found: dict[str, bool | None] = {}
            errors: dict[str, str] = {}
            explained: dict[str, Any] = {}
            for name, did in memory_map:
                result = modules.get((name, did))
                key_ = module_key(name, did)
                found[key_] = None if result is None else result.status is ModuleStatus.FOUND
                if result is not None and result.status is ModuleStatus.ERROR:
                    errors[key_] = result.detail
                if options.explain and result is not None and self.explainer is not None:
                    explained[key_] = self.explainer(name, did, result)
            text = '{"stacks": [' + ", ".join(out_stacks) + '], "found_modules": '
            text += json.dumps(found)
            if errors:
                # An extra key clients ignore: "false" here means "try later",
                # not "there are no symbols".
                text += ', "module_errors": ' + json.dumps(errors)
            if options.explain:
                text += ', "module_status": ' + json.dumps(explained)
            answers.append(JobAnswer(text + "}", found))
        self.store.trim()
        metrics.histogram("symbolicate.frames_count", value=total_frames)
        return answers, modules

    def _stack(
        self,
        stack: list[tuple[int, int]],
        resolved: list[tuple[str, SymcacheFrames | None, str | None]],
        options: Options,
        budget: int,
    ) -> str:
        """One stack's JSON text; ``budget`` (negative: none) bounds its size."""
        demangle = options.demangle
        parts = []
        size = 0
        for f, (index, offset) in enumerate(stack):
            if index < 0:
                module, frames, status = UNKNOWN
            else:
                module, frames, status = resolved[index]
            keys = frames.frame(offset, demangle)[0] if frames is not None else ""
            if options.explain:
                keys += ', "status": "' + (status or frame_status(offset, keys)) + '"'
            part = f'{{"frame": {f}, "module": {module}, "module_offset": "{offset:#x}"{keys}}}'
            size += len(part) + 2
            if 0 <= budget < size:
                raise AnswerTooLarge(self.max_response_size or 0)
            parts.append(part)
        return "[" + ", ".join(parts) + "]"

    def v4_stacks(self, job: Job, modules: dict[tuple[str, str], ModuleResult]) -> list[list[str]]:
        """The deprecated v4 answer's ``symbolicatedStacks``: ``<function or
        offset> (in <module>)`` per frame."""
        stacks = []
        for stack in job.stacks:
            lines = []
            for index, offset in stack:
                module, function = "<unknown>", None
                if index >= 0:
                    name, did = job.memory_map[index]
                    module = name or module
                    result = modules.get((name, did))
                    if result is not None and result.frames is not None:
                        module = result.filename or name
                        function = result.frames.frame(offset)[1]
                lines.append(f"{hex(offset) if function is None else function} (in {module})")
            stacks.append(lines)
        return stacks


#: The module of a frame without one (module index -1).
UNKNOWN: tuple[str, None, str] = (dumps_str("<unknown>"), None, "unknown_module")


def frame_status(offset: int, keys: str) -> str:
    """The ``status`` of a frame in a module whose symbols were found."""
    if not 0 <= offset <= MAX_ADDRESS:
        return "offset_outside_module"
    return "symbolicated" if keys else "no_function"


def debug_block(
    jobs: list[Job],
    results: list[JobAnswer],
    modules: dict[tuple[str, str], ModuleResult],
    stats: Stats,
    started: float,
) -> dict[str, Any]:
    """The ``debug`` object added when the request has a ``Debug`` header."""
    stacks_per_module: Counter[str] = Counter()
    for job in jobs:
        for stack in job.stacks:
            for index, _offset in stack:
                if index >= 0:
                    stacks_per_module[module_key(*job.memory_map[index])] += 1
    count = sum(
        1 for result in results for value in result.found_modules.values() if value is not None
    )
    return {
        "time": time.perf_counter() - started,
        "cache_lookups": {
            "count": stats.cache_count,
            "hits": stats.cache_hits,
            "time": stats.cache_time,
            # Beyond Eliot's block (clients ignore it): disk cache reads.
            "disk_reads": stats.disk_reads,
        },
        "downloads": {
            "count": len(stats.downloads) + len(stats.download_fail),
            "size": sum(stats.download_sizes.values()),
            "time": sum(stats.downloads.values()) + sum(stats.download_fail.values()),
            "size_per_module": dict(stats.download_sizes),
            "time_per_module": dict(stats.downloads),
            "fail_time_per_module": dict(stats.download_fail),
        },
        "parse_sym": {
            "time": sum(stats.parse.values()),
            "time_per_module": dict(stats.parse),
            "fail_time_per_module": dict(stats.parse_fail),
        },
        "save_symcache": {"time": sum(stats.save.values()), "time_per_module": dict(stats.save)},
        "modules": {
            "count": count,
            "stacks_per_module": dict(stacks_per_module),
            "status_per_module": {
                module_key(*m): {"status": r.status, "detail": r.detail, "cached": r.cached}
                for m, r in sorted(modules.items())
            },
        },
    }
