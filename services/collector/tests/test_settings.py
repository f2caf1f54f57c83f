# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The shape of the collector's settings: each option declared once, settings
records that match their option classes field for field, and the copy of a
private Falcon constant."""

from __future__ import annotations

from dataclasses import fields

import pytest
from everett.manager import get_config_for_class
from falcon.media.multipart import _ALLOWED_CONTENT_HEADERS

from tecken_collector.crashmover import MoverSettings
from tecken_collector.framing import ALLOWED_PART_HEADERS
from tecken_collector.payload import PayloadLimits
from tecken_collector.settings import (
    CrashMoverConfig,
    LimitsConfig,
    option_default,
)
from tecken_shared.config import build_config_manager


@pytest.mark.parametrize(
    ("record", "component"), [(PayloadLimits, LimitsConfig), (MoverSettings, CrashMoverConfig)]
)
def test_records_match_their_options(record, component):
    assert {f.name for f in fields(record)} == set(get_config_for_class(component))


def test_payload_limits_defaults_are_the_options_defaults(tmp_path):
    assert PayloadLimits() == PayloadLimits.from_config(
        build_config_manager({}, str(tmp_path / "none.env"))
    )
    assert PayloadLimits().max_request_size == 25 * 1024 * 1024
    assert PayloadLimits().spool_memory_total == 8 * 1024 * 1024
    assert option_default(LimitsConfig, "read_timeout") == 60


def test_limits_read_from_the_environment(tmp_path):
    manager = build_config_manager(
        {"COLLECTOR_READ_TIMEOUT": "2.5", "COLLECTOR_SPOOL_MEMORY_TOTAL": "3MiB"},
        str(tmp_path / "none.env"),
    )
    limits = PayloadLimits.from_config(manager)
    assert limits.read_timeout == 2.5
    assert limits.spool_memory_total == 3 * 1024 * 1024


def test_part_headers_are_falcons():
    """framing.py keeps the same part headers as Falcon's streaming parser."""
    assert ALLOWED_PART_HEADERS == _ALLOWED_CONTENT_HEADERS
