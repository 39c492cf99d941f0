"""The README's screenshots, made from the real pages.

Every run renders the pages and checks that they look sane; only with
``UPDATE_SCREENSHOTS=1`` are the PNGs in docs/screenshots/ rewritten:

    UPDATE_SCREENSHOTS=1 .venv/bin/pytest tests/browser/test_screenshots.py -p no:randomly
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from playwright.sync_api import Page, ViewportSize, expect

from tests.browser.conftest import PHONE, VIEWPORT, fine_tuned, sign_in, workspace

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
UPDATE = os.environ.get("UPDATE_SCREENSHOTS") == "1"


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def assert_looks_sane(page: Page, size: ViewportSize = VIEWPORT) -> None:
    """Styled, nothing overflowing sideways, no broken images, no leftover alerts."""
    topbar_background = page.evaluate(
        "getComputedStyle(document.querySelector('.topbar')).backgroundColor"
    )
    assert topbar_background not in ("", "rgba(0, 0, 0, 0)"), "app.css did not load"
    assert page.evaluate("document.documentElement.scrollWidth") <= size["width"]
    assert page.evaluate("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
    assert page.locator("#alerts .alert").count() == 0


def shoot(page: Page, name: str, size: ViewportSize = VIEWPORT) -> None:
    png = page.screenshot(full_page=False, animations="disabled", caret="hide")
    assert png_size(png) == (size["width"], size["height"])
    if UPDATE:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        (SCREENSHOTS / name).write_bytes(png)


class TestReadmeScreenshots:
    @pytest.fixture
    def showcase(self, sandbox) -> dict:
        """Alice's seeded workspace, with one model described the way a team would."""
        card = dict(
            fine_tuned(sandbox, name="sql-assistant-v7"),
            description=(
                "Writes PostgreSQL for the analytics team from plain-English questions.\n"
                "Trained on 12k reviewed query pairs; evaluated on the March hold-out set."
            ),
        )
        workspace(sandbox).put(card)
        return card

    def test_the_list_the_detail_page_and_the_delete_dialog(
        self, page, live_server, alice, showcase, browser_log
    ):
        sign_in(page, live_server, alice)
        expect(page.locator("tr[data-model-id]")).to_have_count(50)
        assert_looks_sane(page)
        shoot(page, "models-list.png")

        page.goto(f"{live_server.url}/models/{showcase['id']}/")
        expect(page.locator("#model-detail h1")).to_have_text("sql-assistant-v7")
        expect(page.get_by_role("heading", name="Every field")).to_be_visible()
        assert_looks_sane(page)
        shoot(page, "model-detail.png")

        page.get_by_role("link", name="Delete…").click()
        dialog = page.locator("#dialog")
        expect(dialog).to_be_visible()
        dialog.get_by_label("Type the model id to confirm").fill(showcase["id"])
        dialog.get_by_label("Reason (kept in the audit log)").fill("Replaced by sql-assistant-v8")
        assert page.evaluate("document.getElementById('dialog').open")
        assert_looks_sane(page)
        shoot(page, "delete-dialog.png")

        assert browser_log.console_errors == []

    def test_the_list_on_a_phone(self, page, live_server, alice, showcase, browser_log):
        page.set_viewport_size(PHONE)
        sign_in(page, live_server, alice)
        expect(page.locator("tr[data-model-id]")).to_have_count(50)
        assert_looks_sane(page, PHONE)
        # The rows, past the filters: name, type and actions (the rest is on each model's page).
        page.evaluate("window.scrollTo(0, document.querySelector('.bulk-bar').offsetTop - 12)")
        shoot(page, "models-list-phone.png", PHONE)
        assert browser_log.console_errors == []
