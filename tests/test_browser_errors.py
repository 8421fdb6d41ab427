"""A visitor's mistakes as they meet them in headless chromium: the message appears as a toast, every panel keeps
what it showed, and no output wears gradio's red "Error" pill afterwards. All Figures' Delete without the box ticked
leaves the box clickable (the test ticks it and deletes); Custom with an empty Appearance keeps the earlier takes;
Edit with nothing picked; a video short of credits keeps the earlier video. Screenshots in tests/artifacts/."""
from __future__ import annotations

import re

import pytest

from .browser import browser_page, open_app, save_quick_figure

pytestmark = pytest.mark.browser


def no_error_pills(page) -> None:
    page.wait_for_timeout(400)  # let a status tracker settle
    assert page.locator(".error").filter(has_text="Error").count() == 0, "an output wears the error pill"


def toast(page, text: str) -> None:
    try:
        page.locator(".toast-body").filter(has_text=text).first.wait_for(timeout=15_000)
    except Exception:
        page.screenshot(path="/tmp/toast-missing.png", full_page=True)
        raise


def test_visitor_mistakes_keep_the_page(app_server, artifacts):
    url, _ = app_server
    with browser_page(height=1300) as page:
        open_app(page, url, "Figures", "Quick", balance="50 credits")
        save_quick_figure(page, "Warden Pell")
        page.locator("#quick-saved").get_by_text("Saved Warden Pell").wait_for(timeout=20_000)

        # Figure to Video: two videos fit the balance (20 credits each), the third is short; the last video stays.
        page.get_by_role("tab", name="Video", exact=True).click()
        page.get_by_role("tab", name="Figure to Video").click()
        page.locator("#f2v-figure input").click()
        page.get_by_role("option").first.click()
        page.locator("#f2v-generate").click()
        video = page.locator("#f2v-video video")
        video.wait_for(state="attached", timeout=120_000)
        page.locator("#account-bar").get_by_text("28 credits").wait_for(timeout=20_000)
        page.locator("#f2v-generate").click()
        page.locator("#account-bar").get_by_text(re.compile(r"(?<!\d)8 credits")).wait_for(timeout=120_000)
        page.locator("#f2v-generate").click()  # the third one is short of credits
        toast(page, "balance")
        no_error_pills(page)
        assert video.count() == 1
        page.screenshot(path=str(artifacts / "error-video-short-of-credits.png"), full_page=True)

        # Custom: a first run shows takes; an empty Appearance then is refused and the takes stay.
        page.get_by_role("tab", name="Figures", exact=True).click()
        page.get_by_role("tab", name="Custom").click()
        page.locator("#custom-appearance textarea").fill("a tall adult woman with short grey hair and a calm face")
        page.locator("#custom-generate").click()
        takes = page.locator("#custom-takes img")
        takes.first.wait_for(state="visible", timeout=90_000)
        shown = takes.count()
        page.locator("#custom-appearance textarea").fill("")
        page.locator("#custom-generate").click()
        toast(page, "Appearance")
        no_error_pills(page)
        assert takes.count() == shown and takes.first.is_visible()
        page.screenshot(path=str(artifacts / "error-custom-empty-appearance.png"), full_page=True)

        # All Figures: Delete without the box is refused; the box stays clickable, and then the delete goes through.
        page.get_by_role("tab", name="All Figures").click()
        page.locator("#figures-gallery img").first.wait_for(state="visible", timeout=20_000)
        page.locator("#figures-gallery img").first.click()
        page.locator("#figure-title").get_by_text("Warden Pell").wait_for(timeout=10_000)
        page.locator("#figure-delete").click()
        toast(page, "delete")
        no_error_pills(page)
        page.screenshot(path=str(artifacts / "error-delete-unticked.png"), full_page=True)
        page.locator("#figure-confirm input").check(timeout=5_000)  # not covered by an error overlay
        page.locator("#figure-delete").click()
        page.locator("#figures-empty").get_by_text("No figures yet").wait_for(timeout=15_000)  # deleted
        no_error_pills(page)

        # Edit with nothing picked.
        page.get_by_role("tab", name="Images", exact=True).click()
        page.get_by_role("tab", name="Edit", exact=True).click()
        page.locator("#edit-sources img").first.wait_for(state="visible", timeout=20_000)
        page.locator("#edit-instruction textarea").fill("make the coat red")
        page.locator("#edit-generate").click()
        toast(page, "ick an image")
        no_error_pills(page)
        assert page.locator("#edit-sources img").first.is_visible()
        page.screenshot(path=str(artifacts / "error-edit-nothing-picked.png"), full_page=True)
