"""Moderation as a QA engineer meets it in headless chromium: enter QA mode with the admin key, open a pending
public character and see every field it publishes; the owner changes it meanwhile, so Verify is refused with a
message and it stays pending; opened again, it is verified and listed."""
from __future__ import annotations

import re

import pytest
from gradio_client import handle_file

from .browser import browser_page, open_app
from .conftest import ADMIN_KEY
from .test_characters import PHOTO

pytestmark = pytest.mark.browser

FIELDS = {"description": "MK-description of her past", "scenario": "MK-scenario aboard", "personality": "MK-personality",
          "system_prompt": "MK-system prompt text", "mes_example": "MK-example dialogue", "creator_notes": "MK-creator notes"}


def test_qa_sees_every_field_and_a_stale_verdict_is_refused(app_server, client, artifacts):
    url, _ = app_server
    owner = client.predict(api_name="/session_start")["token"]
    made = client.predict(token=owner, name="Mira Quill", intro="MK-intro: a lighthouse poet.", tags=["poet"],
                          visibility="public", greeting="MK-greeting: mind the stairs.", avatar_source="upload",
                          avatar=handle_file(str(PHOTO)), fields=FIELDS, opening_messages=["MK-alt greeting one", "MK-alt greeting two"],
                          persona_cards=["MK-persona: a lost sailor"], challenge_modes=["MK-goal | MK-target | MK-hint"],
                          api_name="/character_create")
    with browser_page(height=2400) as page:
        open_app(page, url, "Credits")
        page.get_by_role("button", name=re.compile(r"^QA \/ admin")).click()
        page.locator("#credits-admin-key input").fill(ADMIN_KEY)
        page.locator("#credits-enter-qa").click()
        page.locator("#account-bar").get_by_text("QA").first.wait_for(timeout=15_000)
        page.get_by_role("tab", name="Characters", exact=True).click()
        page.get_by_role("tab", name="Moderation").click()
        page.locator("#moderation-gate").get_by_text("waiting").wait_for(timeout=15_000)
        page.locator("#moderation-queue input").click()
        page.get_by_role("option", name="Mira Quill").first.click()
        detail = page.locator("#moderation-detail")
        detail.get_by_text("MK-alt greeting two").wait_for(timeout=15_000)
        text = detail.inner_text()
        for marker in [*FIELDS.values(), "MK-intro", "MK-greeting", "MK-alt greeting one", "MK-persona", "MK-goal", "MK-hint"]:
            assert marker in text, marker
        page.screenshot(path=str(artifacts / "moderation-review.png"), full_page=True)

        # The owner edits after the moderator opened it: Verify is refused and it stays pending.
        client.predict(token=owner, character_id=made["id"], intro="MK-intro changed after review", api_name="/character_update")
        page.locator("#moderation-verify").click()
        page.get_by_text("after you opened it").first.wait_for(timeout=15_000)
        page.screenshot(path=str(artifacts / "moderation-stale-verdict.png"), full_page=True)
        assert made["id"] not in [c["id"] for c in client.predict(query="Mira", api_name="/catalogue")["characters"]]

        page.locator("#moderation-refresh").click()
        page.locator("#moderation-queue input").click()
        page.get_by_role("option", name="Mira Quill").first.click()
        detail.get_by_text("MK-intro changed after review").wait_for(timeout=15_000)
        page.locator("#moderation-verify").click()
        page.locator("#moderation-result").get_by_text("Verified").wait_for(timeout=15_000)
    assert made["id"] in [c["id"] for c in client.predict(query="Mira", api_name="/catalogue")["characters"]]
