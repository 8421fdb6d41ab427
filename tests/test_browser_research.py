"""The Research tab as a researcher meets it in headless chromium: build a small grid (priced before it runs, one
progress bar, balance after), vote in the arena and in the likeness arena on a figure, and open the leaderboard."""
from __future__ import annotations

import re

import pytest

from .browser import browser_page, open_app, save_quick_figure

pytestmark = pytest.mark.browser


def balance(page) -> int:
    return int(re.search(r"(\d+) credits", page.locator("#account-bar").inner_text()).group(1))


def test_a_grid_two_arenas_and_the_leaderboard(app_server, artifacts):
    url, _ = app_server
    with browser_page(height=2200) as page:
        open_app(page, url, "Figures")
        save_quick_figure(page, "Wren")  # the likeness arena runs on one of your figures
        page.get_by_text("Saved").first.wait_for(timeout=60_000)
        page.get_by_role("tab", name="Research", exact=True).click()
        price = page.locator("#grid-price")
        price.get_by_text("cells").wait_for(timeout=20_000)
        assert "8 cells" in price.inner_text()  # 2 portrait prompts x 2 models x seeds 1, 2: priced before the run
        quoted = int(re.search(r"(\d+) credits", price.inner_text()).group(1))
        before = balance(page)
        page.screenshot(path=str(artifacts / "research-grid-before.png"), full_page=True)

        page.locator("#grid-run").click()
        page.locator("#grid-view img").nth(7).wait_for(state="visible", timeout=180_000)
        page.locator("#grid-view").get_by_text("done", exact=False).first.wait_for(timeout=60_000)
        page.wait_for_function("() => !document.querySelector('#grid-view progress')", timeout=120_000)
        assert "8 done, 0 failed" in page.locator("#grid-view").inner_text()
        page.wait_for_function(f"() => !document.querySelector('#account-bar').innerText.includes('{before} credits')", timeout=30_000)
        assert before - balance(page) == quoted
        page.screenshot(path=str(artifacts / "research-grid-after.png"), full_page=True)

        # after a reload, History lists the grid and opens it again in Research
        page.reload(wait_until="load")
        page.locator("#account-bar").get_by_text("credits").wait_for(timeout=20_000)
        page.get_by_role("tab", name="History", exact=True).click()
        page.locator("#history-grids input").click()
        page.get_by_role("option").first.click()
        page.locator("#history-open-grid").click()
        page.locator("#grid-view").get_by_text("8 done, 0 failed").wait_for(timeout=30_000)
        assert page.locator("#grid-view img").count() == 8
        page.locator("#grid-export").click()
        page.locator("#grid-exported a").first.wait_for(timeout=60_000)
        assert ".parquet" in (page.locator("#grid-exported a").first.get_attribute("href") or "")
        page.get_by_role("tab", name="Research", exact=True).click() if not page.locator("#grid-view").is_visible() else None

        page.get_by_role("tab", name="Arena", exact=True).click()
        page.locator("#arena-next").click()
        page.locator("#arena-question").get_by_text("Which image is better?").wait_for(timeout=30_000)
        page.locator("#arena-left img").wait_for(state="visible", timeout=30_000)
        assert "sdxl" not in page.locator("#arena-question").inner_text().lower()
        page.locator("#arena-vote-left").click()
        page.locator("#arena-revealed").get_by_text("is counted").wait_for(timeout=30_000)
        page.screenshot(path=str(artifacts / "research-arena-voted.png"), full_page=True)

        page.get_by_role("tab", name="Likeness arena", exact=True).click()
        page.screenshot(path=str(artifacts / "research-likeness-open.png"), full_page=True)
        page.locator("#likeness-figure input").click()
        page.get_by_role("option", name="Wren").first.click()
        page.locator("#likeness-generate").click()
        page.locator("#likeness-question").get_by_text("Which keeps the character?").wait_for(timeout=180_000)
        for image in ("#likeness-canonical img", "#likeness-left img", "#likeness-right img"):
            page.locator(image).wait_for(state="visible", timeout=30_000)
        page.locator("#likeness-vote-right").click()
        page.locator("#likeness-revealed").get_by_text("is counted").wait_for(timeout=30_000)
        page.screenshot(path=str(artifacts / "research-likeness-voted.png"), full_page=True)

        page.get_by_role("tab", name="Leaderboard", exact=True).click()
        page.locator("#board-summary").get_by_text("vote(s) counted").wait_for(timeout=30_000)
        page.wait_for_function("() => document.querySelector('#board-table').innerText.includes('sdxl-base') "
                               "|| document.querySelector('#board-table').innerText.includes('playground')", timeout=30_000)
        page.screenshot(path=str(artifacts / "research-leaderboard.png"), full_page=True)
        page.locator("#board-kind").get_by_text("likeness").click()
        page.wait_for_function("() => document.querySelector('#board-table').innerText.includes('|reference')", timeout=30_000)
        page.screenshot(path=str(artifacts / "research-leaderboard-likeness.png"), full_page=True)


def test_a_grid_mistake_is_named_beside_the_form_and_keeps_every_panel(app_server, artifacts):
    """One model picked: the price line says what to change before anything runs; pressing Run anyway shows the same
    message as a toast, charges nothing and leaves every panel as it was."""
    url, _ = app_server
    with browser_page(height=1600) as page:
        open_app(page, url, "Research")
        page.locator("#grid-price").get_by_text("cells").wait_for(timeout=20_000)
        before = balance(page)
        page.locator("#grid-models").get_by_label("playground-v2.5").uncheck()
        page.locator("#grid-price").get_by_text("Pick 2 to 8 different models").wait_for(timeout=20_000)
        page.locator("#grid-run").click()
        page.locator(".toast-body, .toast-wrap").get_by_text("Pick 2 to 8 different models").first.wait_for(timeout=20_000)
        for panel in ("#grid-models", "#grid-seeds", "#grid-set", "#grid-run", "#grid-list"):
            assert page.locator(panel).is_visible(), f"{panel} was blanked"
        assert page.locator("#grid-models").get_by_label("sdxl-base").is_checked()
        assert balance(page) == before
        page.screenshot(path=str(artifacts / "research-grid-mistake.png"), full_page=True)
