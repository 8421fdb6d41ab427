"""Characters as a visitor meets them in headless chromium: create one without a figure from an upload, export its
card and import it back, have a QA session verify it, and find it in the public catalogue (also signed out). The
character built on a saved figure (All Figures' "Create character") is in test_browser.py's Quick walkthrough.
Screenshots land in tests/artifacts/."""
from __future__ import annotations

import pytest

from .browser import browser_page, open_app, verify_and_open_in_catalogue
from .conftest import ADMIN_KEY
from .test_characters import PHOTO

pytestmark = pytest.mark.browser


def fill(page, elem_id: str, text: str) -> None:
    page.locator(f"#{elem_id} textarea, #{elem_id} input").first.fill(text)


def test_create_export_import_verify_and_find_in_the_catalogue(app_server, artifacts, client, tmp_path):
    url, services = app_server
    with browser_page() as page:
        open_app(page, url, "Characters")
        page.locator("#character-save").wait_for(state="visible", timeout=10_000)
        # Step 1: no figure, an uploaded main image (the default source)
        assert page.locator("#character-avatar-source input[value='upload']").is_checked()
        page.locator("#character-avatar-upload input[type=file]").set_input_files(str(PHOTO))
        page.locator("#character-avatar-upload img").first.wait_for(state="visible", timeout=15_000)
        # Step 2: the required fields; a too-long intro cannot be typed (the box holds the limit)
        fill(page, "character-name", "Captain Oriel")
        fill(page, "character-intro", "A retired airship captain who still reads the winds.")
        page.locator("#character-preset-tags").get_by_label("adventure").check()
        fill(page, "character-custom-tags", "airship")
        page.locator("#character-visibility").get_by_label("Public (listed once a moderator verifies it)").check()
        page.locator("#character-first_mes textarea").fill("Wind's turning. You coming aboard?")
        # Step 3: one optional part, with the writing helper
        page.get_by_text("Scenario, personality, backstory").click()
        page.locator("#character-personality textarea").fill("nice and kind")
        page.locator("#character-suggest").click()
        page.locator("#character-personality-help").get_by_text("say little").wait_for(timeout=10_000)
        page.locator("#character-save").click()
        status = page.locator("#character-status")
        status.get_by_text("Created Captain Oriel").wait_for(timeout=30_000)
        assert "pending" in status.inner_text()
        page.locator("#character-main-image img").wait_for(state="visible", timeout=10_000)
        assert "checked by the output check" in page.locator("#character-main-note").inner_text()
        page.screenshot(path=str(artifacts / "character-upload.png"), full_page=True)

        # Export the card (PNG V3), download it as a visitor would, and import it back as a new character
        page.locator("#character-export").click()
        link = page.locator("#character-card-file a").first
        link.wait_for(timeout=15_000)
        with page.expect_download() as download:
            link.click()
        card = tmp_path / "captain-oriel.png"
        download.value.save_as(card)
        assert card.read_bytes().startswith(b"\x89PNG")
        page.locator("#character-import-file input[type=file]").set_input_files(str(card))
        page.locator("#character-import").click()
        status.get_by_text("Imported Captain Oriel as a new character").wait_for(timeout=30_000)
        page.locator("#character-pick input").click()
        assert page.get_by_role("option").filter(has_text="Captain Oriel").count() == 2  # the original stays
        page.keyboard.press("Escape")
        page.screenshot(path=str(artifacts / "character-imported.png"), full_page=True)

        # A QA session verifies the first one (through the API); it then shows in the catalogue
        qa = client.predict(admin_key=ADMIN_KEY, api_name="/session_start")["token"]
        pending = [c for c in client.predict(token=qa, api_name="/review_characters") if c["name"] == "Captain Oriel"]
        assert len(pending) == 2
        verify_and_open_in_catalogue(page, client, qa, pending[0], "oriel", "A retired airship captain")
        detail = page.locator("#catalogue-detail")
        assert "Wind's turning. You coming aboard?" in detail.inner_text()  # the greeting, as typed
        page.screenshot(path=str(artifacts / "character-catalogue.png"), full_page=True)

    # Signed out (a fresh browser): the catalogue still shows it
    with browser_page() as page:
        open_app(page, url, "Characters")
        page.get_by_role("tab", name="Catalogue").click()
        page.locator("#catalogue-results img").first.wait_for(state="visible", timeout=15_000)
        assert page.get_by_role("tab", name="Moderation").count() == 0  # QA sessions only: not even shown
        page.get_by_role("tab", name="Catalogue").click()
        page.locator("#catalogue-summary").get_by_text("character(s)").wait_for(timeout=15_000)
        page.wait_for_timeout(800)  # let the gallery settle after the tab's search
        page.screenshot(path=str(artifacts / "character-catalogue-visitor.png"), full_page=True)

