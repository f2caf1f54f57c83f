# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The Symbolication page: a form that posts a memory map and a stack to the
configured eliot (``SYMBOLS_ELIOT_URL``, ``/symbolicate/v5``) from the server
and shows the frames with their inlined functions. No login is needed, as
eliot's API needs none; with a session the form carries the CSRF token."""

from __future__ import annotations

from typing import Any

import falcon
import requests

from tecken_symbols.people.html import Raw, esc, message, post_form, table
from tecken_symbols.people.pages import Pages
from tecken_symbols.people.sessions import csrf_token, read_form

EXAMPLE_MODULES = "xul.pdb 44E4EC8C2F41492B9369D6B9A059577C2"
EXAMPLE_STACK = "0 0xb2e3f7"
MAX_FRAMES = 500


def parse(modules: str, stack: str) -> dict[str, Any]:
    """The v5 request for one job; raises ValueError saying what to fix."""
    memory_map = []
    for n, line in enumerate(modules.splitlines(), 1):
        if line.strip():
            parts = line.split()
            if len(parts) != 2:
                raise ValueError(f"module line {n}: write 'debug_file debug_id'")
            memory_map.append(parts)
    frames = []
    for n, line in enumerate(stack.splitlines(), 1):
        if line.strip():
            parts = line.split()
            try:
                index, offset = int(parts[0]), int(parts[1], 0)
            except (ValueError, IndexError) as exc:
                raise ValueError(
                    f"stack line {n}: write 'module_index offset' (0x… for hex)"
                ) from exc
            if not 0 <= index < len(memory_map):
                raise ValueError(f"stack line {n}: no module {index}")
            frames.append([index, offset])
    if not memory_map or not frames:
        raise ValueError("give at least one module and one frame")
    if len(frames) > MAX_FRAMES:
        raise ValueError(f"at most {MAX_FRAMES} frames")
    return {"jobs": [{"memoryMap": memory_map, "stacks": [frames]}]}


def frames_table(result: dict[str, Any]) -> str:
    rows = []
    for frame in result["results"][0]["stacks"][0]:
        where = ""
        if frame.get("file"):
            where = f"{frame['file']}:{frame.get('line', '')}"
        inlines = frame.get("inlines") or []
        inline_html = "".join(
            f'<li>{esc(i.get("function"))} <span class="muted">{esc(i.get("file", ""))}:{esc(i.get("line", ""))}</span></li>'
            for i in inlines
        )
        rows.append(
            [
                frame.get("frame"),
                frame.get("module"),
                Raw(f"<code>{esc(frame.get('module_offset'))}</code>"),
                frame.get("function", "(no symbol)"),
                where,
                Raw(f"<ul>{inline_html}</ul>") if inlines else "",
            ]
        )
    found = result["results"][0].get("found_modules", {})
    summary = ", ".join(
        f"{k}: {'found' if v else 'not found' if v is False else 'not needed'}"
        for k, v in found.items()
    )
    return table(["Frame", "Module", "Offset", "Function", "File:line", "Inlined"], rows) + (
        f'<p class="muted">Modules: {esc(summary)}</p>' if summary else ""
    )


class SymbolicatePage:
    def __init__(self, p: Pages, eliot_url: str) -> None:
        self.p = p
        self.eliot_url = eliot_url.rstrip("/")

    def render(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        modules: str,
        stack: str,
        result: str = "",
        status: str = falcon.HTTP_200,
    ) -> None:
        body = (
            f"<p>Symbolicates with eliot at <code>{esc(self.eliot_url)}</code>. One module per line "
            "(<code>debug_file debug_id</code>), one frame per line (<code>module_index offset</code>).</p>"
            + post_form(
                "/symbolicate",
                csrf_token(req),
                f'<label>Modules <textarea name="modules" rows="3" required>{esc(modules)}</textarea></label>'
                f'<label>Stack <textarea name="stack" rows="5" required>{esc(stack)}</textarea></label>'
                '<button type="submit">Symbolicate</button>',
                "stack",
            )
            + f'<div id="result">{result}</div>'
        )
        self.p.render(req, resp, "Symbolication", body, status)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.render(req, resp, EXAMPLE_MODULES, EXAMPLE_STACK)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        form = read_form(req)
        modules, stack = form.get("modules", ""), form.get("stack", "")
        try:
            payload = parse(modules, stack)
        except ValueError as exc:
            self.render(req, resp, modules, stack, message(str(exc), "error"), falcon.HTTP_400)
            return
        try:
            answer = requests.post(self.eliot_url + "/symbolicate/v5", json=payload, timeout=60)
            data = answer.json()
        except (requests.RequestException, ValueError) as exc:
            self.render(
                req,
                resp,
                modules,
                stack,
                message(f"eliot could not be reached: {exc}", "error"),
                falcon.HTTP_502,
            )
            return
        if answer.status_code != 200:
            error = data.get("error", answer.reason) if isinstance(data, dict) else answer.reason
            self.render(
                req,
                resp,
                modules,
                stack,
                message(f"eliot answered {answer.status_code}: {error}", "error"),
                falcon.HTTP_502,
            )
            return
        self.render(req, resp, modules, stack, frames_table(data))
