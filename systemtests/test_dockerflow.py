# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

import json
import urllib.request

import pytest


@pytest.mark.parametrize("which", ["symbols_url", "eliot_url", "collector_url"])
@pytest.mark.parametrize("path", ["/__lbheartbeat__", "/__heartbeat__", "/__version__"])
def test_dockerflow(request, which, path):
    base = request.getfixturevalue(which)
    with urllib.request.urlopen(base + path, timeout=10) as resp:
        assert resp.status == 200
        body = resp.read()
    if path != "/__lbheartbeat__":
        assert isinstance(json.loads(body), dict)
