# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The benchmark baseline: a bare Falcon app that answers every three-part
path with a fixed 302, run under the same gunicorn settings as the service."""

import falcon


class FixedRedirect:
    def on_get(self, req: falcon.Request, resp: falcon.Response, a: str, b: str, c: str) -> None:
        resp.status = falcon.HTTP_302
        resp.set_header("Location", "http://127.0.0.1/files/regular/a/B/c.sym")


application = falcon.App()
application.add_route("/{a}/{b}/{c}", FixedRedirect())
