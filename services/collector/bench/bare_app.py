# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""A bare Falcon app for the benchmark's HTTP-only baseline: it reads the
whole POST body and answers like the collector, storing nothing."""

import falcon


class Sink:
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        while req.bounded_stream.read(65536):
            pass
        resp.content_type = "text/plain"
        resp.text = "CrashID=bp-00000000-0000-0000-0000-000000261123\n"


application = falcon.App()
application.add_route("/submit", Sink())
