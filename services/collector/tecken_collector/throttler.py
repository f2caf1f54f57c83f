# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The throttler: an ordered list of rules decides whether a crash is accepted
(saved and processed), deferred (saved only), rejected, or fake-accepted
(answered with a crash id but not stored).

A rule has a name (``[a-z0-9_]+``), a key (an annotation name, or ``*`` for the
whole crash), a condition and a result. A rule with a key applies only when the
annotation is present; its condition gets ``str(value)``. The result is final
(ACCEPT, DEFER, REJECT, FAKEACCEPT), CONTINUE (fall through to later rules) or a
sampling tuple ``(percent, result_if_sampled, result_otherwise)``. The first
final result wins; no match means REJECT by the rule ``NO_MATCH``.

Rule sets are chosen by configuration: ``mozilla`` (the default, Mozilla's
production rules), ``accept_all``, or ``package.module:NAME`` naming a list of
:class:`Rule` objects."""

from __future__ import annotations

import importlib
import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

ACCEPT = 0
DEFER = 1
REJECT = 2
FAKEACCEPT = 3
CONTINUE = 4

RESULT_NAMES = {
    ACCEPT: "ACCEPT",
    DEFER: "DEFER",
    REJECT: "REJECT",
    FAKEACCEPT: "FAKEACCEPT",
    CONTINUE: "CONTINUE",
}

RULE_NAME_RE = re.compile(r"^[a-z0-9_]+$")

MOZILLA_PRODUCTS = [
    "Fenix",
    "Firefox",
    "Firefox Enterprise",
    "Focus",
    "MozillaVPN",
    "ReferenceBrowser",
    "Thunderbird",
]

MOZILLA_PRODUCT_PACKAGENAMES = {
    "Fenix": ["org.mozilla.firefox", "org.mozilla.firefox_beta", "org.mozilla.fenix"],
    "Focus": [
        "org.mozilla.focus",
        "org.mozilla.focus.beta",
        "org.mozilla.focus.nightly",
        "org.mozilla.klar",
    ],
    "ReferenceBrowser": ["org.mozilla.reference.browser"],
}

Result = int | tuple[float, int, int]


@dataclass(frozen=True)
class Rule:
    name: str
    key: str
    condition: Callable[[Throttler, Any], bool]
    result: Result

    def __post_init__(self) -> None:
        if not RULE_NAME_RE.match(self.name):
            raise ValueError(f"throttle rule name {self.name!r} must match [a-z0-9_]+")


# --- conditions of the Mozilla rule set -------------------------------------------

BUILDID_RE = re.compile(r"^20[0-9]{12}$")
OLD_BUILDID_DAYS = 730
# ASCII digits only: str.isdigit() is also true for "²" or "١", which int() refuses.
_DIGITS_RE = re.compile(r"[0-9]+")


def _ascii_int(value: str) -> int | None:
    return int(value) if _DIGITS_RE.fullmatch(value) else None


def _buildid_date(value: str) -> datetime | None:
    try:
        return datetime.strptime(value[:8], "%Y%m%d").replace(tzinfo=UTC)
    except ValueError:
        return None


def has_old_buildid(throttler: Throttler, value: str) -> bool:
    if not BUILDID_RE.match(value):
        return False
    date = _buildid_date(value)
    return date is not None and date < throttler.now() - timedelta(days=OLD_BUILDID_DAYS)


def has_hangid_and_browser(throttler: Throttler, crash: dict[str, Any]) -> bool:
    return "HangID" in crash and str(crash.get("ProcessType", "browser")) == "browser"


def infobar_is_true(throttler: Throttler, crash: dict[str, Any]) -> bool:
    if str(crash.get("ProductName", "")) != "Firefox":
        return False
    if str(crash.get("SubmittedFromInfobar", "")) != "true":
        return False
    major = _ascii_int(str(crash.get("Version", "")).split(".", 1)[0])
    if major is None or not 52 <= major <= 59:
        return False
    buildid = _ascii_int(str(crash.get("BuildID", ""))[:8])
    return buildid is not None and buildid < 20171226


def is_b2g(throttler: Throttler, crash: dict[str, Any]) -> bool:
    return str(crash.get("ProductName", "")).lower() == "b2g" and "B2G" not in throttler.products


def unsupported_product(throttler: Throttler, crash: dict[str, Any]) -> bool:
    return bool(throttler.products) and str(crash.get("ProductName", "")) not in throttler.products


def unsupported_packagename(throttler: Throttler, crash: dict[str, Any]) -> bool:
    names = throttler.packagenames.get(str(crash.get("ProductName", "")))
    if not names:
        return False
    return str(crash.get("Android_PackageName", "")) not in names


def always(throttler: Throttler, value: Any) -> bool:
    return True


def _telemetry_os(crash: dict[str, Any]) -> dict[str, Any]:
    env = crash.get("TelemetryEnvironment")
    if isinstance(env, str):
        try:
            env = json.loads(env)
        except (ValueError, RecursionError):
            return {}
    if not isinstance(env, dict):
        return {}
    system = env.get("system")
    os_info = system.get("os") if isinstance(system, dict) else None
    return os_info if isinstance(os_info, dict) else {}


def is_firefox_esr_unsupported_windows(throttler: Throttler, crash: dict[str, Any]) -> bool:
    if str(crash.get("ProductName", "")) != "Firefox":
        return False
    if str(crash.get("ReleaseChannel", "")) != "esr":
        return False
    os_info = _telemetry_os(crash)
    if os_info.get("name") != "Windows_NT":
        return False
    try:
        return int(os_info.get("windowsBuildNumber")) <= 9600
    except (TypeError, ValueError, OverflowError):  # OverflowError: Infinity
        return False


def is_firefox_desktop_release(throttler: Throttler, crash: dict[str, Any]) -> bool:
    return (
        str(crash.get("ProductName", "")) == "Firefox"
        and str(crash.get("ReleaseChannel", "")) == "release"
    )


MOZILLA_RULES: list[Rule] = [
    Rule("has_old_buildid", "BuildID", has_old_buildid, REJECT),
    Rule("has_hangid_and_browser", "*", has_hangid_and_browser, REJECT),
    Rule("infobar_is_true", "*", infobar_is_true, REJECT),
    Rule("b2g", "*", is_b2g, FAKEACCEPT),
    Rule("unsupported_product", "*", unsupported_product, REJECT),
    Rule("unsupported_packagename", "*", unsupported_packagename, REJECT),
    Rule("throttleable_0", "Throttleable", lambda t, v: v == "0", ACCEPT),
    Rule("has_comments", "Comments", always, ACCEPT),
    Rule("has_phc", "PHCKind", always, ACCEPT),
    Rule(
        "is_background",
        "ProcessType",
        lambda t, v: v in ("gpu", "plugin", "rdd", "socket", "utility"),
        ACCEPT,
    ),
    Rule(
        "is_shutdownkill",
        "ipc_channel_error",
        lambda t, v: v == "ShutDownKill",
        (10, CONTINUE, REJECT),
    ),
    Rule(
        "is_firefox_esr_unsupported_windows",
        "*",
        is_firefox_esr_unsupported_windows,
        (25, CONTINUE, REJECT),
    ),
    Rule(
        "is_alpha_beta_esr", "ReleaseChannel", lambda t, v: v in ("aurora", "beta", "esr"), ACCEPT
    ),
    Rule("is_nightly", "ReleaseChannel", lambda t, v: v.startswith("nightly"), ACCEPT),
    Rule("is_firefox_desktop", "*", is_firefox_desktop_release, (10, ACCEPT, REJECT)),
    Rule("accept_everything", "*", always, ACCEPT),
]

ACCEPT_ALL: list[Rule] = [Rule("accept_everything", "*", always, ACCEPT)]

RULE_SETS: dict[str, list[Rule]] = {"mozilla": MOZILLA_RULES, "accept_all": ACCEPT_ALL}


def load_rules(spec: str) -> list[Rule]:
    """A rule set by name (``mozilla``, ``accept_all``) or ``module:NAME``
    (``module.NAME`` also works)."""
    spec = spec.strip()
    if spec in RULE_SETS:
        return RULE_SETS[spec]
    module_name, sep, attr = spec.partition(":")
    if not sep:
        module_name, _, attr = spec.rpartition(".")
    if not module_name or not attr:
        raise ValueError(
            f"throttler rules {spec!r}: use one of {sorted(RULE_SETS)} or 'package.module:NAME'"
        )
    rules = getattr(importlib.import_module(module_name), attr)
    if not isinstance(rules, list | tuple) or not all(isinstance(r, Rule) for r in rules):
        raise ValueError(f"throttler rules {spec!r} is not a list of Rule objects")
    return list(rules)


def parse_products(value: str) -> list[str]:
    """Comma-separated product names; ``mozilla`` for Mozilla's list; empty or
    ``all`` for no product filtering."""
    value = value.strip()
    if value == "mozilla":
        return list(MOZILLA_PRODUCTS)
    if value in ("", "all"):
        return []
    return [p.strip() for p in value.split(",") if p.strip()]


def parse_packagenames(value: str) -> dict[str, list[str]]:
    """``Product=pkg,pkg;Product2=pkg``; ``mozilla`` for Mozilla's list; empty
    for none."""
    value = value.strip()
    if value == "mozilla":
        return {k: list(v) for k, v in MOZILLA_PRODUCT_PACKAGENAMES.items()}
    result: dict[str, list[str]] = {}
    for entry in filter(None, (e.strip() for e in value.split(";"))):
        product, sep, names = entry.partition("=")
        if not sep or not product.strip():
            raise ValueError(f"packagenames entry {entry!r} must look like Product=pkg1,pkg2")
        result[product.strip()] = [n.strip() for n in names.split(",") if n.strip()]
    return result


class Throttler:
    """Decides what happens to a crash: ``throttle(crash)`` returns
    ``(result, rule_name, percent)``. Without arguments it uses Mozilla's
    rules, products and package names; the service builds it from
    :class:`~tecken_collector.settings.ThrottlerConfig`
    (:func:`~tecken_collector.settings.build_throttler`)."""

    def __init__(
        self,
        rules: Sequence[Rule] | None = None,
        products: Sequence[str] | None = None,
        packagenames: dict[str, list[str]] | None = None,
        *,
        rng: Callable[[], float] = random.random,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.rules = list(MOZILLA_RULES if rules is None else rules)
        self.products = list(MOZILLA_PRODUCTS if products is None else products)
        self.packagenames = (
            {k: list(v) for k, v in MOZILLA_PRODUCT_PACKAGENAMES.items()}
            if packagenames is None
            else packagenames
        )
        self.rng = rng
        self.now = now or (lambda: datetime.now(UTC))

    def _apply(self, rule: Rule, crash: dict[str, Any]) -> bool:
        if rule.key == "*":
            return bool(rule.condition(self, crash))
        if rule.key not in crash:
            return False
        return bool(rule.condition(self, str(crash[rule.key])))

    def throttle(self, crash: dict[str, Any]) -> tuple[int, str, float | None]:
        for rule in self.rules:
            if not self._apply(rule, crash):
                continue
            result = rule.result
            percent: float | None = None
            if isinstance(result, tuple):
                percent, sampled, otherwise = result
                result = sampled if self.rng() * 100 <= percent else otherwise
            if result == CONTINUE:
                continue
            return int(result), rule.name, percent
        return REJECT, "NO_MATCH", 0
