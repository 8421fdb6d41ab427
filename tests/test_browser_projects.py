"""The Projects tab as a visitor meets it in headless chromium: a project, a card with its prompt, the price of three
versions shown before New Version and the balance after, three versions as thumbnails, the 2nd viewed and approved, a
fork from it, the feed's Approved filter in the Gallery view, a search (1 character refused with the service's message,
2+ filtering), a draft that survives a reload, and a stale save that keeps the text; then refs, a scene whose shots
become references, and an uploaded version. Screenshots go to tests/artifacts/projects-*.png."""
from __future__ import annotations

import re

import pytest

from tests.chat_helpers import SKIMAGE

from .browser import browser_page, open_app

pytestmark = pytest.mark.browser

PROMPT = "a lighthouse keeper at dusk, oilskin coat"
DRAFT = "the keeper at blue hour, rain on the lamp glass"


def balance(page) -> int:
    return int(re.search(r"(\d+) credits?", page.locator("#account-bar").inner_text()).group(1))


def text_of(page, elem_id: str) -> str:
    return page.locator(f"#{elem_id}").inner_text()


def wait_text(page, elem_id: str, text: str, timeout: int = 20_000) -> None:
    page.locator(f"#{elem_id}").get_by_text(text).first.wait_for(timeout=timeout)


def prompt_value(page) -> str:
    return page.locator("#projects-prompt textarea").input_value()


def test_a_project_card_versions_fork_approval_feed_search_and_a_draft_that_survives_a_reload(app_server, artifacts):
    url, services = app_server
    with browser_page(height=1700) as page:
        open_app(page, url, "Projects")
        wait_text(page, "projects-card-hint", "Pick a card or make one")
        page.locator("#projects-new-name input, #projects-new-name textarea").first.fill("Lighthouse")
        page.locator("#projects-create").click()
        wait_text(page, "projects-top-status", "created")
        page.wait_for_function("() => document.querySelector('#projects-project input').value.startsWith('Lighthouse')", timeout=15_000)

        page.locator("#projects-new-card-title input, #projects-new-card-title textarea").first.fill("Keeper")
        page.locator("#projects-new-card").click()
        wait_text(page, "projects-status", "New card")
        assert "No versions yet" in text_of(page, "projects-banner")
        page.locator("#projects-prompt textarea").press_sequentially(PROMPT, delay=5)
        wait_text(page, "projects-draft-status", "at ")  # auto-saved as it was typed: "Saved draft (revision n) at hh:mm:ss"
        page.wait_for_function(f"() => document.querySelector('#projects-prompt textarea').value === {PROMPT!r}")

        # the refine chat before a first version: two clicked suggestions, the full prompt expanded by a click
        assert "free" in text_of(page, "projects-refiner") and "offline refiner" in text_of(page, "projects-refiner")
        page.locator("#projects-suggest-camera").get_by_text("close-up portrait", exact=True).click()
        page.locator("#projects-suggest-style").get_by_text("cinematic film still", exact=True).click()
        page.locator("#projects-refine-suggest").click()
        chat = page.locator("#projects-refine-chat")
        chat.get_by_text("Full prompt (click to expand)").first.wait_for(timeout=20_000)
        chat.get_by_text("Full prompt (click to expand)").first.click()
        page.wait_for_function("() => document.querySelector('#projects-refine-chat').innerText.includes('lighthouse keeper at dusk')",
                               timeout=10_000)  # only the expanded prompt holds the whole prompt
        expanded = chat.inner_text()
        chat.screenshot(path=str(artifacts / "projects-refine-chat.png"))
        assert "cinematic film still" in expanded and PROMPT.split(",")[0] in expanded
        assert "New Version with this prompt" in page.locator("#projects-refine-new").inner_text()
        assert prompt_value(page) == PROMPT  # the proposal waits in the chat; the editor keeps what was typed
        page.locator("#projects-refine").scroll_into_view_if_needed()
        page.screenshot(path=str(artifacts / "projects-refine.png"), full_page=True)

        # the price of three versions shows before the click: per version × count, the model, the refs
        page.locator("#projects-count").get_by_text("x3", exact=True).click()
        wait_text(page, "projects-quote", "3 versions ×")
        quote = text_of(page, "projects-quote")
        per, total = map(int, re.search(r"3 versions × (\d+) credits? = (\d+) credits?", quote).groups())
        assert total == 3 * per and "FLUX.2 [dev]" in quote and "Refs used: none" in quote
        assert f"({total} credits)" in page.locator("#projects-new-version").inner_text()
        page.screenshot(path=str(artifacts / "projects-card-quote.png"), full_page=True)

        start = balance(page)
        page.locator("#projects-new-version").click()
        wait_text(page, "projects-status", "Started 3 versions", timeout=60_000)
        page.screenshot(path=str(artifacts / "projects-generating.png"), full_page=True)
        wait_text(page, "projects-status", "Made v1, v2, v3", timeout=240_000)
        assert f"charged {total} credits" in text_of(page, "projects-status")
        page.wait_for_function(f"() => /{start - total} credits/.test(document.querySelector('#account-bar').innerText)", timeout=15_000)
        assert balance(page) == start - total  # exactly the price shown before the click
        assert page.locator("#projects-versions img").count() == 3
        assert "Viewing v3" in text_of(page, "projects-banner")
        page.screenshot(path=str(artifacts / "projects-versions.png"), full_page=True)

        # the 2nd version: viewed, approved (that one only), forked
        page.locator("#projects-versions img").nth(1).click()
        wait_text(page, "projects-banner", "Viewing v2")
        assert "not the latest" in text_of(page, "projects-banner") and page.locator("#projects-latest").is_visible()
        assert "v2" in text_of(page, "projects-viewed") and PROMPT in text_of(page, "projects-viewed")
        page.locator("#projects-approve").click()
        wait_text(page, "projects-status", "v2 approved")
        wait_text(page, "projects-versions", "v2 · 🟢 approved")
        assert "v3 · 🟢" not in text_of(page, "projects-versions") and "v1 · 🟢" not in text_of(page, "projects-versions")
        page.locator("#projects-fork-name input, #projects-fork-name textarea").first.fill("Blue hour")
        page.locator("#projects-fork").click()
        wait_text(page, "projects-status", "New direction")
        wait_text(page, "projects-directions", "Blue hour (fork of v2)")
        assert "“Blue hour” has no versions yet: it was forked from v2" in text_of(page, "projects-banner")
        page.locator("#projects-image img").wait_for(state="visible", timeout=15_000)  # the source image, not a blank
        assert "v2" in page.locator("#projects-card-refs").inner_text()  # the source image is the fork's first ref
        assert "Refs used: v2" in text_of(page, "projects-quote")
        page.screenshot(path=str(artifacts / "projects-fork.png"), full_page=True)

        # the feed: Approved in the Gallery view; a search of the prompts
        page.get_by_role("tab", name="Feed", exact=True).click()
        wait_text(page, "projects-feed-summary", "3 versions")
        assert page.locator("#projects-feed-cards").get_by_text(PROMPT).count() == 3
        page.locator("#projects-feed-approved input").check()
        wait_text(page, "projects-feed-summary", "1 version · approved")
        page.locator("#projects-feed-view").get_by_text("Gallery", exact=True).click()
        page.locator("#projects-feed-gallery img").first.wait_for(state="visible", timeout=15_000)
        assert page.locator("#projects-feed-gallery img").count() == 1 and "v2 🟢" in text_of(page, "projects-feed-gallery")
        page.screenshot(path=str(artifacts / "projects-gallery.png"), full_page=True)
        page.locator("#projects-feed-view").get_by_text("Cards", exact=True).click()  # the same filter in the Cards view
        page.locator("#projects-feed-cards").get_by_text("approved").first.wait_for(timeout=15_000)
        assert page.locator("#projects-feed-cards .projects-feed-card").count() == 1
        assert "Keeper · v2" in text_of(page, "projects-feed-cards") and PROMPT in text_of(page, "projects-feed-cards")
        page.screenshot(path=str(artifacts / "projects-feed-cards.png"), full_page=True)
        page.locator("#projects-feed-approved input").uncheck()
        wait_text(page, "projects-feed-summary", "3 versions")
        page.locator("#projects-feed-mine input").check()
        wait_text(page, "projects-feed-summary", "3 versions · mine")
        page.locator("#projects-feed-mine input").uncheck()
        wait_text(page, "projects-feed-summary", "3 versions · page")
        page.locator("#projects-feed-view").get_by_text("Gallery", exact=True).click()
        page.locator("#projects-feed-gallery img").nth(2).wait_for(state="visible", timeout=15_000)
        page.locator("#projects-feed-search input, #projects-feed-search textarea").first.fill("k")
        page.locator("#projects-feed-go").click()
        page.locator(".toast-body, .toast-wrap").get_by_text("Search needs at least 2 characters.").first.wait_for(timeout=20_000)
        assert "Search needs at least 2 characters." in text_of(page, "projects-feed-summary")
        assert page.locator("#projects-feed-gallery img").count() == 3  # the results stay as they were
        page.screenshot(path=str(artifacts / "projects-search-refused.png"), full_page=True)
        page.locator("#projects-feed-search input, #projects-feed-search textarea").first.fill("oilskin")
        page.locator("#projects-feed-go").click()
        wait_text(page, "projects-feed-summary", "3 versions · prompt contains “oilskin”")
        page.locator("#projects-feed-search input, #projects-feed-search textarea").first.fill("zebra")
        page.locator("#projects-feed-go").click()
        wait_text(page, "projects-feed-summary", "0 versions")
        page.screenshot(path=str(artifacts / "projects-search.png"), full_page=True)

        # a draft survives a reload: the editor reloads the saved draft
        page.get_by_role("tab", name="Cards", exact=True).click()
        page.locator("#projects-prompt textarea").fill(DRAFT)
        page.locator("#projects-save").click()
        wait_text(page, "projects-draft-status", "Saved draft")
        page.reload(wait_until="load")
        page.locator("#account-bar").get_by_text("credits").wait_for(timeout=20_000)
        page.get_by_role("tab", name="Projects", exact=True).click()
        page.wait_for_function(f"() => document.querySelector('#projects-prompt textarea')?.value === {DRAFT!r}", timeout=30_000)
        assert "Blue hour" in text_of(page, "projects-directions")
        page.screenshot(path=str(artifacts / "projects-reload.png"), full_page=True)

        # the owner's members panel: the invite link and their member id
        page.get_by_text("Members, invites and project settings").click()
        wait_text(page, "projects-members", "Invite link")
        members = text_of(page, "projects-members")
        assert "?invite=" in members and "Guest · owner · you" in members
        page.screenshot(path=str(artifacts / "projects-members.png"), full_page=True)

        # another member saves meanwhile: this editor's save is refused with the message and its text stays
        owner = services.identity.account(re.search(r"Your member id[^:]*:\s*(\S+)", members).group(1))
        project = services.projects.projects(owner)[0]
        card = services.projects.cards(owner, project["id"])[0]
        services.projects.save_draft(owner, card["id"], "someone else's words", services.projects.card(owner, card["id"])["revision"])
        page.locator("#projects-prompt textarea").fill(DRAFT + ", mine")
        page.locator("#projects-save").click()
        page.locator(".toast-body, .toast-wrap").get_by_text("Someone saved this card's prompt").first.wait_for(timeout=20_000)
        wait_text(page, "projects-draft-status", "Not saved")
        assert prompt_value(page) == DRAFT + ", mine"
        page.screenshot(path=str(artifacts / "projects-stale-save.png"), full_page=True)


def test_refs_a_scene_whose_shots_become_references_and_an_uploaded_version(app_server, artifacts):
    url, _ = app_server
    with browser_page(height=1500) as page:
        open_app(page, url, "Projects")
        page.locator("#projects-new-name input, #projects-new-name textarea").first.fill("Moon base")
        page.locator("#projects-create").click()
        wait_text(page, "projects-top-status", "created")

        # a ref from an upload (the upload checks and the output check run on it)
        page.get_by_role("tab", name="Refs", exact=True).click()
        page.locator("#projects-ref-upload input[type=file]").set_input_files(str(SKIMAGE / "astronaut.png"))
        page.locator("#projects-ref-upload img").first.wait_for(state="visible", timeout=15_000)
        page.locator("#projects-ref-kind").get_by_text("character", exact=True).click()
        page.locator("#projects-ref-name input, #projects-ref-name textarea").first.fill("Astronaut")
        page.locator("#projects-ref-add").click()
        wait_text(page, "projects-ref-status", "Added the ref “Astronaut” (character)")
        page.locator("#projects-refs img").first.wait_for(state="visible", timeout=15_000)
        page.screenshot(path=str(artifacts / "projects-refs.png"), full_page=True)

        # a scene with the ref in its pool
        page.get_by_role("tab", name="Scenes", exact=True).click()
        page.locator("#projects-scene-name input, #projects-scene-name textarea").first.fill("Crater rim")
        page.locator("#projects-scene-create").click()
        wait_text(page, "projects-scene-status", "created")
        page.locator("#projects-scene-ref input").click()
        page.get_by_role("option", name="Astronaut (character)").click()
        page.locator("#projects-scene-add").click()
        wait_text(page, "projects-scene-status", "has 1 shot in its pool")
        page.locator("#projects-scene-shots img").first.wait_for(state="visible", timeout=15_000)
        page.screenshot(path=str(artifacts / "projects-scene.png"), full_page=True)

        # a card set in the scene: the price line names the shot it will pass; an uploaded version is free
        page.get_by_role("tab", name="Cards", exact=True).click()
        page.locator("#projects-new-card").click()
        wait_text(page, "projects-status", "New card")
        page.locator("#projects-card-scene input").click()
        page.get_by_role("option", name="Crater rim (1 shot)").click()
        wait_text(page, "projects-quote", "Refs used: Astronaut (character) from the scene")
        assert "(reference," in text_of(page, "projects-quote")  # one ref: the reference task
        start = balance(page)
        page.get_by_text("Upload your own version").click()
        page.locator("#projects-upload input[type=file]").set_input_files(str(SKIMAGE / "coffee.png"))
        page.locator("#projects-upload img").first.wait_for(state="visible", timeout=15_000)
        page.locator("#projects-upload-go").click()
        wait_text(page, "projects-status", "Added your image as v1 (uploaded; free)")
        wait_text(page, "projects-versions", "v1 · 📤 uploaded")
        assert "Viewing v1" in text_of(page, "projects-banner") and balance(page) == start
        page.screenshot(path=str(artifacts / "projects-upload.png"), full_page=True)
