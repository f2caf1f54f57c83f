# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at https://mozilla.org/MPL/2.0/.

"""The web UI in a real browser (issue 12): Playwright driving Debian's
Chromium against the symbols app served over HTTP, with the test OpenID
Connect provider as its own process.

One walk, in order, as people use it: a superuser logs in with a local
account; a new person logs in with OpenID Connect and has no permissions; the
superuser grants them upload permission; they create an upload token, upload
a zip with the CLI and see the upload; plus CSRF refused, session expiry,
logout everywhere, phone width and stored data rendered inert. Across the
walk there must be no console error, page error or CSP violation.

Screenshots of the main pages go to ``var/screenshots/`` (and to
``docs/_static/ui/`` with ``TECKEN_UPDATE_SCREENSHOTS=1``: ``make screenshots``)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tecken_shared.testing.servers import free_port, wsgi_server
from tecken_shared.testing.services import running_service
from tecken_symbols import accounts, tokens
from tecken_symbols.people import store
from tecken_symbols.upload.testing import DEBUG_ID, make_zip, sym_key, sym_text

ROOT = Path(__file__).resolve().parents[3]
SHOTS = ROOT / "var" / "screenshots"
DOCS_SHOTS = ROOT / "docs" / "_static" / "ui"
PASSWORD = "correct horse battery"
EVIL = '<img src=x onerror="window.__xss=1">'


def chromium_path() -> str:
    for name in (os.environ.get("TECKEN_CHROMIUM", ""), "chromium", "chromium-browser"):
        found = name and shutil.which(name)
        if found:
            return found
    pytest.fail(
        "the browser tests need Chromium: install Debian's package (apt-get install chromium) "
        "or set TECKEN_CHROMIUM to its path; `make test` installs it when run as root"
    )


class Walk:
    """A browser, the collected console errors, and helpers."""

    def __init__(self, browser, base: str) -> None:
        self.browser = browser
        self.base = base
        self.problems: list[str] = []
        self.shots: list[str] = []

    def context(self, width: int = 1200, height: int = 800):
        ctx = self.browser.new_context(viewport={"width": width, "height": height})
        ctx.add_init_script(
            "document.addEventListener('securitypolicyviolation', e => "
            "console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));"
        )
        return ctx

    def page(self, ctx):
        page = ctx.new_page()
        page.set_default_timeout(10_000)
        page.on(
            "console",
            lambda m: (
                self.problems.append(f"console {m.type}: {m.text} @ {page.url}")
                if m.type in ("error", "warning")
                else None
            ),
        )
        page.on("pageerror", lambda e: self.problems.append(f"pageerror: {e} @ {page.url}"))
        page.on("dialog", lambda d: (self.problems.append(f"dialog: {d.message}"), d.dismiss()))
        return page

    def open(self, width: int = 1200, height: int = 800, login: str = ""):
        """A new browser context and its page, logged in as ``login`` if given."""
        ctx = self.context(width, height)
        page = self.page(ctx)
        if login:
            self.local_login(page, login)
        return ctx, page

    def go(self, page, path: str) -> None:
        page.goto(self.base + path)
        page.wait_for_load_state("networkidle")

    def shot(self, page, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        if os.environ.get("TECKEN_UPDATE_SCREENSHOTS") == "1":
            DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, DOCS_SHOTS / path.name)

    def local_login(self, page, email: str) -> None:
        self.go(page, "/login")
        page.fill("input[name=email]", email)
        page.fill("input[name=password]", PASSWORD)
        page.press("input[name=password]", "Enter")  # the keyboard is enough
        page.wait_for_load_state("networkidle")

    def oidc_login(self, page, email: str) -> None:
        self.go(page, "/login")
        page.click("#oidc-login")
        page.fill("#email", email)
        page.click("text=Sign in")
        page.wait_for_url(self.base + "/")


@pytest.fixture(scope="module")
def site(tmp_path_factory, request):
    tmp = tmp_path_factory.mktemp("browser")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    provider_fixture = request.getfixturevalue("start_oidc_provider_module")
    provider = provider_fixture(base + "/oidc/callback")
    # eliot as deployed (its own gunicorn), symbolicating from this symbols service.
    eliot_env = {"ELIOT_SYMBOL_URLS": base + "/"}
    with running_service("eliot", tmp / "eliot", 1, eliot_env) as eliot:
        yield from _site(tmp, base, port, provider, eliot.url)


def _site(tmp: Path, base: str, port: int, provider, eliot_url: str):  # type: ignore[no-untyped-def]
    """The symbols service in-process (its context is the tests' to inspect) and a browser."""
    from playwright.sync_api import sync_playwright

    from tecken_shared.config import build_config_manager
    from tecken_symbols.app import create_app_and_context

    executable = chromium_path()
    env = {
        "SYMBOLS_DATABASE_URL": f"sqlite:///{tmp}/symbols.db",
        "SYMBOLS_PUBLIC_URL": base,
        "SYMBOLS_STORAGE_URL": f"file://{tmp}/storage/v1?durable=false",
        "SYMBOLS_TRY_STORAGE_URL": f"file://{tmp}/storage/try/v1?durable=false",
        "SYMBOLS_METRICS_BACKEND": "none",
        "SYMBOLS_LOG_FORMAT": "text",
        "SYMBOLS_MISSING_SYMBOLS_FLUSH_INTERVAL": "3600",
        "SYMBOLS_SESSION_COOKIE_SECURE": "false",
        "SYMBOLS_ELIOT_URL": eliot_url,
        **provider.env(),
    }
    app, ctx = create_app_and_context(build_config_manager(env, str(tmp / "none.env")))
    accounts.create_user(ctx.db, "root@example.com", is_superuser=True)
    store.set_password(ctx.db, "root@example.com", PASSWORD)
    with wsgi_server(app, port), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield Walk(browser, base), ctx, provider, tmp
        finally:
            browser.close()
            ctx.close()


def walk_sym(debug_file: str) -> bytes:
    """A small symbol file whose f0 has an inlined call (for the Symbolication page)."""
    lines = sym_text(debug_file).decode().splitlines()
    at = lines.index("FUNC 1000 10 0 f0")
    lines[at : at + 2] = [
        "INLINE_ORIGIN 0 inlined_helper",
        "FUNC 1000 10 0 f0",
        "INLINE 0 7 0 0 1004 8",
        "1000 4 1 0",
        "1004 8 9 0",
        "100c 4 1 0",
    ]
    return ("\n".join(lines) + "\n").encode()


def upload_with_cli(base: str, key: str, tmp: Path, debug_file: str = "walk.pdb") -> None:
    symbols = tmp / f"symbols-{debug_file}"
    path = symbols / sym_key(debug_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(walk_sym(debug_file))
    cli = Path(sys.executable).parent / "tecken-upload-symbols"
    env = {**os.environ, "TECKEN_AUTH_TOKEN": key}
    out = subprocess.run(
        [str(cli), "--url", base, str(symbols)], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr


def test_the_walk_ordinary_user_uploader_superuser(site):
    walk, ctx, provider, tmp = site
    walk.problems.clear()
    # A visitor: home, help, stats, missing symbols, symbol lookup; no errors.
    visitor = walk.context()
    page = walk.page(visitor)
    walk.go(page, "/")
    assert "Log in" in page.inner_text("header")
    for path in ("/help", "/stats", "/ui/#/missing", "/ui/#/lookup"):
        walk.go(page, path)
    visitor.close()

    # An ordinary person logs in with OpenID Connect: created with no permissions.
    person = walk.context()
    page = walk.page(person)
    walk.oidc_login(page, "dev@example.org")
    assert "dev@example.org" in page.inner_text("#email")
    assert "no permissions yet" in page.inner_text("main")
    walk.go(page, "/tokens")
    assert "no permissions a token could hold" in page.inner_text("main")
    walk.go(page, "/ui/#/uploads")
    page.wait_for_selector("text=Signed in as dev@example.org")
    walk.go(page, "/help")
    walk.shot(page, "help")

    # The superuser grants them upload permission on the Users page.
    admin = walk.context()
    apage = walk.page(admin)
    walk.local_login(apage, "root@example.com")
    walk.shot(apage, "home-superuser")
    walk.go(apage, "/users")
    apage.fill("input[name=q]", "dev@")
    apage.press("input[name=q]", "Enter")
    apage.click("text=dev@example.org")
    apage.check("input[name=groups][value=Uploaders]")
    apage.click("text=Save")
    assert "Saved: 1 change" in apage.inner_text("main")
    assert "group added" in apage.inner_text("main")
    walk.go(apage, "/users")
    walk.shot(apage, "users")

    # The uploader creates a token, uploads with the CLI and sees the upload.
    walk.go(page, "/")
    assert "upload_symbols" in page.inner_text("#permissions")
    walk.shot(page, "home")
    walk.go(page, "/tokens")
    page.check("input[name=permissions][value=upload_symbols]")
    page.fill("input[name=notes]", "CI build")
    page.click("text=Create token")
    key = page.inner_text("#new-key").strip()
    assert re.fullmatch(r"[0-9a-f]{32}", key)
    walk.shot(page, "tokens")
    walk.go(page, "/tokens")
    assert key not in page.content()  # shown once
    upload_with_cli(walk.base, key, tmp)
    walk.go(page, "/ui/#/uploads")
    page.wait_for_selector("table >> text=dev@example.org")
    walk.shot(page, "uploads")
    page.click("table a >> nth=0")
    page.wait_for_selector("text=Related uploads")
    assert "storage/v1" not in page.inner_text("main")  # no server path
    walk.shot(page, "upload-detail")
    page.click("table >> text=look up >> nth=0")
    page.wait_for_selector(".found")
    # Symbolicate a frame of the uploaded module through eliot.
    walk.go(page, "/symbolicate")
    page.fill("textarea[name=modules]", f"walk.pdb {DEBUG_ID}")
    page.fill("textarea[name=stack]", "0 0x1006\n0 0x2002")
    page.click("main >> button:text('Symbolicate')")
    page.wait_for_selector("#result table, #result .error")
    result = page.inner_text("#result")
    assert "f0" in result and "f1" in result and "inlined_helper" in result, result
    walk.shot(page, "symbolicate")
    # Upload a zip from the browser, with progress.
    zipped = tmp / "browser.zip"
    zipped.write_bytes(make_zip({sym_key("webform.pdb"): sym_text("webform.pdb")}))
    walk.go(page, "/ui/#/upload")
    page.set_input_files("input[name=file]", str(zipped))
    page.click("main >> button:text('Upload')")
    page.wait_for_selector("main .found")
    assert page.evaluate("document.querySelector('progress').value") == 100
    walk.shot(page, "upload-now")
    # Downloads found and missing (the walk's lookups found some), written
    # by the workers' flushers (forced here: their interval is longer).
    for _ in range(2):
        page.request.get(walk.base + "/nothere.pdb/" + "1" * 33 + "/nothere.sym")
    ctx.downloads.flush()
    ctx.missing.flush()
    walk.go(page, "/stats")
    assert page.locator("svg.chart").count() >= 4
    stats = page.inner_text("main")
    assert re.search(r"found total [1-9]", stats) and re.search(r"missing total [1-9]", stats)
    walk.shot(page, "stats")
    walk.go(page, "/ui/#/missing")
    # Sign out, from the static UI's header (the same form as the other pages).
    page.click("header >> button:text('Sign out')")
    page.wait_for_url(re.compile(r".*/login.*"))
    walk.go(page, "/")
    assert "Log in" in page.inner_text("header")
    # The superuser sees every file and a file's detail.
    walk.go(apage, "/ui/#/files")
    apage.wait_for_selector("table >> text=walk.sym")
    walk.shot(apage, "files")
    apage.click("table >> text=walk.sym")
    apage.wait_for_selector("text=Look it up")
    assert "dev@example.org" in apage.inner_text("main")
    for c in (person, admin):
        c.close()
    assert walk.problems == []


def test_csrf_refused_with_a_session(site):
    walk, ctx, provider, tmp = site
    walk.problems.clear()
    accounts.create_user(ctx.db, "csrf@example.com", is_superuser=False)
    accounts.add_to_group(ctx.db, "csrf@example.com", "Uploaders")
    store.set_password(ctx.db, "csrf@example.com", PASSWORD)
    browser_ctx = walk.context()
    page = walk.page(browser_ctx)
    walk.local_login(page, "csrf@example.com")
    # A request with the session cookie but without the CSRF token (as a forged
    # cross-site form would send it): refused, nothing created.
    resp = browser_ctx.request.post(
        walk.base + "/tokens", form={"permissions": "upload_symbols", "notes": "forged"}
    )
    assert resp.status == 403 and "CSRF" in resp.json()["error"]
    resp = browser_ctx.request.post(walk.base + "/api/tokens/", form={"permissions": "1"})
    assert resp.status == 403
    user = accounts.get_user_by_email(ctx.db, "csrf@example.com")
    assert tokens.list_tokens(ctx.db, user.email) == []
    browser_ctx.close()
    assert walk.problems == []


def test_session_expiry_and_logout_everywhere(site):
    walk, ctx, provider, tmp = site
    walk.problems.clear()
    user = accounts.create_user(ctx.db, "twice@example.com")
    store.set_password(ctx.db, "twice@example.com", PASSWORD)
    one, two = walk.context(), walk.context()
    p1, p2 = walk.page(one), walk.page(two)
    walk.local_login(p1, "twice@example.com")
    walk.local_login(p2, "twice@example.com")
    p1.click("text=Sign out everywhere")
    p1.wait_for_url(re.compile(r".*/login.*"))
    walk.go(p2, "/")
    assert "Log in" in p2.inner_text("header")
    # An idle session ends.
    walk.local_login(p2, "twice@example.com")
    assert "twice@example.com" in p2.inner_text("header")
    store.age_sessions(ctx.db, user.id, 9 * 3600)
    walk.go(p2, "/tokens")
    assert p2.url.startswith(walk.base + "/login?next=")
    one.close()
    two.close()
    assert walk.problems == []


def test_stored_data_is_inert_and_pages_fit_a_phone(site):
    walk, ctx, provider, tmp = site
    walk.problems.clear()
    evil_email = "<svg/onload=window.__xss=1>@evil.example"
    accounts.create_user(ctx.db, evil_email)
    accounts.add_to_group(ctx.db, evil_email, "Uploaders")
    _key, _ = tokens.create_token(ctx.db, evil_email, ["upload_symbols"], notes=EVIL)
    key, _ = tokens.create_token(ctx.db, "root@example.com", ["upload_symbols"], notes=EVIL)
    upload_with_cli(walk.base, key, tmp, debug_file="evil.pdb")
    ctx.db.execute("UPDATE uploads SET filename = ?", (EVIL + ".zip",))
    phone = walk.context(390, 844)
    page = walk.page(phone)
    walk.local_login(page, "root@example.com")
    upload_id = ctx.db.fetchval("SELECT MAX(id) FROM uploads")
    paths = (
        "/",
        "/users",
        "/users/1",
        "/tokens",
        "/ui/#/uploads",
        f"/ui/#/uploads/{upload_id}",
        "/ui/#/files",
        "/ui/#/upload",
        "/ui/#/missing",
        "/ui/#/lookup",
        "/symbolicate",
        "/help",
        "/stats",
    )
    for path in paths:
        walk.go(page, path)
        if path == "/ui/#/uploads":
            page.wait_for_selector("table >> text=.zip")
        if path in ("/tokens", "/ui/#/uploads"):
            assert EVIL in page.inner_text("main"), path  # shown as text
        assert page.evaluate("window.__xss") is None, path
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (path, width)
    walk.go(page, "/users")
    assert evil_email in page.inner_text("main")
    walk.shot(page, "users-phone")
    phone.close()
    assert walk.problems == []


def test_uploads_in_progress_refresh_until_complete(site):
    walk, ctx, provider, tmp = site
    walk.problems.clear()
    key, _ = tokens.create_token(ctx.db, "root@example.com", ["upload_symbols"])
    upload_with_cli(walk.base, key, tmp, debug_file="slow.pdb")
    upload_id = ctx.db.fetchval("SELECT MAX(id) FROM uploads")
    done = ctx.db.fetchval("SELECT completed_at FROM uploads WHERE id = ?", (upload_id,))

    def in_progress(flag: bool) -> None:
        ctx.db.execute(
            "UPDATE uploads SET completed_at = ? WHERE id = ?", (None if flag else done, upload_id)
        )

    browser_ctx, page = walk.open(login="root@example.com")
    # The list refreshes itself while an upload is in progress, keeping what
    # is typed in the filter form, and stops once it completes.
    in_progress(True)
    walk.go(page, "/ui/#/uploads")
    assert "1 upload in progress" in page.inner_text("#refreshing")
    page.fill("input[name=user]", "typed, not submitted")
    in_progress(False)
    page.wait_for_selector("#refreshing", state="detached", timeout=15_000)
    assert page.input_value("input[name=user]") == "typed, not submitted"
    # So does an upload's own page.
    in_progress(True)
    walk.go(page, f"/ui/#/uploads/{upload_id}")
    page.wait_for_selector("#refreshing")
    in_progress(False)
    page.wait_for_selector("#refreshing", state="detached", timeout=15_000)
    assert "Completed" in page.inner_text("main")
    browser_ctx.close()
    assert walk.problems == []


def tab_to(page, selector: str, limit: int = 80) -> None:
    """Press Tab until ``selector`` has the focus (the keyboard alone)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


def test_invitation_link_and_the_keyboard_alone(site):
    walk, ctx, provider, tmp = site
    walk.problems.clear()
    admin, apage = walk.open(login="root@example.com")
    walk.go(apage, "/users")
    apage.fill("input[name=email]", "invited@example.com")
    apage.click("text=Create invitation link")
    link = apage.inner_text("#invite-link").strip()
    assert link.startswith(walk.base + "/invite/")
    # The invited person, with the keyboard only: choose a password, land home.
    guest, page = walk.open(390, 844)
    page.goto(link)
    page.wait_for_load_state("networkidle")
    tab_to(page, "a.skip")  # the first stop: skip to content
    tab_to(page, "input[name=password]")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(walk.base + "/")
    assert "invited@example.com" in page.inner_text("#email")
    # A link works once (asked with the superuser's session: a 404 page
    # would be a console error in the walk).
    used = admin.request.get(link)
    assert used.status == 404 and "unknown, used or expired" in used.text()
    # The superuser grants a permission with the keyboard alone.
    walk.go(apage, "/users?q=invited")
    invited = accounts.get_user_by_email(ctx.db, "invited@example.com")
    tab_to(apage, f"a[href='/users/{invited.id}']")
    with apage.expect_navigation():  # networkidle alone may be the old page's
        apage.keyboard.press("Enter")
    apage.wait_for_load_state("networkidle")
    tab_to(apage, "input[name=groups][value=Uploaders]")
    apage.keyboard.press("Space")
    tab_to(apage, "main button[type=submit]")
    with apage.expect_navigation():  # networkidle alone may be the old page's
        apage.keyboard.press("Enter")
    apage.wait_for_load_state("networkidle")
    assert "Saved: 1 change" in apage.inner_text("main")
    # The new uploader makes a token with the keyboard alone.
    walk.go(page, "/tokens")
    tab_to(page, "input[name=permissions][value=upload_symbols]")
    page.keyboard.press("Space")
    tab_to(page, "input[name=notes]")
    page.keyboard.type("typed")
    page.keyboard.press("Enter")
    page.wait_for_selector("#new-key")
    # The static UI's skip link moves the focus to the content.
    walk.go(page, "/ui/#/uploads")
    tab_to(page, "a.skip", limit=1)
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    assert page.url.endswith("#/uploads")
    for c in (admin, guest):
        c.close()
    assert walk.problems == []
