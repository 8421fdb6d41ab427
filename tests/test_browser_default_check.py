"""The default install in headless chromium: with what requirements.txt installs (NudeNet and insightface made
unimportable, as in tests/test_default_engines.py), outputs are checked by open_nsfw and the generation record says
so, a public character made from a real photo passes that check, a QA session verifies it, and the Catalogue shows
it. The screenshot lands in tests/artifacts/default-check-catalogue.png."""
from __future__ import annotations

import sys

import pytest

from services.media.png import read_png_metadata

from .browser import browser_page, open_app, verify_and_open_in_catalogue
from .conftest import ADMIN_KEY, launch_app, stop_app
from .test_characters import PHOTO

pytestmark = pytest.mark.browser


def fill(page, elem_id: str, text: str) -> None:
    page.locator(f"#{elem_id} textarea, #{elem_id} input").first.fill(text)


def test_requirements_only_app_checks_with_open_nsfw_and_lists_a_verified_character(tmp_path, tiny_root, monkeypatch, artifacts):
    from gradio_client import Client

    for name in ("nudenet", "insightface"):  # requirements.txt alone
        monkeypatch.setitem(sys.modules, name, None)
    url, demo, services = launch_app(tmp_path / "data", tiny_root)
    try:
        assert services.safety.name == "opennsfw" and services.faces.name == "dlib:resnet128"
        client = Client(url, verbose=False)
        token = client.predict(api_name="/session_start")["token"]
        gallery, info, _, _ = client.predict(prompt="a paper boat", model="sdxl-base", steps=1, seed=5, token=token,
                                             api_name="/text_to_image")
        assert read_png_metadata(gallery[0]["image"])["record"]["output_check"] == "opennsfw"
        (record,) = client.predict(token, api_name="/history")
        assert record["parameters"]["output_check"] == "opennsfw" and record["safety"] == "safe"
        assert client.predict(api_name="/character_options")["output_check"] == "opennsfw"

        with browser_page() as page:
            open_app(page, url, "Characters")
            page.locator("#character-save").wait_for(state="visible", timeout=10_000)
            page.locator("#character-avatar-upload input[type=file]").set_input_files(str(PHOTO))
            page.locator("#character-avatar-upload img").first.wait_for(state="visible", timeout=15_000)
            fill(page, "character-name", "Navigator Sela")
            fill(page, "character-intro", "A deep-space navigator who charts by starlight.")
            page.locator("#character-preset-tags").get_by_label("adventure").check()
            page.locator("#character-visibility").get_by_label("Public (listed once a moderator verifies it)").check()
            page.locator("#character-first_mes textarea").fill("Course plotted. Where to?")
            page.locator("#character-save").click()
            status = page.locator("#character-status")
            status.get_by_text("Created Navigator Sela").wait_for(timeout=30_000)
            assert "pending" in status.inner_text()
            assert "checked by the output check" in page.locator("#character-main-note").inner_text()

            qa = client.predict(admin_key=ADMIN_KEY, api_name="/session_start")["token"]
            (pending,) = [c for c in client.predict(token=qa, api_name="/review_characters") if c["name"] == "Navigator Sela"]
            verify_and_open_in_catalogue(page, client, qa, pending, "sela", "A deep-space navigator")
            page.wait_for_timeout(500)
            page.screenshot(path=str(artifacts / "default-check-catalogue.png"), full_page=True)
        (listed,) = services.characters.catalogue("sela")["characters"]
        assert listed["name"] == "Navigator Sela"
    finally:
        stop_app(demo, services)
