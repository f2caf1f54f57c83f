# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Each service's OpenAPI 3.1 description: a YAML file in the service's
package, served as JSON at ``GET /__openapi__.json``, and kept true by
:func:`spec_mismatches` (every route described, every described route there).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import falcon
import yaml

SPEC_ROUTE = "/__openapi__.json"
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def load_spec(path: str | Path) -> dict[str, Any]:
    """The OpenAPI document in the YAML file at ``path``."""
    spec = yaml.safe_load(Path(path).read_text())
    if not isinstance(spec, dict) or not str(spec.get("openapi", "")).startswith("3.1"):
        raise ValueError(f"{path} is not an OpenAPI 3.1 document")
    return spec


class OpenAPIResource:
    """``GET /__openapi__.json``: the service's OpenAPI description."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.spec


def add_openapi_route(app: falcon.App, spec_path: str | Path) -> dict[str, Any]:
    """Serve the spec at :data:`SPEC_ROUTE`; returns it."""
    spec = load_spec(spec_path)
    app.add_route(SPEC_ROUTE, OpenAPIResource(spec))
    return spec


def app_routes(app: falcon.App) -> set[tuple[str, str]]:
    """``(METHOD, uri_template)`` of every responder the app's router holds."""
    found: set[tuple[str, str]] = set()

    def walk(nodes: list[Any]) -> None:
        for node in nodes:
            if node.resource is not None:
                for method in METHODS:
                    if hasattr(node.resource, f"on_{method.lower()}"):
                        found.add((method, node.uri_template))
            walk(node.children)

    walk(app._router._roots)  # falcon's CompiledRouter keeps its tree here
    return found


def spec_routes(spec: dict[str, Any]) -> set[tuple[str, str]]:
    """``(METHOD, path)`` of every operation the spec describes."""
    return {
        (method.upper(), path)
        for path, item in (spec.get("paths") or {}).items()
        for method in item
        if method.upper() in METHODS
    }


def _shape(template: str) -> str:
    """A path with its parameters' names left out (``/a/{}``)."""
    return re.sub(r"\{[^}]*\}", "{}", template)


def spec_mismatches(app: falcon.App, spec: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(routes the spec does not describe, described routes the app lacks),
    comparing paths by shape (parameter names may differ)."""

    def shapes(routes: set[tuple[str, str]]) -> set[tuple[str, str]]:
        return {(m, _shape(p)) for m, p in routes}

    in_app, in_spec = shapes(app_routes(app)), shapes(spec_routes(spec))
    undescribed = sorted(f"{m} {p}" for m, p in in_app - in_spec)
    missing = sorted(f"{m} {p}" for m, p in in_spec - in_app)
    return undescribed, missing
