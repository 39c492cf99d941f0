"""Browser tests: Debian's Chromium, driven by Playwright's sync API, against
pytest-django's ``live_server`` and the sandbox Mistral API (both on 127.0.0.1).

Playwright's own browser download does not work here (and is not needed): every
browser is Debian's /usr/bin/chromium.
"""

from __future__ import annotations

import os

# Playwright's sync API runs an asyncio event loop in the test's own thread (it drives
# the browser from greenlets on top of it). Django sees a running loop and refuses every
# ORM call made from the test (creating users, reading what the live server saved) with
# SynchronousOnlyOperation. Those calls are still ordinary blocking calls on this
# thread, never inside a coroutine, so telling Django it may run them is safe. Set at
# import, before any test touches the database.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from collections.abc import Iterator  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.test import Client  # noqa: E402
from playwright.sync_api import (  # noqa: E402
    Browser,
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Error,
    Locator,
    Page,
    ViewportSize,
    expect,
    sync_playwright,
)

from models_admin import roles  # noqa: E402
from tests.conftest import ALICE_KEY, BOB_KEY, CAROL_KEY, make_user  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_MISSING = (
    "Debian's Chromium is required: apt-get install -y chromium (see README prerequisites)"
)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT: ViewportSize = {"width": 1280, "height": 900}
# Short, so a broken page fails in seconds instead of Playwright's default 30 s.
TIMEOUT_MS = 5_000

expect.set_options(timeout=TIMEOUT_MS)


# ------------------------------------------------------------------------- browser


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    # Fail, not skip: a missing browser must turn the suite red, never quietly green.
    if not CHROMIUM.exists():
        pytest.fail(CHROMIUM_MISSING, pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


@dataclass
class BrowserLog:
    """What the page said on its console and which errors it did not catch."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


@pytest.fixture
def browser_log() -> BrowserLog:
    return BrowserLog()


def _new_context(browser: Browser, **options) -> BrowserContext:
    context = browser.new_context(viewport=VIEWPORT, **options)
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    return context


@pytest.fixture
def page(browser: Browser, browser_log: BrowserLog) -> Iterator[Page]:
    """A page in a fresh context (no cookies or storage shared between tests)."""
    context = _new_context(browser)
    page = context.new_page()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            browser_log.console_errors.append(message.text)

    def on_page_error(error: Error) -> None:
        browser_log.page_errors.append(f"{error.name}: {error.message}")

    page.on("console", on_console)
    page.on("pageerror", on_page_error)

    def on_dialog(dialog: Dialog) -> None:
        # With a listener, Playwright no longer dismisses dialogs itself: do it, or the
        # page would hang on an alert().
        browser_log.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    yield page
    context.close()
    # An uncaught exception in app.js or htmx is a bug even when the test passed.
    if browser_log.page_errors:
        pytest.fail(
            "Uncaught errors in the page:\n" + "\n".join(browser_log.page_errors), pytrace=False
        )


@pytest.fixture
def js_off_page(browser: Browser) -> Iterator[Page]:
    """A page with JavaScript disabled: every action must work as a plain form post."""
    context = _new_context(browser, java_script_enabled=False)
    page = context.new_page()
    yield page
    context.close()


# ---------------------------------------------------------------- server and users


# The ``alice`` and ``charlie`` fixtures of tests/conftest.py request ``db`` (a
# transaction rolled back at the end); the live server runs in another thread and
# needs ``transactional_db`` instead, so these shadow them for browser tests.
@pytest.fixture
def alice(transactional_db, sandbox) -> User:
    return make_user("alice", roles.Role.TEAM_ADMIN, ALICE_KEY)


@pytest.fixture
def charlie(transactional_db, sandbox) -> User:
    return make_user("charlie", roles.Role.MEMBER)


@pytest.fixture
def bob(transactional_db, sandbox) -> User:
    return make_user("bob", roles.Role.MEMBER, BOB_KEY)


@pytest.fixture
def carol(transactional_db, sandbox) -> User:
    return make_user("carol", roles.Role.AUDITOR, CAROL_KEY)


def password_of(username: str) -> str:
    return f"{username}-password"


def login(page: Page, live_server, username: str, password: str | None = None) -> None:
    """Sign in through the real form, as a person would; ends on the page it leads to."""
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password or password_of(username))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/accounts/login/" not in url)


def sign_in(page: Page, live_server, user: User, path: str = "/models/") -> None:
    """Start signed in as ``user`` on ``path``, skipping the form: Django's test client
    makes the session and the browser gets its cookie. Saves a page load and a POST per
    test; ``login`` covers the form itself."""
    client = Client()
    client.force_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    page.context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": live_server.url}])
    page.goto(f"{live_server.url}{path}")


# ------------------------------------------------------------------ sandbox helpers


def workspace(sandbox, key: str = ALICE_KEY):
    return sandbox.state.workspace(key)


def fine_tuned(sandbox, key: str = ALICE_KEY, *, name: str | None = None) -> dict:
    """A seeded fine-tuned card (the one called ``name``, or the first one not archived)."""
    return next(
        card
        for card in workspace(sandbox, key).models.values()
        if card["type"] == "fine-tuned"
        and (card.get("name") == name if name is not None else not card.get("archived"))
    )


def bulk_fine_tuned(sandbox, count: int, key: str = ALICE_KEY) -> list[dict]:
    """Add ``count`` fine-tuned cards (copies of a seeded one), enough to need paging."""
    template = fine_tuned(sandbox, key)
    cards = [
        dict(
            template,
            id=f"ft:open-mistral-7b:e7a8792d:20250101:{i:08x}",
            name=f"bulk-model-{i:03d}",
            created=template["created"] + i,
            job=f"00000000-0000-4000-8000-{i:012x}",
        )
        for i in range(count)
    ]
    for card in cards:
        workspace(sandbox, key).put(card)
    return cards


# --------------------------------------------------------------------- page helpers


def model_row(page: Page, model_id: str) -> Locator:
    return page.locator(f'tr[data-model-id="{model_id}"]')


def mark_page(page: Page) -> None:
    """Set a marker on ``window``: it survives htmx swaps, and only those."""
    page.evaluate("window.__notReloaded = true")


def page_is_marked(page: Page) -> bool:
    return bool(page.evaluate("window.__notReloaded === true"))


# ---------------------------------------------------------------- accessibility

# axe-core comes from npm through tests/browser/package.json (`npm ci --prefix
# tests/browser`). It is evaluated in the page by the test only; the app never serves it.
AXE = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
AXE_MISSING = (
    f"axe-core is not installed ({AXE} is missing): run `npm ci --prefix tests/browser` "
    "(tests/browser/package.json pins the version)"
)
PHONE: ViewportSize = {"width": 390, "height": 844}
SERIOUS = ("serious", "critical")


def axe_violations(page: Page, *, context: str = "document") -> list[str]:
    """Serious and critical axe-core violations on what the page shows now, one line each."""
    # Fail, not skip: without axe-core the accessibility tests would prove nothing.
    if not AXE.exists():
        pytest.fail(AXE_MISSING, pytrace=False)
    if not page.evaluate("typeof window.axe === 'object'"):
        # evaluate() runs outside the page's CSP, so no 'unsafe-inline' is needed.
        page.evaluate(AXE.read_text(encoding="utf-8") + "\n;0")
    results = page.evaluate(
        """async (context) => {
            const root = context === "document" ? document : document.querySelector(context);
            const r = await axe.run(root, {resultTypes: ["violations"]});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 3).map(n => n.target.join(" "))}));
        }""",
        context,
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {v['nodes']}"
        for v in results
        if v["impact"] in SERIOUS
    ]


def sideways_scroll(page: Page) -> int:
    """How many pixels the page scrolls sideways (0 when it fits)."""
    return int(
        page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    )


def focused(page: Page) -> str:
    """What has focus: its tag, id and text, or "BODY" when focus fell to the body."""
    return str(
        page.evaluate(
            """() => { const e = document.activeElement;
                if (!e || e === document.body) return "BODY";
                return `${e.tagName}#${e.id} ${(e.getAttribute("aria-label") || e.textContent
                    || e.name || "").trim().slice(0, 60)}`; }"""
        )
    )


def assert_focus_kept(page: Page) -> None:
    assert focused(page) != "BODY", "focus fell to <body>"
