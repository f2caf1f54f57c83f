# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

import pytest


def test_index_and_dockerflow(service):
    app = service.app
    assert "Tecken symbols" in app.get("/").text
    assert app.get("/__lbheartbeat__").status_int == 200
    body = app.get("/__heartbeat__").json
    assert body["status"] == "ok", body
    assert set(body["checks"]) == {"database", "storage_regular", "storage_try"}
    assert app.get("/__version__").json == {}  # no version.json: Dockerflow says {}


def test_unknown_path_is_json_404(fs_service):
    resp = fs_service.app.get("/nope", status=404)
    assert resp.json == {"error": "Not Found", "path": "/nope"}


def test_openapi_describes_every_route(make_service):
    """Every route is described in tecken_symbols/openapi.yaml and every
    described route exists (default settings: filesystem storages served
    under /files/regular and /files/try)."""
    from tecken_shared.openapi import SPEC_ROUTE, spec_mismatches

    svc = make_service()
    spec = svc.app.get(SPEC_ROUTE).json
    assert spec["openapi"].startswith("3.1")
    undescribed, missing = spec_mismatches(svc.app.app, spec)
    assert undescribed == [] and missing == []


def test_openapi_document_is_valid():
    from openapi_spec_validator import validate

    from tecken_shared.openapi import load_spec
    from tecken_symbols.app import OPENAPI_SPEC

    validate(load_spec(OPENAPI_SPEC))


@pytest.mark.parametrize(
    "method,path,kw",
    [
        ("get", "/nothing/here", {}),
        ("post", "/__heartbeat__", {}),
        ("get", "/api/uploads/", {}),
        ("get", "/missingsymbols/?page=x", {}),
        ("post", "/upload/", {"headers": {"Auth-Token": "x" * 32}}),
        ("get", "/files/regular/nope/AB/nope.sym", {}),
    ],
)
def test_every_json_4xx_has_an_error_message(make_service, method, path, kw):
    svc = make_service()
    resp = getattr(svc.app, method)(path, status="*", **kw)
    assert 400 <= resp.status_int < 500
    assert isinstance(resp.json["error"], str) and resp.json["error"]


def test_unhandled_exceptions_are_logged_through_logging(make_service):
    """RT-25: a JSON 500 and a log record of the service's logger (a JSON line
    with SYMBOLS_LOG_FORMAT=json), not Falcon's own text logger."""
    import io
    import logging

    svc = make_service()
    seen = io.StringIO()
    handler = logging.StreamHandler(seen)
    logger = logging.getLogger("tecken_symbols.app")
    logger.addHandler(handler)
    errors = io.StringIO()
    try:
        resp = svc.app.get("/__broken__", status=500, extra_environ={"wsgi.errors": errors})
    finally:
        logger.removeHandler(handler)
    assert resp.content_type == "application/json" and resp.json["error"]
    assert "intentional exception from /__broken__" in seen.getvalue()
    assert "Traceback" not in errors.getvalue()
