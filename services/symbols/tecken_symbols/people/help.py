# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The Help page: getting permission and a token, uploading from a build
system (the CLI and curl), downloading, symbolicating."""

from __future__ import annotations

import falcon

from tecken_symbols.people.html import esc
from tecken_symbols.people.pages import Pages


class HelpPage:
    def __init__(self, p: Pages, eliot_url: str) -> None:
        self.p = p
        self.eliot_url = eliot_url.rstrip("/")

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        base = esc(self.p.ctx.public_url)
        eliot = esc(self.eliot_url)
        body = f"""
<h3 id="permission">Getting permission</h3>
<p>Log in once (with single sign-on or an invitation link); you start with no permissions.
Ask a superuser to add you to the <em>Uploaders</em> group (or grant upload permission)
on the Users page.</p>
<h3 id="token">Getting an API token</h3>
<p>On <a href="/tokens">API tokens</a>, tick <em>Upload Symbols Files</em> (or <em>Upload Try
Symbols Files</em> for try builds), choose an expiry and create the token. The key is shown once:
keep it in your build system's secret store.</p>
<h3 id="upload">Uploading from a build system</h3>
<p>With the command-line client (it zips a directory and retries):</p>
<pre><code>TECKEN_AUTH_TOKEN=&lt;key&gt; tecken-upload-symbols --url {base} path/to/symbols/</code></pre>
<p>With curl, a zip of <code>debug_file/debug_id/file.sym</code> paths:</p>
<pre><code>curl --fail -X POST -H "Auth-Token: &lt;key&gt;" -F symbols.zip=@symbols.zip {base}/upload/</code></pre>
<p>Uploads then appear on <a href="/ui/#/uploads">Uploads</a>.</p>
<h3 id="download">Downloading</h3>
<p>No login is needed: <code>GET {base}/&lt;debug_file&gt;/&lt;debug_id&gt;/&lt;file.sym&gt;</code>
answers with a redirect to the file, or 404. Debuggers take <code>{base}/</code> as a symbol
server URL. What was asked for and not found is on <a href="/ui/#/missing">Missing symbols</a>.</p>
<h3 id="symbolicate">Symbolicating</h3>
<p>Post a memory map and stacks to eliot:</p>
<pre><code>curl -X POST -H 'Content-Type: application/json' {eliot}/symbolicate/v5 \\
  -d '{{"jobs": [{{"memoryMap": [["xul.pdb", "44E4EC8C2F41492B9369D6B9A059577C2"]],
        "stacks": [[[0, 11723767]]]}}]}}'</code></pre>
"""
        self.p.render(req, resp, "Help", body)
