# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The web UI under /ui/: files, content types, cache headers, no way out of
the static directory, and every endpoint the JS calls exists."""

from __future__ import annotations

import re

import pytest

from tecken_symbols.upload.testing import DEBUG_ID, make_token, make_zip, sym_key, sym_text
from tecken_symbols.webui.resource import STATIC_DIR, load_files

JS = (STATIC_DIR / "app.js").read_text()
ENDPOINT_RE = re.compile(r'\{\s*method:\s*"([A-Z]+)",\s*path:\s*"([^"]+)"\s*\}')


def test_index_is_html_and_references_the_assets(fs_service):
    app = fs_service.app
    resp = app.get("/ui/")
    assert resp.content_type == "text/html"
    assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
    assert resp.headers["Cache-Control"] == "no-cache"
    assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    files = load_files()
    assert f'src="app.js?v={files["app.js"].digest}"' in resp.text
    assert f'href="style.css?v={files["style.css"].digest}"' in resp.text
    assert "{{" not in resp.text
    assert app.get("/ui/index.html").body == resp.body
    assert app.get("/ui", status=301).headers["Location"].endswith("/ui/")


def test_the_service_index_links_to_the_ui(fs_service):
    assert 'href="/ui/#/' in fs_service.app.get("/").text


@pytest.mark.parametrize(
    "name, content_type",
    [("app.js", "text/javascript; charset=utf-8"), ("style.css", "text/css; charset=utf-8")],
)
def test_assets_content_types_and_caching(fs_service, name, content_type):
    app = fs_service.app
    item = load_files()[name]
    resp = app.get(f"/ui/{name}")
    assert resp.headers["Content-Type"] == content_type
    assert resp.body == (STATIC_DIR / name).read_bytes()
    assert resp.headers["Cache-Control"] == "public, max-age=300"
    assert resp.headers["ETag"] == item.etag
    versioned = app.get(f"/ui/{name}?v={item.digest}")
    assert "immutable" in versioned.headers["Cache-Control"]
    stale = app.get(f"/ui/{name}?v=0000")
    assert stale.headers["Cache-Control"] == "public, max-age=300"
    again = app.get(f"/ui/{name}", headers={"If-None-Match": item.etag}, status=304)
    assert again.body == b""
    head = app.head(f"/ui/{name}", status=200)
    assert head.headers["Content-Type"] == content_type and head.body == b""


@pytest.mark.parametrize(
    "path",
    [
        "/ui/nope.js",
        "/ui/app.py",
        "/ui/__init__.py",
        "/ui/resource.py",
        "/ui/static",
        "/ui/.",
        "/ui/..",
        "/ui/../app.py",
        "/ui/..%2fapp.py",
        "/ui/%2e%2e/%2e%2e/app.py",
        "/ui/..%2f..%2fapp.py",
        "/ui/static/app.js",
        "/ui/%2fetc%2fpasswd",
        "/ui/APP.JS",
        "/ui/app.js%00.css",
    ],
)
def test_unknown_files_and_traversal_are_404(fs_service, path):
    resp = fs_service.app.get(path, expect_errors=True)
    assert resp.status_int == 404, (path, resp.status)
    assert b"MPL" not in resp.body and b"import" not in resp.body


def test_only_known_files_are_loaded(tmp_path):
    (tmp_path / "index.html").write_text('<script src="a.js?v={{version:a.js}}"></script>')
    (tmp_path / "a.js").write_text("1")
    (tmp_path / "secret.py").write_text("x")
    (tmp_path / ".hidden.js").write_text("x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.js").write_text("x")
    (tmp_path / "link.js").symlink_to(tmp_path / "secret.py")
    files = load_files(tmp_path)
    assert set(files) == {"index.html", "a.js"}
    assert files["a.js"].digest in files["index.html"].body.decode()
    (tmp_path / "index.html").write_text('<script src="gone.js?v={{version:gone.js}}"></script>')
    with pytest.raises(ValueError, match="gone.js"):
        load_files(tmp_path)


def test_js_never_renders_markup():
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in JS, sink
    assert "sessionStorage.getItem(TOKEN_KEY)" in JS
    assert 'headers["Auth-Token"]' in JS
    assert "localStorage" not in JS
    html = (STATIC_DIR / "index.html").read_text()
    assert "<script>" not in html and "style=" not in html  # CSP: no inline code
    # Nothing loaded from elsewhere (no CDN): every src/href is relative.
    for ref in re.findall(r'(?:src|href)="([^"]*)"', html):
        assert not re.match(r"[a-z]+:|//", ref), ref
    assert not re.search(r"fetch\(\s*[\"'`]https?:", JS)


def test_js_calls_only_endpoints_that_exist(make_service, database_url):
    svc = make_service(database_url=database_url)
    token = make_token(svc.ctx, ["upload_symbols", "view_all_uploads"], email="ui@example.com")
    debug_file = "ssltunnel.pdb"
    zipped = make_zip({sym_key(debug_file): sym_text(debug_file)})
    upload = svc.app.post(
        "/upload/", upload_files=[("s.zip", "s.zip", zipped)], headers={"Auth-Token": token}
    ).json["upload"]
    svc.app.get(f"/{debug_file}/0123ABCD/ssltunnel.sym", status=404)  # one missing symbol
    values = {
        "id": str(upload["id"]),
        "debug_file": debug_file,
        "debug_id": DEBUG_ID,
        "symbols_file": "ssltunnel.sym",
    }
    endpoints = ENDPOINT_RE.findall(JS)
    assert len(endpoints) == 11, endpoints
    for method, template in endpoints:
        if (method, template) == ("POST", "/upload/"):
            continue  # the Upload now page; a body-less POST is a 400 by design
        path = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], template)
        resp = svc.app.request(
            path, method=method, headers={"Auth-Token": token}, expect_errors=True
        )
        assert resp.status_int not in (404, 405), (method, path, resp.status, resp.body)
        assert resp.status_int < 400, (method, path, resp.status, resp.body)
    # Each endpoint the JS uses appears only in the table, so the table is complete.
    paths = {template for _, template in endpoints}
    assert re.findall(r"fetch\((\w+)", JS) == ["url", "downloadUrl"]
    for literal in re.findall(r'"(/(?:api/|upload/|missingsymbols)[^"]*)"', JS):
        assert literal in paths, literal
