# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""``GET|HEAD /ui/`` and ``/ui/{name}``: the web UI's files.

Only the regular files of ``static/`` found at start-up, with a known
extension, are served (read once into memory); any other name is a 404, so
no request can reach outside the directory. ``index.html`` references the
assets with ``?v=<content hash>``: the page itself is revalidated on every
load (``no-cache`` + ``ETag``), an asset asked for with its current hash is
cached for a year, any other asset request for five minutes."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import falcon

from tecken_symbols.errors import route_not_found

STATIC_DIR = Path(__file__).parent / "static"
INDEX = "index.html"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]*\.(?:html|js|css|svg)")
#: The placeholder in index.html replaced by each asset's content hash.
VERSION_RE = re.compile(r"\{\{version:([a-z0-9_.-]+)\}\}")
NO_CACHE = "no-cache"
SHORT_CACHE = "public, max-age=300"
LONG_CACHE = "public, max-age=31536000, immutable"
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    content_type: str
    digest: str

    @property
    def etag(self) -> str:
        return f'"{self.digest}"'


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def load_files(directory: Path = STATIC_DIR) -> dict[str, StaticFile]:
    """Every servable file of ``directory`` by name; ``index.html`` gets the
    assets' hashes filled in."""
    raw: dict[str, bytes] = {}
    for path in sorted(directory.iterdir()):
        if path.is_file() and not path.is_symlink() and NAME_RE.fullmatch(path.name):
            raw[path.name] = path.read_bytes()
    files = {
        name: StaticFile(data, CONTENT_TYPES[Path(name).suffix], _digest(data))
        for name, data in raw.items()
        if name != INDEX
    }
    if INDEX in raw:

        def version(match: re.Match[str]) -> str:
            asset = files.get(match.group(1))
            if asset is None:
                raise ValueError(f"{INDEX} references a missing asset {match.group(1)!r}")
            return asset.digest

        text = VERSION_RE.sub(version, raw[INDEX].decode("utf-8"))
        body = text.encode("utf-8")
        files[INDEX] = StaticFile(body, CONTENT_TYPES[".html"], _digest(body))
    return files


class StaticFilesResource:
    """Serves the UI's files; ``/ui/`` is ``index.html``."""

    def __init__(self, directory: Path = STATIC_DIR) -> None:
        self.files = load_files(directory)

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str = INDEX) -> None:
        item = self.files.get(name)
        if item is None:
            route_not_found(req, resp)
            return
        resp.set_headers(SECURITY_HEADERS)
        resp.etag = item.etag
        if name == INDEX:
            resp.cache_control = [NO_CACHE]
        elif req.get_param("v") == item.digest:
            resp.cache_control = [LONG_CACHE]
        else:
            resp.cache_control = [SHORT_CACHE]
        if _matches(req.get_header("If-None-Match"), item.etag):
            resp.status = falcon.HTTP_304
            resp.content_type = None
            return
        resp.content_type = item.content_type
        resp.data = item.body

    def on_head(self, req: falcon.Request, resp: falcon.Response, name: str = INDEX) -> None:
        self.on_get(req, resp, name)


def _matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    tags = [t.strip() for t in header.split(",")]
    return "*" in tags or etag in tags or f"W/{etag}" in tags


class RedirectToUI:
    """``/ui`` without the slash: to ``/ui/``."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        raise falcon.HTTPMovedPermanently("/ui/")

    on_head = on_get


def add_webui_routes(app: falcon.App, ctx: Any) -> None:
    resource = StaticFilesResource()
    app.add_route("/ui", RedirectToUI())
    app.add_route("/ui/", resource)
    app.add_route("/ui/{name}", resource)
