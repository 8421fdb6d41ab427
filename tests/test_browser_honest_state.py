"""Honest state as a visitor sees it in headless chromium: after a run, every price line's "you have N credits" and the
session bar show the same live balance on every tab; members-only forms say so before the visitor types, are disabled
and show no price; a model this deployment has no provider key for is labelled so and not priced."""
from __future__ import annotations

import re

import pytest

from .browser import browser_page, open_app

pytestmark = pytest.mark.browser

HAVE = re.compile(r"you have (\d+) credits")
TABS = [("Images", "Text"), ("Images", "Advanced"), ("Images", "Figure Remix"), ("Images", "Group"),
        ("Video", "Figure to Video"), ("Compare", None), ("Figures", "Quick"), ("Figures", "Custom")]


def bar_balance(page) -> int:
    return int(re.search(r"(\d+) credits", page.locator("#account-bar").inner_text()).group(1))


def price_lines(page) -> list[str]:
    return [t for t in page.locator("[id$='-price']").all_inner_texts() if HAVE.search(t)]


def test_every_price_line_shows_the_live_balance_and_members_forms_say_so(app_server, artifacts):
    url, _ = app_server
    with browser_page(height=1200) as page:
        open_app(page, url, "Images", "Text", balance="50 credits")
        page.locator("#text-price").get_by_text("you have 50 credits").wait_for(timeout=15_000)
        page.locator("#text-prompt textarea").fill("a lighthouse keeper at dusk, oil painting")
        page.locator("#text-model input").click()
        page.get_by_role("option", name="SDXL base 1.0").first.click()
        page.locator("#text-generate").click()
        page.locator("#text-gallery img").first.wait_for(state="visible", timeout=60_000)
        page.locator("#account-bar").get_by_text("49 credits").wait_for(timeout=15_000)
        seen = 0
        for main, inner in TABS:
            page.get_by_role("tab", name=main, exact=True).click()
            if inner:
                page.get_by_role("tab", name=inner, exact=True).click()
            page.wait_for_timeout(700)  # the tab's price event
            for line in price_lines(page):
                assert HAVE.search(line).group(1) == str(bar_balance(page)) == "49", (main, inner, line)
                seen += 1
        assert seen >= 4, f"only {seen} price lines showed a balance"
        page.screenshot(path=str(artifacts / "honest-price-after-run.png"), full_page=True)

        # Text to Video is for members: said before typing, the form disabled, no price.
        page.get_by_role("tab", name="Video", exact=True).click()
        page.get_by_role("tab", name="Text to Video", exact=True).click()
        gate = page.locator("#t2v-gate")
        gate.get_by_text("Text to Video is for members").wait_for(timeout=15_000)
        assert "not available in this deployment" in gate.inner_text()  # how to become a member HERE
        assert page.locator("#t2v-generate").is_disabled()
        assert page.locator("#t2v-prompt textarea").is_disabled()
        assert "credits" not in page.locator("#t2v-price").inner_text()
        page.screenshot(path=str(artifacts / "honest-members-only.png"), full_page=True)

        # An API model without a provider key: labelled, and its price line says it cannot run here.
        page.get_by_role("tab", name="Images", exact=True).click()
        page.get_by_role("tab", name="Text", exact=True).click()
        page.locator("#text-model input").click()
        option = page.get_by_role("option", name=re.compile(r"FLUX.2 \[pro\].*needs a provider key"))
        assert option.count() == 1 and "credits" not in option.inner_text()
        option.click()
        page.locator("#text-price").get_by_text("needs a provider key").wait_for(timeout=15_000)
        page.screenshot(path=str(artifacts / "honest-needs-key.png"), full_page=True)
