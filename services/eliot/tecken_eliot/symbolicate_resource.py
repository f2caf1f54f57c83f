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
from tecken_eliot.symbolicate import JobAnswer, Options, Symbolicator, answer_text, debug_block
from tecken_eliot.validation import (
    InvalidPayload,
    Job,
    Limits,
    check_limits,
    jobs_of_v5,
    parse_and_validate,
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
        """The payload's jobs, validated (refusals raise InvalidPayload)."""
        raise NotImplementedError

    def count(self, jobs: list[Job]) -> None:
        """The metrics of a valid request."""
        raise NotImplementedError

    def options(self, payload: Any) -> Options:
        """What the request asks for beyond Eliot's answer."""
        return Options()

    def run(self, req: falcon.Request) -> tuple[list[Job], list[JobAnswer], Any, Stats]:
        try:
            payload, jobs = parse_and_validate(read_body(req, self.max_body_size), self.jobs)
            self.count(jobs)
            stats = Stats()
            results, modules = self.symbolicator.symbolicate(jobs, stats, self.options(payload))
        except InvalidPayload as exc:
            raise refused(exc) from None
        return jobs, results, modules, stats


class SymbolicateV5Resource(SymbolicateBase):
    def options(self, payload: Any) -> Options:
        """v5's opt-in fields beside ``jobs``: ``demangle`` and ``explain``
        (booleans, false when absent)."""
        if not isinstance(payload, dict):
            return Options()
        chosen = {}
        for name in ("demangle", "explain"):
            value = payload.get(name, False)
            if not isinstance(value, bool):
                raise InvalidPayload(f"{name} must be true or false", "invalid_option")
            chosen[name] = value
        return Options(**chosen)

    def jobs(self, payload: Any) -> list[Job]:
        raw_jobs = jobs_of_v5(payload)
        check_limits(raw_jobs, self.limits)
        return [validate_job(i, raw) for i, raw in enumerate(raw_jobs)]

    def count(self, jobs: list[Job]) -> None:
        metrics.histogram("symbolicate.jobs_count", value=len(jobs), tags=["version:v5"])
        for job in jobs:
            metrics.histogram(
                "symbolicate.stacks_count", value=len(job.stacks), tags=["version:v5"]
            )

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        started = time.perf_counter()
        with metrics.timer("symbolicate.api", tags=["version:v5"]):
            jobs, results, modules, stats = self.run(req)
            debug = None
            if req.get_header("Debug"):
                debug = debug_block(jobs, results, modules, stats, started)
            resp.content_type = "application/json"
            resp.text = answer_text(results, debug)
        logger.info(
            "symbolicate/v5: jobs: %d, symbols: %d, time: %.3f",
            len(jobs),
            sum(len(s) for j in jobs for s in j.stacks),
            time.perf_counter() - started,
        )


class SymbolicateV4Resource(SymbolicateBase):
    def jobs(self, payload: Any) -> list[Job]:
        check_limits([payload], self.limits)
        return [validate_job(0, payload)]

    def count(self, jobs: list[Job]) -> None:
        metrics.histogram(
            "symbolicate.stacks_count", value=len(jobs[0].stacks), tags=["version:v4"]
        )

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        with metrics.timer("symbolicate.api", tags=["version:v4"]):
            jobs, results, modules, _stats = self.run(req)
            job, result = jobs[0], results[0]
            stacks = self.symbolicator.v4_stacks(job, modules)
            known = [result.found_modules[module_key(*m)] for m in job.memory_map]
            resp.content_type = "application/json"
            resp.text = json.dumps({"symbolicatedStacks": stacks, "knownModules": known})
