# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""``GET /``: a short page saying what this service is and how to call it."""

from __future__ import annotations

import falcon

INDEX_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>Tecken eliot: symbolication</title></head>
<body>
<h1>Tecken eliot</h1>
<p>Symbolication API: <code>POST /symbolicate/v5</code> with
<code>{"jobs": [{"memoryMap": [["xul.pdb", "DEBUGID"]], "stacks": [[[0, 11723767]]]}]}</code>.
Add a <code>Debug: true</code> header for timings.</p>
<p>Deprecated: <code>POST /symbolicate/v4</code>.</p>
</body></html>
"""


class IndexResource:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = "text/html; charset=utf-8"
        resp.text = INDEX_HTML
