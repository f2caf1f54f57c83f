# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""A tiny HTML builder for the server-rendered pages: every value goes
through :func:`esc` (so stored emails, notes and file names render inert),
one stylesheet, no inline script or style, and a strict CSP."""

from __future__ import annotations

from html import escape
from typing import Any

import falcon

from tecken_symbols.accounts import User

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def esc(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


class Raw(str):
    """HTML already escaped or built from escaped parts."""


def h(value: Any) -> str:
    return value if isinstance(value, Raw) else esc(value)


def nav(user: User | None, csrf: str) -> str:
    links = [
        ("/", "Home"),
        ("/help", "Help"),
        ("/symbolicate", "Symbolication"),
        ("/ui/#/lookup", "Symbol lookup"),
        ("/ui/#/missing", "Missing symbols"),
        ("/stats", "Stats"),
    ]
    if user is not None:
        links[1:1] = [
            ("/tokens", "API tokens"),
            ("/ui/#/uploads", "Uploads"),
            ("/ui/#/files", "Files"),
            ("/ui/#/upload", "Upload now"),
        ]
        if user.is_superuser:
            links.append(("/users", "Users"))
    items = "".join(f'<a href="{esc(href)}">{esc(label)}</a>' for href, label in links)
    if user is None:
        right = '<a href="/login">Log in</a>'
    else:
        right = f'<span class="who">{esc(user.email)}</span>' + post_form(
            "/logout", csrf, '<button type="submit">Sign out</button>', "inline"
        )
    return f'<nav aria-label="Main">{items}</nav><div class="account">{right}</div>'


def page(
    resp: falcon.Response,
    title: str,
    body: str,
    *,
    user: User | None,
    csrf: str = "",
    status: str = falcon.HTTP_200,
) -> None:
    resp.status = status
    resp.set_headers(HEADERS)
    resp.content_type = "text/html; charset=utf-8"
    resp.text = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)} · Tecken symbols</title>"
        '<link rel="icon" href="/ui/favicon.svg">'
        '<link rel="stylesheet" href="/ui/style.css"></head><body>'
        '<a class="skip" href="#main">Skip to content</a>'
        f'<header><h1><a href="/">Tecken symbols</a></h1>{nav(user, csrf)}</header>'
        f'<main id="main"><h2>{esc(title)}</h2>{body}</main>'
        '<footer><a href="/help">Help</a> · <a href="/missingsymbols.csv">missingsymbols.csv</a></footer>'
        "</body></html>"
    )


def table(headers: list[str], rows: list[list[Any]], *, caption: str = "") -> str:
    if not rows:
        return '<p class="muted">Nothing here.</p>'
    head = "".join(f'<th scope="col">{esc(x)}</th>' for x in headers)
    body = "".join(
        "<tr>"
        + "".join(f'<td data-label="{esc(headers[i])}">{h(c)}</td>' for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f'<div class="scroll"><table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def hidden_csrf(csrf: str) -> str:
    return f'<input type="hidden" name="csrf_token" value="{esc(csrf)}">'


def post_form(action: str | None, csrf: str, inner: str, cls: str = "") -> str:
    """A POST form carrying the session's CSRF token; ``inner`` is markup
    (its values already escaped). No ``action``: it posts to the page itself."""
    target = f' action="{esc(action)}"' if action is not None else ""
    klass = f' class="{esc(cls)}"' if cls else ""
    return f'<form method="post"{target}{klass}>{hidden_csrf(csrf)}{inner}</form>'


def checkbox(name: str, value: str, label: str, checked: bool = False, note: str = "") -> str:
    """One labelled checkbox (``note``: muted text after the label)."""
    mark = " checked" if checked else ""
    extra = f' <span class="muted">({esc(note)})</span>' if note else ""
    return (
        f'<label class="inline"><input type="checkbox" name="{esc(name)}" value="{esc(value)}"'
        f"{mark}> {esc(label)}{extra}</label>"
    )


def message(text: str, kind: str = "info") -> str:
    role = "alert" if kind == "error" else "status"
    return f'<p class="{esc(kind)}" role="{role}">{esc(text)}</p>'
