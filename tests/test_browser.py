"""A visitor's click-through in headless chromium; screenshots land in tests/artifacts/."""
from __future__ import annotations

import pytest
from PIL import Image

from .browser import browser_page

pytestmark = pytest.mark.browser


def test_text_mode_generates_in_the_browser(app_server, artifacts):
    url, _ = app_server
    with browser_page() as page:
        page.goto(url, wait_until="load")
        # gradio keeps a heartbeat stream open (session state), so wait for the session, not network idle
        page.locator("#account-bar").get_by_text("50 credits").wait_for(timeout=20_000)
        page.get_by_role("tab", name="Images").click()
        page.get_by_role("tab", name="Text").click()
        page.screenshot(path=str(artifacts / "text-mode-before.png"), full_page=True)
        prompt = page.locator("#text-prompt textarea")
        prompt.fill("portrait of a silver-haired mentor in a library, warm light")
        price = page.locator("#text-price").inner_text()
        assert "= 1 credit" in price and "you have 50 credits" in price
        page.locator("#text-generate").click()
        image = page.locator("#text-gallery img").first
        image.wait_for(state="visible", timeout=60_000)
        page.locator("#text-notice").get_by_text("offline preview").wait_for(timeout=10_000)
        page.locator("#account-bar").get_by_text("49 credits").wait_for(timeout=10_000)
        assert "balance now 49 credits" in page.locator("#text-notice").inner_text()
        page.screenshot(path=str(artifacts / "text-mode-after.png"), full_page=True)
        src = image.get_attribute("src")
        assert src and ".png" in src

        # History: the image is there; "reuse prompt" fills Text mode with its settings.
        prompt.fill("something else")
        page.get_by_role("tab", name="History").click()
        page.locator("#history-gallery img").first.wait_for(state="visible", timeout=20_000)
        page.locator("#history-gallery img").first.click()
        page.locator("#history-details").get_by_text("silver-haired mentor").first.wait_for(timeout=10_000)
        page.screenshot(path=str(artifacts / "history-tab.png"), full_page=True)
        page.locator("#history-reuse").click()
        page.locator("#text-prompt textarea").wait_for(state="visible", timeout=10_000)
        page.wait_for_function(
            "() => document.querySelector('#text-prompt textarea').value.includes('silver-haired mentor')", timeout=10_000
        )

        # Credits: balance, plan and the ledger rows of that run.
        page.get_by_role("tab", name="Credits").click()
        page.locator("#credits-summary").get_by_text("49 credits").wait_for(timeout=10_000)
        page.wait_for_timeout(500)
        page.screenshot(path=str(artifacts / "credits-tab.png"), full_page=True)
        ledger = page.locator("#credits-ledger").inner_text()
        assert "capture" in ledger and "reserve" in ledger and "grant" in ledger, ledger
        # every top-level tab opens
        for tab in ["Figures", "Video", "Characters", "Compare"]:
            page.get_by_role("tab", name=tab).click()

        # A reload keeps the session (token in browser storage): same balance, no new grant.
        page.reload(wait_until="load")
        page.locator("#account-bar").get_by_text("49 credits").wait_for(timeout=20_000)
    with Image.open(artifacts / "text-mode-after.png") as shot:
        assert shot.size[0] == 1400
