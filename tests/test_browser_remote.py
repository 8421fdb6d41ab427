"""An API-only model as a visitor meets it in headless chromium: picked in Text mode, its price and prompt note shown
before the run, generated through the local fake provider (tests/fake_provider.py, on 127.0.0.1), balance after."""
from __future__ import annotations

import pytest

from .browser import browser_page, open_app
from .conftest import launch_app, stop_app
from .fake_provider import FakeProvider

pytestmark = pytest.mark.browser


@pytest.fixture
def remote_app(tmp_path, tiny_root, monkeypatch):
    fake = FakeProvider()
    # The deployer's settings, as a Space would hold them, pointed at the fake vendor.
    monkeypatch.setenv("FAL_KEY", "fal-deployer-key")
    monkeypatch.setenv("PLAYGROUND_PROVIDER_URL_FAL", f"{fake.url}/direct-fal")
    monkeypatch.setenv("PLAYGROUND_REMOTE_ALLOW_HOSTS", fake.url)  # a loopback host is reachable only when allow-listed
    url, demo, services = launch_app(tmp_path / "data", tiny_root)
    try:
        yield url, fake
    finally:
        stop_app(demo, services)
        fake.close()


def test_pick_an_api_model_see_price_and_note_and_generate(remote_app, artifacts):
    url, fake = remote_app
    with browser_page(height=1200) as page:
        open_app(page, url, "Images", "Text", balance="50 credits")
        page.locator("#text-prompt textarea").fill("a lighthouse keeper at dusk, oil painting, warm window light")
        page.locator("#text-model input").click()
        page.get_by_role("option", name="FLUX.2 [pro] (API)").first.click()
        page.locator("#text-prompt-note").get_by_text("like FLUX.2 [dev]").wait_for(timeout=10_000)
        price = page.locator("#text-price")
        price.get_by_text("= 8 credits").wait_for(timeout=10_000)
        assert "you have 50 credits" in price.inner_text()
        page.screenshot(path=str(artifacts / "remote-before.png"), full_page=True)
        page.locator("#text-generate").click()
        page.locator("#text-gallery img").first.wait_for(state="visible", timeout=60_000)
        page.locator("#account-bar").get_by_text("42 credits").wait_for(timeout=10_000)
        notice = page.locator("#text-notice").inner_text()
        assert "balance now 42 credits" in notice and "offline preview" not in notice
        assert "fal-ai/flux-2-pro" in page.locator("#text-info").inner_text()
        page.screenshot(path=str(artifacts / "remote-after.png"), full_page=True)
    submitted = [r for r in fake.requests if r["method"] == "POST"]
    assert len(submitted) == 1 and submitted[0]["path"] == "/direct-fal/fal-ai/flux-2-pro"
    assert submitted[0]["json"]["prompt"].startswith("a lighthouse keeper")
