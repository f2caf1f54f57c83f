# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The OpenAPI description is true to the app, and every 4xx answer has the
project's JSON error shape."""

import pytest

from tecken_eliot.app import OPENAPI_SPEC
from tecken_shared.openapi import SPEC_ROUTE, load_spec, spec_mismatches


def test_every_route_is_described_and_every_description_is_a_route(app):
    spec = load_spec(OPENAPI_SPEC)
    undescribed, missing = spec_mismatches(app.app, spec)
    assert undescribed == []
    assert missing == []
    assert app.get(SPEC_ROUTE).json["paths"].keys() == spec["paths"].keys()


@pytest.mark.parametrize(
    "method,path,body,status",
    [
        ("POST", "/symbolicate/v5", b"{", 400),
        ("POST", "/symbolicate/v4", b"[]", 400),
        ("GET", "/no/such/path", None, 404),
        ("PUT", "/symbolicate/v5", b"{}", 405),
        ("GET", "/symbolicate/v5", None, 405),
    ],
)
def test_every_4xx_is_json_with_an_error(app, method, path, body, status):
    resp = app.request(path, method=method, body=body, expect_errors=True)
    assert resp.status_int == status
    assert resp.content_type == "application/json"
    assert isinstance(resp.json["error"], str) and resp.json["error"]
