# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Schemathesis against a running service's ``/__openapi__.json``: every
operation gets ``examples`` generated requests (valid ones, then invalid
ones), each checked for "no 5xx", "status code conforms" and "response
conforms to schema". Seeded and bounded so that it fits CI. Used by
``libs/shared/tests/test_schemathesis.py``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

#: The seed of every run (same requests every time).
SEED = 20261201
#: Examples per operation and generation mode; ``TECKEN_FUZZ_EXAMPLES`` changes it.
EXAMPLES = int(os.environ.get("TECKEN_FUZZ_EXAMPLES", "40"))
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
#: Operations left out: /__broken__ answers 500 on purpose.
SKIPPED = {("GET", "/__broken__")}
#: Operations whose protocol asks for a 5xx (checked for conformance, not for
#: "no 5xx"): debuginfod's section query answers 503 so clients fall back.
SERVER_ERROR_BY_PROTOCOL = {
    ("GET", "/buildid/{build_id}/section/{name}"),
    ("HEAD", "/buildid/{build_id}/section/{name}"),
}


@dataclass
class FuzzReport:
    requests: int = 0
    failures: list[str] = field(default_factory=list)


def fuzz_service(base_url: str, examples: int = EXAMPLES) -> FuzzReport:
    """Run schemathesis against the service at ``base_url``."""
    schema = schemathesis.openapi.from_url(f"{base_url}/__openapi__.json")
    report = FuzzReport()
    for result in schema.get_all_operations():
        operation = result.ok()
        name = (operation.method.upper(), operation.path)
        if name in SKIPPED:
            continue
        checks = CHECKS
        if name in SERVER_ERROR_BY_PROTOCOL:
            checks = [c for c in CHECKS if c is not not_a_server_error]
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _run(operation, mode, checks, base_url, examples, report)
    return report


def _run(operation, mode, checks, base_url: str, examples: int, report: FuzzReport) -> None:
    @seed(SEED)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=False,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def one(case) -> None:
        report.requests += 1
        try:
            case.call_and_validate(base_url=base_url, checks=checks, timeout=30)
        except (Exception, BaseExceptionGroup) as exc:  # a failed check: collect it, go on
            report.failures.append(
                f"{operation.method.upper()} {operation.path} ({mode.value}): "
                f"{type(exc).__name__}: {str(exc)[:1500]}\n  {case.as_curl_command()}"
            )

    try:
        one()
    except Unsatisfiable:
        # Nothing to make invalid (an operation without parameters or body).
        if mode is not GenerationMode.NEGATIVE:
            raise
