"""A visitor's click-through in headless chromium; screenshots land in tests/artifacts/."""
from __future__ import annotations

import pytest
from PIL import Image

from .browser import browser_page

pytestmark = pytest.mark.browser


def test_text_mode_generates_in_the_browser(app_server, artifacts):
    url, _ = app_server
    with browser_page() as page:
        page.goto(url, wait_until="networkidle")
        page.get_by_role("tab", name="Images").click()
        page.get_by_role("tab", name="Text").click()
        page.screenshot(path=str(artifacts / "text-mode-before.png"), full_page=True)
        prompt = page.locator("#text-prompt textarea")
        prompt.fill("portrait of a silver-haired mentor in a library, warm light")
        assert "1 credit" in page.locator("#text-price").inner_text()
        page.locator("#text-generate").click()
        image = page.locator("#text-gallery img").first
        image.wait_for(state="visible", timeout=60_000)
        page.locator("#text-notice").get_by_text("offline preview").wait_for(timeout=10_000)
        page.screenshot(path=str(artifacts / "text-mode-after.png"), full_page=True)
        src = image.get_attribute("src")
        assert src and ".png" in src
        # every top-level tab opens
        for tab in ["Figures", "Video", "Characters", "Compare", "Credits"]:
            page.get_by_role("tab", name=tab).click()
        page.screenshot(path=str(artifacts / "credits-tab.png"))
    with Image.open(artifacts / "text-mode-after.png") as shot:
        assert shot.size[0] == 1400
