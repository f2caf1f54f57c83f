# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The web app's middleware: open CORS, and a page-view counter."""

from __future__ import annotations

import falcon
import markus

metrics = markus.get_metrics("eliot")

CORS_EXPOSE_HEADERS = [
    "accept",
    "accept-encoding",
    "authorization",
    "content-type",
    "dnt",
    "origin",
    "user-agent",
    "x-csrftoken",
    "x-requested-with",
]


class PageviewMiddleware:
    """Counts requests to known routes (``eliot.pageview``)."""

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: object, params: dict
    ) -> None:
        if resource is not None:
            metrics.incr("pageview", tags=[f"path:{req.path}", f"method:{req.method.lower()}"])


def middleware() -> list[object]:
    """The web app's middleware, in order."""
    return [
        falcon.CORSMiddleware(allow_origins="*", expose_headers=CORS_EXPOSE_HEADERS),
        PageviewMiddleware(),
    ]
