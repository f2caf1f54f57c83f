# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

from __future__ import annotations

from pathlib import Path

import falcon
import pytest
import webtest

from tecken_shared.openapi import SPEC_ROUTE, add_openapi_route, load_spec, spec_mismatches


class Thing:
    def on_get(self, req, resp) -> None:
        resp.media = {}

    def on_put(self, req, resp, name) -> None:
        resp.media = {}


SPEC = """
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /things/{thing}:
    put: {responses: {"200": {description: ok}}}
  /gone:
    get: {responses: {"200": {description: ok}}}
"""


def test_mismatches_and_serving(tmp_path: Path) -> None:
    path = tmp_path / "openapi.yaml"
    path.write_text(SPEC)
    app = falcon.App()
    app.add_route("/things/{name}", Thing())
    spec = add_openapi_route(app, path)
    assert webtest.TestApp(app).get(SPEC_ROUTE).json["openapi"] == "3.1.0"
    undescribed, missing = spec_mismatches(app, spec)
    assert undescribed == ["GET /__openapi__.json", "GET /things/{}"]
    assert missing == ["GET /gone"]


def test_only_openapi_31(tmp_path: Path) -> None:
    path = tmp_path / "openapi.yaml"
    path.write_text("swagger: '2.0'\n")
    with pytest.raises(ValueError):
        load_spec(path)
