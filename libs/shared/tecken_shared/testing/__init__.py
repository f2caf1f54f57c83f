# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Test helpers: real PostgreSQL, Redis and S3 (moto server), HTTP servers on
loopback. Loaded as a pytest plugin (``-p tecken_shared.testing.plugin``)."""

from pathlib import Path

# Real fixtures (Breakpad symbol files, upload zips, minidumps) kept in the
# repository so that tests need nothing outside the checkout.
FIXTURES_DIR = Path(__file__).resolve().parents[2] / "tests" / "fixtures"
# The generator of large realistic Breakpad .sym files (tests and benchmarks).
SYNTHETIC_SYM_TOOL = Path(__file__).resolve().parent / "make_synthetic_sym.py"
