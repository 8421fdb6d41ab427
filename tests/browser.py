"""Playwright on Debian's chromium (never a downloaded browser), with the flags this sandbox needs."""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager

import pytest

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI: .ci/run installs Debian's chromium package")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    return path


def open_app(page, url: str, *tabs: str, balance: str = "credits") -> None:
    """Load the app, wait for the visitor's session (gradio keeps a stream open, so not for network idle), open tabs."""
    page.goto(url, wait_until="load")
    page.locator("#account-bar").get_by_text(balance).wait_for(timeout=20_000)
    for tab in tabs:
        page.get_by_role("tab", name=tab, exact=True).click()


@contextmanager
def browser_page(width: int = 1400, height: int = 1000):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            yield page
        finally:
            browser.close()


def save_quick_figure(page, name: str) -> None:
    """In Figures › Quick (open): walk the seven pickers, make takes on SDXL, pick the first, name it and save."""
    for step in range(7):
        page.locator(f"#quick-next-{step}").click()
    page.locator("#quick-model input").click()
    page.get_by_role("option", name="SDXL base 1.0").first.click()
    page.locator("#quick-generate").click()
    page.locator("#quick-takes img").first.wait_for(state="visible", timeout=90_000)
    page.locator("#quick-takes img").first.click()
    page.locator("#quick-name input, #quick-name textarea").first.fill(name)
    page.locator("#quick-save").click()


def verify_and_open_in_catalogue(page, client, qa_token: str, character: dict, query: str, shows: str) -> None:
    """A QA session verifies a pending character (naming the revision it saw); the Catalogue then finds it by name and
    its detail panel shows `shows`."""
    client.predict(token=qa_token, character_id=character["id"], verify=True, revision=character["revision"],
                   api_name="/review_character")
    page.get_by_role("tab", name="Catalogue").click()
    page.locator("#catalogue-query textarea, #catalogue-query input").first.fill(query)
    page.locator("#catalogue-search").click()
    page.locator("#catalogue-summary").get_by_text("1 character(s)").wait_for(timeout=15_000)
    page.locator("#catalogue-results img").first.click()
    page.locator("#catalogue-detail").get_by_text(shows).wait_for(timeout=15_000)
