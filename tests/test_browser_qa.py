"""The QA tab as a QA engineer meets it in headless chromium: enter QA mode, start a QA run of the LoRA presets,
watch its progress bar, see it listed as done, and open its report with thumbnails; a visitor never sees the tab."""
from __future__ import annotations

import re

import pytest

from .browser import browser_page, open_app
from .conftest import ADMIN_KEY

pytestmark = pytest.mark.browser


def test_a_qa_session_runs_the_presets_and_opens_the_report(app_server, artifacts):
    url, _ = app_server
    with browser_page(height=1600) as page:
        open_app(page, url, "Characters")
        assert not page.get_by_role("tab", name="QA", exact=True).is_visible()  # visitors: no QA tab
        page.get_by_role("tab", name="Credits", exact=True).click()
        page.get_by_role("button", name=re.compile(r"^QA \/ admin")).click()
        page.locator("#credits-admin-key input").fill(ADMIN_KEY)
        page.locator("#credits-enter-qa").click()
        page.locator("#account-bar").get_by_text("QA").first.wait_for(timeout=15_000)
        page.get_by_role("tab", name="Characters", exact=True).click()
        page.get_by_role("tab", name="QA", exact=True).click()
        page.locator("#qa-status").get_by_text("No run in progress").wait_for(timeout=15_000)

        page.locator("#qa-presets input").click()
        page.get_by_role("option", name="loras", exact=True).click()
        page.locator("#qa-start").click()
        bar = page.locator("#qa-status progress")
        bar.wait_for(state="visible", timeout=20_000)
        page.screenshot(path=str(artifacts / "qa-tab-running.png"), full_page=True)

        page.locator("#qa-status").get_by_text("No run in progress").wait_for(timeout=240_000)
        page.wait_for_function("() => document.querySelector('#qa-runs').innerText.includes('done')", timeout=15_000)
        page.locator("#qa-pick input").click()
        page.get_by_role("option").first.click()
        report = page.locator("#qa-report")
        report.locator("img").first.wait_for(state="visible", timeout=20_000)
        assert report.locator("tr.qa-pass").count() > 0 and report.locator("tr.qa-fail").count() == 0
        assert report.locator("img").first.evaluate("img => img.naturalWidth") > 0  # a real thumbnail, not a broken image
        assert "0 failed" in report.inner_text()
        page.screenshot(path=str(artifacts / "qa-tab-report.png"), full_page=True)
        link = page.locator("#qa-download a").first
        link.wait_for(timeout=10_000)
        assert "qa.html" in (link.get_attribute("href") or "") + (page.locator("#qa-download").text_content() or ""), \
            page.locator("#qa-download").inner_html()[:500]
