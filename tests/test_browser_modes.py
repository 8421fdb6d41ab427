"""The two image modes as a visitor meets them in headless chromium: Advanced on a saved figure at 2K (price before,
balance after, no presets) after picking its reference sheet in All Figures, Figure Remix's recommended scenes and face paths, then Premium (tags) with a preset, then Compare with identity scores. Screenshots land in tests/artifacts/."""
from __future__ import annotations

import pytest

from .browser import browser_page, open_app, save_quick_figure

pytestmark = pytest.mark.browser


def test_advanced_on_a_saved_figure_at_2k_then_premium_with_a_preset(app_server, artifacts):
    url, _ = app_server
    with browser_page(height=1300) as page:
        open_app(page, url, "Figures", "Quick", balance="50 credits")
        save_quick_figure(page, "Wren")
        page.locator("#quick-saved").get_by_text("with 2 take(s)").wait_for(timeout=20_000)
        page.locator("#account-bar").get_by_text("48 credits").wait_for(timeout=10_000)

        # All Figures: make the figure's Advanced reference (full-body options) and pick one.
        page.get_by_role("tab", name="All Figures", exact=True).click()
        page.locator("#figures-gallery img").first.wait_for(state="visible", timeout=20_000)
        page.locator("#figures-gallery img").first.click()
        page.get_by_text("Advanced reference (full body, front-facing)").click()
        page.locator("#sheet-price").get_by_text("= 3 credits").wait_for(timeout=10_000)
        page.locator("#sheet-generate").click()
        page.locator("#sheet-options img").nth(3).wait_for(state="visible", timeout=90_000)
        page.locator("#account-bar").get_by_text("45 credits").wait_for(timeout=10_000)
        page.locator("#sheet-options img").nth(1).click()
        page.locator("#sheet-picked").get_by_text("Option 2 is now this figure's Advanced reference").wait_for(timeout=10_000)
        page.locator("#sheet-price").get_by_text("= 6 credits").wait_for(timeout=10_000)  # a regeneration costs twice
        page.screenshot(path=str(artifacts / "reference-sheet.png"), full_page=True)
        # ...and pin a style LoRA to it (applied by Remix and Advanced on SDXL models).
        page.get_by_text("LoRAs (a character or style LoRA pinned to this figure)").click()
        page.locator("#loras-pick input").click()
        page.get_by_role("option", name="Pixel Art XL (style)", exact=False).first.click()
        page.locator("#loras-pin").click()
        page.locator("#loras-notice").get_by_text("Pinned: pixel-art-xl (0.8)").wait_for(timeout=10_000)

        page.get_by_role("tab", name="Images", exact=True).click()
        page.get_by_role("tab", name="Advanced", exact=True).click()
        page.locator("#adv-figure input").wait_for(timeout=10_000)
        page.wait_for_function("() => document.querySelector('#adv-figure input').value.includes('Wren')", timeout=15_000)
        page.locator("#adv-tier").get_by_text("2K", exact=True).click()
        price = page.locator("#adv-price")
        price.get_by_text("= 4 credits").wait_for(timeout=10_000)
        assert "you have 45 credits" in price.inner_text()
        assert page.locator("[id^=adv-preset], [id^=adv-chips]").count() == 0  # no presets in Advanced
        assert "FLUX.2 [dev]" in page.locator("#adv-prompt-note").inner_text()
        page.screenshot(path=str(artifacts / "advanced-before.png"), full_page=True)
        page.locator("#adv-generate").click()
        page.locator("#adv-gallery img").first.wait_for(state="visible", timeout=120_000)
        page.locator("#account-bar").get_by_text("41 credits").wait_for(timeout=10_000)
        info = "".join(page.locator("#adv-info").inner_text().split())  # the JSON view breaks lines between tokens
        assert '"resolution":"2K"' in info and '"locked":true' in info and '"reference":"sheet"' in info
        page.screenshot(path=str(artifacts / "advanced-after.png"), full_page=True)

        # Figure Remix shows recommended scenes below the figure picker; a click writes the scene into the prompt.
        page.get_by_role("tab", name="Figure Remix", exact=True).click()
        page.locator("#remix-scenes img").nth(4).wait_for(state="visible", timeout=10_000)
        page.locator("#remix-scenes img").nth(3).click()
        page.wait_for_function("() => document.querySelector('#remix-prompt textarea').value.includes('quiet beach at sunset')",
                               timeout=10_000)
        page.screenshot(path=str(artifacts / "remix-scenes.png"), full_page=True)
        # SDXL base keeps the face through an adapter: its three face paths are offered, FaceID first.
        assert not page.locator("#remix-face-path").is_visible()  # Qwen-Image-Edit: the reference image, no choice
        page.locator("#remix-model input").click()
        page.get_by_role("option", name="SDXL base 1.0", exact=False).first.click()
        page.locator("#remix-face-path").wait_for(state="visible", timeout=10_000)
        page.locator("#remix-face-path input").click()
        names = [page.get_by_role("option").nth(i).inner_text().replace("✓", "").strip() for i in range(page.get_by_role("option").count())]
        assert names == ["FaceID", "FaceID Plus v2", "InstantID"], names
        page.get_by_role("option", name="InstantID").click()
        page.screenshot(path=str(artifacts / "remix-face-paths.png"), full_page=True)

        page.get_by_role("tab", name="Text", exact=True).click()
        page.locator("#text-style").get_by_text("Premium", exact=False).click()
        page.locator("#text-prompt textarea").fill("lighthouse keeper, stormy coast, oil painting")
        page.get_by_text("Tags and presets").click()
        page.locator("#text-preset-outfits input").click()
        page.get_by_role("option", name="Explorer gear").click()
        page.wait_for_function("() => document.querySelector('#text-prompt textarea').value.includes('olive field jacket')",
                               timeout=10_000)
        page.locator("#text-generate").click()
        page.locator("#text-gallery img").first.wait_for(state="visible", timeout=60_000)
        page.locator("#account-bar").get_by_text("40 credits").wait_for(timeout=10_000)
        assert '"prompt_style":"tags"' in "".join(page.locator("#text-info").inner_text().split())
        page.screenshot(path=str(artifacts / "premium-after.png"), full_page=True)

        # Compare with the figure picked: the table gains its identity column (the default dlib engine finds no face in
        # the tiny model's canonical take: it says so).
        page.get_by_role("tab", name="Compare", exact=True).click()
        page.locator("#compare-figure input").click()
        page.get_by_role("option", name="Wren").click()
        page.locator("#compare-price").get_by_text("= 2 credits").wait_for(timeout=10_000)
        page.locator("#compare-run").click()
        page.locator("#compare-gallery img").nth(1).wait_for(state="visible", timeout=120_000)
        page.locator("#account-bar").get_by_text("38 credits").wait_for(timeout=10_000)
        table = page.locator("#compare-table").inner_text()
        assert "identity" in table and table.count("no face in the figure's image") == 2, table
        page.screenshot(path=str(artifacts / "compare-identity.png"), full_page=True)
