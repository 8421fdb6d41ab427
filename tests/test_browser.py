"""A visitor's click-through in headless chromium; screenshots land in tests/artifacts/."""
from __future__ import annotations

import re

from urllib.parse import unquote

import pytest
from PIL import Image

from .browser import browser_page, open_app

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
        # A tag chip and a preset insert their fragments.
        page.get_by_text("Tags and presets").click()
        page.locator("#text-chips-lighting").get_by_text("golden hour", exact=True).click()
        page.locator("#text-preset-outfits input").click()
        page.get_by_role("option", name="Explorer gear").click()
        page.wait_for_function(
            "() => { const v = document.querySelector('#text-prompt textarea').value;"
            " return v.includes('golden hour') && v.includes('olive field jacket'); }", timeout=10_000
        )
        page.screenshot(path=str(artifacts / "text-mode-chips.png"), full_page=True)
        price = page.locator("#text-price").inner_text()
        assert "= 1 credit" in price and "you have 50 credits" in price
        # the picked model's prompt guidance sits by the prompt box, and follows the pick
        assert "Tag-style prompts work best" in page.locator("#text-prompt-note").inner_text()
        page.locator("#text-model input").click()
        page.get_by_role("option", name="FLUX.1 [dev]").first.click()
        page.locator("#text-prompt-note").get_by_text("long prompts are read in full").wait_for(timeout=10_000)
        page.locator("#text-model input").click()
        page.get_by_role("option", name="SDXL base 1.0").first.click()
        page.locator("#text-prompt-note").get_by_text("Tag-style prompts work best").wait_for(timeout=10_000)
        page.locator("#text-generate").click()
        image = page.locator("#text-gallery img").first
        image.wait_for(state="visible", timeout=60_000)
        page.locator("#text-notice").get_by_text("offline preview").wait_for(timeout=10_000)
        page.locator("#account-bar").get_by_text("49 credits").wait_for(timeout=10_000)
        assert "balance now 49 credits" in page.locator("#text-notice").inner_text()
        assert "golden hour" in page.locator("#text-info").inner_text()
        made = page.locator("#text-gallery img").first.get_attribute("src")
        assert made

        # Dropping that PNG back in fills the form with its settings.
        served = unquote(made.split("file=", 1)[1])  # the PNG the browser was served (gradio's copy, same bytes)
        prompt.fill("something unrelated")
        page.get_by_text("Reuse settings from a PNG").click()
        page.locator("#text-settings-png input[type=file]").set_input_files(served)
        page.locator("#text-settings-note").get_by_text("Settings read from the PNG").wait_for(timeout=45_000)  # a loaded 2-core run
        assert "golden hour" in prompt.input_value()
        page.screenshot(path=str(artifacts / "text-mode-after.png"), full_page=True)
        src = image.get_attribute("src")
        assert src and ".png" in src

        # History: the image is there; "reuse prompt" fills Text mode with its settings.
        prompt.fill("something else")
        page.get_by_role("tab", name="History").click()
        page.locator("#history-gallery img").first.wait_for(state="visible", timeout=20_000)
        page.locator("#history-gallery img").first.click()
        page.locator("#history-details").get_by_text("silver-haired mentor", exact=False).first.wait_for(timeout=10_000)
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
        # one row per charge (the capture folds into its reservation), readable kinds, headers not split per letter
        assert "Charged" in ledger and "Grant" in ledger, ledger
        # two rows (their times): the grant and the one charge, no 0-credit capture row
        assert len(re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", ledger)) == 2, ledger
        header = page.locator("#credits-ledger th").first.bounding_box()
        assert header is not None and header["height"] < 60, header
        # every top-level tab opens
        for tab in ["Figures", "Video", "Characters", "Compare"]:
            page.get_by_role("tab", name=tab, exact=True).click()

        # A reload keeps the session (token in browser storage): same balance, no new grant.
        page.reload(wait_until="load")
        page.locator("#account-bar").get_by_text("49 credits").wait_for(timeout=20_000)
    with Image.open(artifacts / "text-mode-after.png") as shot:
        assert shot.size[0] == 1400


def test_quick_figure_walkthrough_in_the_browser(app_server, artifacts):
    url, _ = app_server
    with browser_page(height=1100) as page:
        page.goto(url, wait_until="load")
        page.locator("#account-bar").get_by_text("credits").wait_for(timeout=20_000)
        page.get_by_role("tab", name="Figures", exact=True).click()
        page.get_by_role("tab", name="Quick").click()
        page.locator("#quick-archetype").get_by_text("Academic / mentor").click()
        page.locator("#quick-parts").get_by_text("portrait of an adult scholar").wait_for(timeout=10_000)
        page.screenshot(path=str(artifacts / "quick-1-archetype.png"), full_page=True)
        picks = {1: ("#quick-face", "Heart-shaped, pointed chin"), 2: ("#quick-hair_colour", "Auburn"),
                 3: ("#quick-eyes", "Green"), 4: ("#quick-feature", "Freckles")}
        for step in range(7):
            if step in picks:
                picker, label = picks[step]
                page.locator(picker).get_by_text(label, exact=True).click()
            page.locator(f"#quick-next-{step}").click()
        parts = page.locator("#quick-parts").inner_text()
        for phrase in ("heart-shaped face", "auburn hair", "moss-green eyes", "freckles across the nose", "tweed blazer"):
            assert phrase in parts, parts
        prompt = page.locator("#quick-prompt textarea")
        prompt.wait_for(state="visible", timeout=10_000)
        assert "moss-green eyes" in prompt.input_value()
        page.locator("#quick-model input").click()
        page.get_by_role("option", name="SDXL base 1.0").first.click()
        page.screenshot(path=str(artifacts / "quick-2-review.png"), full_page=True)
        page.locator("#quick-generate").click()
        first_take = page.locator("#quick-takes button img, #quick-takes img").first
        first_take.wait_for(state="visible", timeout=90_000)
        page.locator("#quick-takes img").nth(1).click()
        page.locator("#quick-saved").get_by_text("Take 2 will be the canonical image").wait_for(timeout=10_000)
        page.locator("#quick-name input, #quick-name textarea").first.fill("Professor Hale")
        page.locator("#quick-save").click()
        page.locator("#quick-saved").get_by_text("Saved Professor Hale").wait_for(timeout=20_000)
        page.screenshot(path=str(artifacts / "quick-3-saved.png"), full_page=True)

        page.get_by_role("tab", name="All Figures").click()
        page.locator("#figures-gallery img").first.wait_for(state="visible", timeout=20_000)
        page.locator("#figures-gallery img").first.click()
        page.locator("#figure-title").get_by_text("Professor Hale").wait_for(timeout=10_000)
        page.screenshot(path=str(artifacts / "all-figures.png"), full_page=True)
        assert "★ canonical · take" in page.locator("#figure-takes").inner_text()

        # Make video: Video > Figure to Video opens with this figure; the default Action makes the first click work.
        page.get_by_role("button", name="Make video").click()
        page.locator("#f2v-generate").wait_for(state="visible", timeout=10_000)
        page.wait_for_function("() => document.querySelector('#f2v-figure input').value.includes('Professor Hale')", timeout=10_000)
        page.locator("#f2v-price").get_by_text("20 credits").wait_for(timeout=10_000)
        page.locator("#f2v-generate").click()
        page.locator("#f2v-video video").wait_for(state="attached", timeout=120_000)
        page.wait_for_function("() => document.querySelector('#f2v-video video').readyState >= 2", timeout=30_000)
        page.locator("#account-bar").get_by_text("28 credits").wait_for(timeout=10_000)
        page.screenshot(path=str(artifacts / "figure-to-video.png"), full_page=True)

        # Remix the saved figure: same face, new scene.
        page.get_by_role("tab", name="Images", exact=True).click()
        page.get_by_role("tab", name="Figure Remix").click()
        page.wait_for_function("() => document.querySelector('#remix-figure input').value.includes('Professor Hale')", timeout=15_000)
        page.locator("#remix-generate").click()
        page.locator("#remix-gallery img").first.wait_for(state="visible", timeout=120_000)
        page.locator("#remix-notice").get_by_text("Identity score").wait_for(timeout=10_000)
        page.screenshot(path=str(artifacts / "figure-remix.png"), full_page=True)

        # Create character: All Figures' button opens Characters on this figure; save, gallery, card export.
        page.get_by_role("tab", name="Figures", exact=True).click()
        page.get_by_role("tab", name="All Figures").click()
        page.locator("#figures-gallery img").first.click()
        page.locator("#figure-title").get_by_text("Professor Hale").wait_for(timeout=10_000)
        page.get_by_role("button", name="Create character").click()
        page.locator("#character-save").wait_for(state="visible", timeout=10_000)
        page.wait_for_function("() => document.querySelector('#character-figure input').value.includes('Professor Hale')", timeout=10_000)
        page.locator("#character-avatar-source").get_by_label("The figure's canonical image").wait_for(timeout=10_000)
        assert page.locator("#character-avatar-source input[value='figure']").is_checked()
        page.get_by_text("Scenario, personality, backstory").click()  # the mentor archetype's voice, pre-filled
        page.locator("#character-personality-voice").get_by_text("from the Academic / mentor archetype").wait_for(timeout=10_000)
        assert "Answers a question with a sharper one" in page.locator("#character-personality textarea").input_value()
        page.locator("#character-save").click()
        page.locator(".toast-body, .toast-wrap").get_by_text("Name is required").first.wait_for(timeout=10_000)
        page.locator(".toast-close").first.click()
        page.locator("#character-name textarea, #character-name input").first.fill("Professor Hale")
        page.locator("#character-intro textarea, #character-intro input").first.fill("A retired scholar of old maps.")
        page.locator("#character-preset-tags").get_by_label("mentor").check()
        page.locator("#character-custom-tags textarea, #character-custom-tags input").first.fill("scholar")
        page.locator("#character-first_mes textarea").fill("Ah, a visitor. Mind the maps.")
        page.locator("#character-save").click()
        page.locator("#character-status").get_by_text("Created Professor Hale").wait_for(timeout=15_000)
        page.locator("#character-main-image img").wait_for(state="visible", timeout=10_000)
        page.locator("#character-add-choice input").click()
        page.get_by_role("option").first.click()
        page.locator("#character-add").click()
        page.locator("#character-status").get_by_text("Added to the gallery").wait_for(timeout=15_000)
        page.locator("#character-images img").first.click()
        page.locator("#character-use-gallery").click()
        page.locator("#character-status").get_by_text("The selected image is the main image").wait_for(timeout=15_000)
        page.locator("#character-export").click()
        page.locator("#character-card-file").get_by_text("professor-hale-png-v3").first.wait_for(timeout=15_000)
        page.screenshot(path=str(artifacts / "character.png"), full_page=True)


def test_compare_in_the_browser(app_server, artifacts):
    url, _ = app_server
    with browser_page() as page:
        page.goto(url, wait_until="load")
        page.locator("#account-bar").get_by_text("50 credits").wait_for(timeout=20_000)
        page.get_by_role("tab", name="Compare", exact=True).click()
        price = page.locator("#compare-price")
        price.get_by_text("= 2 credits").wait_for(timeout=10_000)
        assert "SDXL base 1.0 1 + FLUX.1 [schnell] 1" in price.inner_text() and "you have 50 credits" in price.inner_text()
        page.screenshot(path=str(artifacts / "compare-before.png"), full_page=True)
        # A third model: the price follows before anything runs.
        page.locator("#compare-models").get_by_text("FLUX.1 [dev]", exact=False).first.click()
        price.get_by_text("= 6 credits").wait_for(timeout=10_000)
        page.locator("#compare-run").click()
        page.locator("#compare-gallery img").nth(2).wait_for(state="visible", timeout=120_000)
        page.locator("#compare-notice").get_by_text("balance now 44 credits").wait_for(timeout=10_000)
        page.locator("#account-bar").get_by_text("44 credits").wait_for(timeout=10_000)
        table = page.locator("#compare-table").inner_text()
        assert "FLUX.1 [dev]" in table and "offline preview" in table
        page.screenshot(path=str(artifacts / "compare-after.png"), full_page=True)


def test_text_to_video_says_it_is_for_members(app_server, artifacts):
    url, _ = app_server
    with browser_page() as page:
        open_app(page, url, "Video")
        page.get_by_role("tab", name="Text to Video").click()
        page.locator("#t2v-gate").get_by_text("Text to Video is for members").wait_for(timeout=15_000)
        assert "credits" not in page.locator("#t2v-price").inner_text() and page.locator("#t2v-generate").is_disabled()
        assert "Prompting" in page.locator("#t2v-prompt-note").inner_text()
        page.screenshot(path=str(artifacts / "text-to-video-guest.png"), full_page=True)
