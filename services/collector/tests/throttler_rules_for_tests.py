# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""A rule set loaded by dotted path in the tests."""

from tecken_collector.throttler import DEFER, Rule, always

DEFER_ALL = [Rule("defer_everything", "*", always, DEFER)]
