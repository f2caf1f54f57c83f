# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""Helpers for the upload tests and the benchmark: fixture paths, zips built on
the fly, .sym text."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

from tecken_shared.testing import FIXTURES_DIR

FIXTURES = Path(os.environ.get("TECKEN_SYMBOLS_FIXTURES", "") or FIXTURES_DIR / "symbols")

DEBUG_ID = "8A07C88A3DA44E20A3490D88791183060"


def sym_text(
    debug_file: str = "ssltunnel",
    debug_id: str = DEBUG_ID,
    funcs: int = 3,
    stack_between: bool = False,
    code_id: str | None = "8AC8078AA43D204EA3490D88791183066C426696",
    code_file: str | None = None,
) -> bytes:
    lines = [f"MODULE Linux x86_64 {debug_id} {debug_file}"]
    if code_id:
        lines.append(f"INFO CODE_ID {code_id}" + (f" {code_file}" if code_file else ""))
    lines.append("INFO GENERATOR mozilla/dump_syms 2.3.7")
    lines.append("FILE 0 a.c")
    for i in range(funcs):
        addr = 0x1000 * (i + 1)
        lines.append(f"FUNC {addr:x} 10 0 f{i}")
        lines.append(f"{addr:x} 10 {i + 1} 0")
        if stack_between and i == 0:
            lines.append(f"STACK CFI INIT {addr:x} 10 .cfa: $rsp 8 +")
    lines.append("PUBLIC 9000 0 pub")
    lines.append("STACK CFI INIT 1000 10 .cfa: $rsp 8 + .ra: .cfa -8 + ^")
    return ("\n".join(lines) + "\n").encode()


def make_zip(
    members: list[tuple[str, bytes]] | dict[str, bytes], path: Path | None = None
) -> bytes:
    """A zip of (name, content) members (duplicates allowed in a list)."""
    items = list(members.items()) if isinstance(members, dict) else members
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # duplicate names on purpose
            for name, content in items:
                zf.writestr(name, content)
    data = buf.getvalue()
    if path is not None:
        path.write_bytes(data)
    return data


def sym_key(
    debug_file: str = "ssltunnel", debug_id: str = DEBUG_ID, name: str | None = None
) -> str:
    if name is None:
        name = (debug_file[:-4] if debug_file.endswith(".pdb") else debug_file) + ".sym"
    return f"{debug_file}/{debug_id}/{name}"


def make_token(ctx, perms, email: str = "uploader@example.com", **kw) -> str:
    """Create the user (if needed) with ``perms`` and a token holding them."""
    from tecken_symbols import accounts, tokens

    db = ctx.db
    if accounts.get_user_by_email(db, email) is None:
        accounts.create_user(db, email)
    for perm in perms:
        accounts.grant_permission(db, email, perm)
    key, _ = tokens.create_token(db, email, list(perms), **kw)
    return key


def send_v2_file(app, action: dict, body: bytes, token: str) -> None:
    """What a v2 client does with an ``upload`` action: the (already gzipped
    when the action says so) body to the service (``tecken-put``, through the
    webtest ``app``) or straight to the storage (over real HTTP)."""
    import requests

    url = action["url"]
    if url.startswith("http://symbols.test/"):
        app.put(url.replace("http://symbols.test", ""), body, headers={"Auth-Token": token})
        return
    resp = requests.put(url, body, headers=action.get("headers") or {}, timeout=30)
    resp.raise_for_status()
