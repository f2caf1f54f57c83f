# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Black-box tests against a running environment (local, stage, prod).

Point them at one with SYMBOLS_URL, ELIOT_URL and COLLECTOR_URL (defaults:
the ``make run`` ports on localhost). Tests that write (uploads, crash
submissions) need SYSTEMTEST_ALLOW_WRITES=1 and, for symbols,
SYSTEMTEST_SYMBOLS_TOKEN (an API token with upload permission)."""

import os

import pytest


@pytest.fixture(scope="session")
def symbols_url() -> str:
    return os.environ.get("SYMBOLS_URL", "http://localhost:3000").rstrip("/")


@pytest.fixture(scope="session")
def eliot_url() -> str:
    return os.environ.get("ELIOT_URL", "http://localhost:8050").rstrip("/")


@pytest.fixture(scope="session")
def collector_url() -> str:
    return os.environ.get("COLLECTOR_URL", "http://localhost:8000").rstrip("/")


@pytest.fixture(scope="session")
def allow_writes() -> bool:
    return os.environ.get("SYSTEMTEST_ALLOW_WRITES", "") in ("1", "true", "yes")
