# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Symbolication of validated jobs: Eliot's v5 result shape, frame by frame."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import markus

from tecken_eliot.naming import module_key
from tecken_eliot.status import ModuleResult, ModuleStatus
from tecken_eliot.store import Stats, SymcacheStore
from tecken_eliot.validation import InvalidPayload, Job

metrics = markus.get_metrics("eliot")


def _location(loc: Any) -> tuple[str, int]:
    return loc.full_path or "", loc.line or 0


#: Addresses are 64-bit; symbolic cannot look up anything larger.
MAX_ADDRESS = 2**64 - 1


def symbolicate_frame(frame: dict[str, Any], symcache: Any, offset: int) -> None:
    """Add function, function_offset, file, line and inlines to ``frame``."""
    if offset > MAX_ADDRESS:
        return
    locations = symcache.lookup(offset)
    if not locations:
        return
    outer = locations[-1]
    frame["function"] = outer.symbol
    frame["function_offset"] = hex(offset - outer.sym_addr)
    path, line = _location(outer)
    if path:
        frame["file"] = path
        if line:
            frame["line"] = line
    if len(locations) > 1:
        inlines = []
        for loc in locations[:-1]:
            inline: dict[str, Any] = {"function": loc.symbol}
            path, line = _location(loc)
            if path:
                inline["file"] = path
                if line:
                    inline["line"] = line
            inlines.append(inline)
        frame["inlines"] = inlines


def approximate_size(value: Any) -> int:
    """About how many bytes ``value`` (a frame and what it holds) takes as
    JSON; cheap enough to run on every frame."""
    if isinstance(value, str):
        return len(value) + 4
    if isinstance(value, dict):
        return 2 + sum(len(k) + 4 + approximate_size(v) for k, v in value.items())
    if isinstance(value, list):
        return 2 + sum(approximate_size(v) + 2 for v in value)
    return 21


class AnswerTooLarge(InvalidPayload):
    """The answer would be larger than ``ELIOT_MAX_RESPONSE_SIZE`` (a 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the answer would be larger than {limit} bytes (ELIOT_MAX_RESPONSE_SIZE); "
            "split the request into smaller ones",
            "answer_too_large",
            413,
        )


class Symbolicator:
    def __init__(self, store: SymcacheStore, max_response_size: int | None = None) -> None:
        self.store = store
        #: the cap on the estimated answer (None: no cap)
        self.max_response_size = max_response_size

    def symbolicate(
        self, jobs: list[Job], stats: Stats | None = None
    ) -> tuple[list[dict[str, Any]], dict[tuple[str, str], ModuleResult]]:
        """Eliot's v5 ``results`` for ``jobs`` and the per-module outcomes.
        Raises :class:`AnswerTooLarge` as soon as the answer being built is
        estimated over ``max_response_size``, so its memory stays bounded."""
        stats = stats or Stats()
        budget = self.max_response_size
        wanted: list[tuple[str, str]] = []
        for job in jobs:
            for stack in job.stacks:
                for index, _offset in stack:
                    if index >= 0:
                        name, did = job.memory_map[index]
                        if name and did:
                            wanted.append((name, did))
        modules = self.store.get_many(sorted(set(wanted)), stats)
        total_frames = 0
        results = []
        for job in jobs:
            out_stacks = []
            for stack in job.stacks:
                out_frames = []
                for f, (index, offset) in enumerate(stack):
                    total_frames += 1
                    if index < 0:
                        out_frames.append(
                            {"frame": f, "module": "<unknown>", "module_offset": hex(offset)}
                        )
                        continue
                    name, did = job.memory_map[index]
                    frame: dict[str, Any] = {
                        "frame": f,
                        "module": name or "<unknown>",
                        "module_offset": hex(offset),
                    }
                    result = modules.get((name, did))
                    if result is not None and result.status == ModuleStatus.FOUND:
                        frame["module"] = result.filename or name
                        if offset >= 0:
                            symbolicate_frame(frame, result.symcache, offset)
                    if budget is not None:
                        budget -= approximate_size(frame)
                        if budget < 0:
                            raise AnswerTooLarge(self.max_response_size or 0)
                    out_frames.append(frame)
                out_stacks.append(out_frames)
            found: dict[str, bool | None] = {}
            errors: dict[str, str] = {}
            for name, did in job.memory_map:
                result = modules.get((name, did))
                key = module_key(name, did)
                found[key] = None if result is None else result.status == ModuleStatus.FOUND
                if result is not None and result.status == ModuleStatus.ERROR:
                    errors[key] = result.detail
            job_result: dict[str, Any] = {"stacks": out_stacks, "found_modules": found}
            if errors:
                # An extra key clients ignore: "false" here means "try later",
                # not "there are no symbols".
                job_result["module_errors"] = errors
            results.append(job_result)
        metrics.histogram("symbolicate.frames_count", value=total_frames)
        return results, modules


def debug_block(
    jobs: list[Job],
    results: list[dict[str, Any]],
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
        1 for result in results for value in result["found_modules"].values() if value is not None
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
