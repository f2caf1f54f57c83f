# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The throttler's Mozilla rules, sampling, rule-set loading; crash ids."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from tecken_collector import throttler as t
from tecken_collector.crashid import (
    create_crash_id,
    date_from_crash_id,
    date_string_from_crash_id,
    is_valid_crash_id,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def throttle(crash, rng=0.5, **kwargs):
    return t.Throttler(rng=lambda: rng, now=lambda: NOW, **kwargs).throttle(crash)


FF = {"ProductName": "Firefox"}


@pytest.mark.parametrize(
    "crash,expected",
    [
        ({**FF, "BuildID": "20200101000000"}, (t.REJECT, "has_old_buildid", None)),
        (
            {**FF, "BuildID": "20991301000000", "ReleaseChannel": "nightly"},
            (t.ACCEPT, "is_nightly", None),
        ),
        ({**FF, "HangID": "x"}, (t.REJECT, "has_hangid_and_browser", None)),
        ({**FF, "HangID": "x", "ProcessType": "gpu"}, (t.ACCEPT, "is_background", None)),
        (
            {**FF, "SubmittedFromInfobar": "true", "Version": "55.0", "BuildID": "20170101000000"},
            (t.REJECT, "has_old_buildid", None),
        ),
        ({"ProductName": "B2G"}, (t.FAKEACCEPT, "b2g", None)),
        ({"ProductName": "Nope"}, (t.REJECT, "unsupported_product", None)),
        ({}, (t.REJECT, "unsupported_product", None)),
        (
            {"ProductName": "Fenix", "Android_PackageName": "com.evil"},
            (t.REJECT, "unsupported_packagename", None),
        ),
        (
            {"ProductName": "Fenix", "Android_PackageName": "org.mozilla.fenix"},
            (t.ACCEPT, "accept_everything", None),
        ),
        (
            {**FF, "Throttleable": "0", "ReleaseChannel": "release"},
            (t.ACCEPT, "throttleable_0", None),
        ),
        ({**FF, "Comments": "", "ReleaseChannel": "release"}, (t.ACCEPT, "has_comments", None)),
        ({**FF, "PHCKind": "x", "ReleaseChannel": "release"}, (t.ACCEPT, "has_phc", None)),
        (
            {**FF, "ProcessType": "rdd", "ReleaseChannel": "release"},
            (t.ACCEPT, "is_background", None),
        ),
        ({**FF, "ReleaseChannel": "beta"}, (t.ACCEPT, "is_alpha_beta_esr", None)),
        ({**FF, "ReleaseChannel": "esr"}, (t.ACCEPT, "is_alpha_beta_esr", None)),
        ({**FF, "ReleaseChannel": "nightly-cck"}, (t.ACCEPT, "is_nightly", None)),
        ({"ProductName": "Thunderbird"}, (t.ACCEPT, "accept_everything", None)),
    ],
)
def test_mozilla_rules(crash, expected):
    assert throttle(crash) == expected


def test_infobar_rule():
    crash = {
        **FF,
        "SubmittedFromInfobar": "true",
        "Version": "55.0",
        "BuildID": "20170101000000",
    }
    now = datetime(2018, 1, 1, tzinfo=UTC)  # buildid not old yet
    result = t.Throttler(now=lambda: now).throttle(crash)
    assert result == (t.REJECT, "infobar_is_true", None)
    crash["Version"] = "60.0"
    crash["ReleaseChannel"] = "nightly"
    assert t.Throttler(now=lambda: now).throttle(crash)[1] == "is_nightly"


def test_firefox_desktop_release_sampling():
    crash = {**FF, "ReleaseChannel": "release"}
    assert throttle(crash, rng=0.05) == (t.ACCEPT, "is_firefox_desktop", 10)
    assert throttle(crash, rng=0.5) == (t.REJECT, "is_firefox_desktop", 10)


def test_shutdownkill_continue_or_reject():
    crash = {**FF, "ipc_channel_error": "ShutDownKill", "ReleaseChannel": "nightly"}
    assert throttle(crash, rng=0.05) == (t.ACCEPT, "is_nightly", None)
    assert throttle(crash, rng=0.5) == (t.REJECT, "is_shutdownkill", 10)


def test_esr_unsupported_windows():
    env = {"system": {"os": {"name": "Windows_NT", "windowsBuildNumber": 7601}}}
    crash = {**FF, "ReleaseChannel": "esr", "TelemetryEnvironment": json.dumps(env)}
    assert throttle(crash, rng=0.5) == (t.REJECT, "is_firefox_esr_unsupported_windows", 25)
    assert throttle(crash, rng=0.1) == (t.ACCEPT, "is_alpha_beta_esr", None)
    env["system"]["os"]["windowsBuildNumber"] = 19045
    crash["TelemetryEnvironment"] = env  # JSON annotations may carry a dict
    assert throttle(crash, rng=0.5) == (t.ACCEPT, "is_alpha_beta_esr", None)
    crash["TelemetryEnvironment"] = "{broken"
    assert throttle(crash, rng=0.5) == (t.ACCEPT, "is_alpha_beta_esr", None)


@pytest.mark.parametrize(
    "crash",
    [
        # str.isdigit() is true for these, int() refuses them
        {**FF, "SubmittedFromInfobar": "true", "Version": "\u00b2"},
        {**FF, "SubmittedFromInfobar": "true", "Version": "55.0", "BuildID": "\u0661" * 8},
        {**FF, "BuildID": "20" + "\u0661" * 12},
        {
            **FF,
            "ReleaseChannel": "esr",
            "TelemetryEnvironment": '{"system": {"os": {"name": "Windows_NT", '
            '"windowsBuildNumber": Infinity}}}',
        },
        {**FF, "ReleaseChannel": "esr", "TelemetryEnvironment": "[" * 100_000},
        {**FF, "ReleaseChannel": "esr", "TelemetryEnvironment": "[" * 5000 + "]" * 5000},
    ],
)
def test_odd_values_do_not_raise(crash):
    """Annotations come from anyone: a rule's condition never raises on them."""
    result, _rule, _percent = throttle(crash)
    assert result in (t.ACCEPT, t.REJECT)


def test_non_string_values_are_str_ed():
    assert throttle({**FF, "Throttleable": 0, "ReleaseChannel": "release"})[1] == "throttleable_0"


def test_no_match():
    assert t.Throttler(rules=[]).throttle({"a": "b"}) == (t.REJECT, "NO_MATCH", 0)


def test_all_products_and_custom_packagenames():
    assert throttle({"ProductName": "Other"}, products=[])[1] == "accept_everything"
    names = t.parse_packagenames("Focus=org.x;Other=a,b")
    assert names == {"Focus": ["org.x"], "Other": ["a", "b"]}
    crash = {"ProductName": "Focus", "Android_PackageName": "org.mozilla.focus"}
    assert throttle(crash, packagenames=names)[1] == "unsupported_packagename"


def test_load_rules():
    assert t.load_rules("mozilla") is t.MOZILLA_RULES
    assert t.load_rules("accept_all") is t.ACCEPT_ALL
    assert t.load_rules("tecken_collector.throttler:ACCEPT_ALL") == t.ACCEPT_ALL
    assert t.load_rules("tecken_collector.throttler.MOZILLA_RULES") == t.MOZILLA_RULES
    with pytest.raises(ValueError):
        t.load_rules("tecken_collector.throttler:RESULT_NAMES")
    with pytest.raises(ValueError):
        t.load_rules("nonsense")
    assert t.parse_products("all") == []
    assert t.parse_products("A, B") == ["A", "B"]
    assert "Firefox" in t.parse_products("mozilla")


def test_rule_names_validated():
    with pytest.raises(ValueError):
        t.Rule("Bad-Name", "*", t.always, t.ACCEPT)


def test_crash_ids():
    when = datetime(2016, 9, 18, 23, 59, tzinfo=UTC)
    crash_id = create_crash_id(0, when)
    assert crash_id.endswith("0160918")
    assert is_valid_crash_id(crash_id)
    assert date_string_from_crash_id(crash_id) == "20160918"
    assert date_from_crash_id(crash_id) == datetime(2016, 9, 18, tzinfo=UTC)
    assert create_crash_id(1, when)[-7] == "1"
    assert is_valid_crash_id("de1bb258-cbbf-4589-a673-34f800160918")
    assert not is_valid_crash_id("de1bb258-cbbf-4589-a673-34f802160918")
    assert is_valid_crash_id("de1bb258-cbbf-4589-a673-34f802160918", strict=False)
    assert not is_valid_crash_id("de1bb258-cbbf-4589-a673-34f800161318")  # month 13
    assert not is_valid_crash_id("DE1BB258-cbbf-4589-a673-34f800160918")
    assert not is_valid_crash_id("../../../etc/passwd")
    with pytest.raises(ValueError):
        create_crash_id(2)
