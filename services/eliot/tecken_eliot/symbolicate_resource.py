# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The symbolication API resources: ``POST /symbolicate/v5`` and the deprecated
``POST /symbolicate/v4``."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import falcon
import markus

from tecken_eliot.naming import module_key
from tecken_eliot.store import Stats
from tecken_eliot.symbolicate import Symbolicator, debug_block
from tecken_eliot.validation import (
    InvalidPayload,
    Job,
    Limits,
    check_limits,
    jobs_of_v5,
    parse_json,
    validate_job,
)

logger = logging.getLogger(__name__)
metrics = markus.get_metrics("eliot")


def _too_large(max_size: int) -> InvalidPayload:
    # A 400 with this message since the limit came in (kept for clients).
    return InvalidPayload(f"Payload is too large: the limit is {max_size} bytes", "too_large")


def read_body(req: falcon.Request, max_size: int) -> bytes:
    """The request body, at most ``max_size`` bytes. A chunked body (no
    Content-Length) is read from the stream the server has de-chunked, with
    the same bound; a server that cannot end such a stream gets a 411."""
    length = req.content_length
    if length is not None:
        if length > max_size:
            raise _too_large(max_size)
        body = req.bounded_stream.read(max_size + 1)
    elif req.env.get("wsgi.input_terminated"):
        # gunicorn de-chunks and ends the stream: read up to the bound.
        body = b""
        while len(body) <= max_size:
            chunk = req.stream.read(max_size + 1 - len(body))
            if not chunk:
                break
            body += chunk
    elif "chunked" in (req.get_header("Transfer-Encoding") or "").lower():
        raise InvalidPayload(
            "a chunked body cannot be read here: send a Content-Length",
            "chunked_unsupported",
            411,
        )
    else:
        body = b""
    if len(body) > max_size:
        raise _too_large(max_size)
    return body


def refused(exc: InvalidPayload) -> falcon.HTTPError:
    """The HTTP error for a refused payload (400, 411 or 413), counted."""
    if exc.reason:
        metrics.incr("symbolicate.request_error", tags=[f"reason:{exc.reason}"])
    return falcon.HTTPError(falcon.code_to_http_status(exc.status), title=exc.message)


class SymbolicateBase:
    def __init__(self, symbolicator: Symbolicator, max_body_size: int, limits: Limits) -> None:
        self.symbolicator = symbolicator
        self.max_body_size = max_body_size
        self.limits = limits

    def jobs(self, payload: Any) -> list[Job]:
        raise NotImplementedError

    def run(self, req: falcon.Request) -> tuple[list[Job], list[dict[str, Any]], Any, Stats]:
        try:
            payload = parse_json(read_body(req, self.max_body_size))
            jobs = self.jobs(payload)
            stats = Stats()
            results, modules = self.symbolicator.symbolicate(jobs, stats)
        except InvalidPayload as exc:
            raise refused(exc) from None
        return jobs, results, modules, stats


class SymbolicateV5Resource(SymbolicateBase):
    def jobs(self, payload: Any) -> list[Job]:
        raw_jobs = jobs_of_v5(payload)
        check_limits(raw_jobs, self.limits)
        metrics.histogram("symbolicate.jobs_count", value=len(raw_jobs), tags=["version:v5"])
        jobs = []
        for i, raw in enumerate(raw_jobs):
            job = validate_job(i, raw)
            metrics.histogram(
                "symbolicate.stacks_count", value=len(job.stacks), tags=["version:v5"]
            )
            jobs.append(job)
        return jobs

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        started = time.perf_counter()
        with metrics.timer("symbolicate.api", tags=["version:v5"]):
            jobs, results, modules, stats = self.run(req)
            body: dict[str, Any] = {"results": results}
            if req.get_header("Debug"):
                body["debug"] = debug_block(jobs, results, modules, stats, started)
            resp.content_type = "application/json"
            resp.text = json.dumps(body)
        logger.info(
            "symbolicate/v5: jobs: %d, symbols: %d, time: %.3f",
            len(jobs),
            sum(len(s) for j in jobs for s in j.stacks),
            time.perf_counter() - started,
        )


class SymbolicateV4Resource(SymbolicateBase):
    def jobs(self, payload: Any) -> list[Job]:
        check_limits([payload], self.limits)
        job = validate_job(0, payload)
        metrics.histogram("symbolicate.stacks_count", value=len(job.stacks), tags=["version:v4"])
        return [job]

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        with metrics.timer("symbolicate.api", tags=["version:v4"]):
            jobs, results, _modules, _stats = self.run(req)
            job, result = jobs[0], results[0]
            stacks = [
                [
                    f"{frame['function'] if 'function' in frame else frame['module_offset']}"
                    f" (in {frame['module']})"
                    for frame in stack
                ]
                for stack in result["stacks"]
            ]
            known = [result["found_modules"][module_key(*m)] for m in job.memory_map]
            resp.content_type = "application/json"
            resp.text = json.dumps({"symbolicatedStacks": stacks, "knownModules": known})
