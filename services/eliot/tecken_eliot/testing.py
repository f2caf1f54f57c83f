# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Helpers for tests and the benchmark: the shared symbol fixtures laid out as
a symbol server, and a WSGI symbol server with per-path request counters and
fault injection (serve it with ``tecken_shared.testing.servers.wsgi_server``)."""

from __future__ import annotations

import gzip
import os
import shutil
import threading
import time
from collections import Counter
from pathlib import Path

from tecken_shared.breakpad import symbol_key
from tecken_shared.testing import FIXTURES_DIR

FIXTURES = Path(os.environ.get("ELIOT_TEST_FIXTURES", "") or FIXTURES_DIR / "symbols" / "symbols")

SSLTUNNEL = ("ssltunnel", "8A07C88A3DA44E20A3490D88791183060")
CPPFILT = ("c++filt", "B2E65520F14FB5332E38A5A5189839AD0")
QIPCAP = ("qipcap64.pdb", "293A285ED25871934C4C44205044422E1")
SHOWSSE = ("ShowSSEConfig.pdb", "D57F52D4A2FD56244C4C44205044422E1")
DYLIB = ("libxul_correct_buildid.dylib", "BE555D35C9A93D7FBC23ED48502277E30")
PUBONLY = ("pubonly.pdb", "0123456789ABCDEF0123456789ABCDEF1")
BROKEN = ("broken.pdb", "11111111111111111111111111111111A")
WRONGID = ("wrongid", "22222222222222222222222222222222B")

SOURCES = {
    SSLTUNNEL: "ssltunnel/8A07C88A3DA44E20A3490D88791183060/ssltunnel.sym",
    CPPFILT: "c++filt/B2E65520F14FB5332E38A5A5189839AD0/c++filt.sym",
    QIPCAP: "qipcap64.pdb/293A285ED25871934C4C44205044422E1/qipcap64.sym",
    SHOWSSE: "ShowSSEConfig.exe/6A4B9A365000/ShowSSEConfig.sym",
    DYLIB: "libxul_correct_buildid.dylib/BE555D35C9A93D7FBC23ED48502277E30/"
    "libxul_correct_buildid.dylib.sym",
}

PUBONLY_SYM = """MODULE windows x86_64 0123456789ABCDEF0123456789ABCDEF1 pubonly.pdb
INFO CODE_ID 5F0000001000 pubonly.dll
PUBLIC 1000 0 first_public
PUBLIC 2000 0 second_public
"""


def build_symbol_tree(root: Path) -> Path:
    """The fixtures in the symbol-server layout <name>/<ID>/<sym name>."""
    for (name, did), rel in SOURCES.items():
        dest = root / symbol_key(name, did)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(FIXTURES / rel, dest)
    extra = {
        PUBONLY: PUBONLY_SYM,
        BROKEN: "MODULE windows x86_64 11111111111111111111111111111111A broken.pdb\nFUNC zz\n",
        # A well-formed file whose MODULE id is not the one asked for.
        WRONGID: (FIXTURES / SOURCES[SSLTUNNEL]).read_text(),
    }
    for (name, did), text in extra.items():
        dest = root / symbol_key(name, did)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text)
    return root


class SymbolServer:
    """A WSGI symbol server over a directory. ``hits`` counts GETs per path,
    ``heads`` HEAD requests; ``faults`` maps a path prefix to a status (e.g.
    500) or "slow:<s>"."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.hits: Counter[str] = Counter()
        self.heads: Counter[str] = Counter()
        self.faults: dict[str, str] = {}
        self.delay = 0.0
        self.lock = threading.Lock()
        self.url = ""
        self.inflight = 0
        self.max_inflight = 0
        #: answer 302 to /_storage/<path>, as the symbols service does
        self.redirect = False
        #: serve bodies with Content-Encoding: gzip, as storage does
        self.gzip = False

    def downloads(self, debug_filename: str, debug_id: str) -> int:
        return self.hits["/" + symbol_key(debug_filename, debug_id)]

    def __call__(self, environ, start_response):  # type: ignore[no-untyped-def]
        path = environ.get("PATH_INFO", "")
        head = environ.get("REQUEST_METHOD") == "HEAD"
        with self.lock:
            (self.heads if head else self.hits)[path] += 1
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            body = self._respond(path, start_response)
            return [] if head else body
        finally:
            with self.lock:
                self.inflight -= 1

    def _respond(self, path, start_response):  # type: ignore[no-untyped-def]
        for prefix, fault in self.faults.items():
            if path.startswith(prefix):
                if fault.startswith("slow:"):
                    time.sleep(float(fault[5:]))
                else:
                    start_response(f"{fault} Fault", [("Content-Type", "text/plain")])
                    return [b"injected fault"]
        if self.delay:
            time.sleep(self.delay)
        if path.startswith("/_storage/"):
            path = path[len("/_storage") :]
        elif self.redirect:
            start_response("302 Found", [("Location", f"/_storage{path}")])
            return [b""]
        target = (self.root / path.lstrip("/")).resolve()
        if not str(target).startswith(str(self.root.resolve())) or not target.is_file():
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found"]
        data = target.read_bytes()
        headers = [("Content-Type", "text/plain")]
        if self.gzip:
            data = gzip.compress(data)
            headers.append(("Content-Encoding", "gzip"))
        headers.append(("Content-Length", str(len(data))))
        start_response("200 OK", headers)
        return [data]
