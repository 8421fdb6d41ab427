"""As a visitor would meet them in headless chromium: user text is shown as text (no markup, no remote fetch), and
Stop ends a running generation with a refund. Screenshots land in tests/artifacts/."""
from __future__ import annotations

import http.server
import threading
import time

import pytest

from .browser import browser_page, open_app, save_quick_figure

pytestmark = pytest.mark.browser


@pytest.fixture
def watched_server():
    """A local server that counts every request made to it: nothing in the app may fetch from it."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], hits
    finally:
        server.shutdown()


def test_user_text_renders_as_text_everywhere(app_server, artifacts, watched_server):
    url, _ = app_server
    port, hits = watched_server
    name = f"![x](http://127.0.0.1:{port}/a) <img src=//127.0.0.1:{port}/b>"
    assert len(name) <= 60
    with browser_page(height=1100) as page:
        open_app(page, url, "Figures", "Quick")
        save_quick_figure(page, name)
        saved = page.locator("#quick-saved")
        saved.get_by_text("with 2 take(s)").wait_for(timeout=20_000)
        assert name in saved.inner_text()  # the literal characters, as typed

        page.get_by_role("tab", name="All Figures").click()
        page.locator("#figures-gallery img").first.wait_for(state="visible", timeout=20_000)
        page.locator("#figures-gallery img").first.click()
        title = page.locator("#figure-title")
        title.get_by_text("take(s)").wait_for(timeout=10_000)
        assert name in title.inner_text()
        page.screenshot(path=str(artifacts / "user-text-figure.png"), full_page=True)

        page.get_by_role("button", name="Create character").click()
        page.locator("#character-save").wait_for(state="visible", timeout=10_000)
        page.locator("#character-name textarea, #character-name input").first.fill(f"**Bold** [link](http://127.0.0.1:{port}/c)")
        page.locator("#character-intro textarea, #character-intro input").first.fill(f"[more](http://127.0.0.1:{port}/i) ![x](http://127.0.0.1:{port}/x.png)")
        page.locator("#character-custom-tags textarea, #character-custom-tags input").first.fill("mentor")
        page.locator("#character-first_mes textarea").fill("Hello.")
        page.locator("#character-save").click()
        status = page.locator("#character-status")
        status.get_by_text("Created").wait_for(timeout=15_000)
        assert f"**Bold** [link](http://127.0.0.1:{port}/c)" in status.inner_text()
        assert name in status.inner_text()  # the figure's name in the same message
        page.screenshot(path=str(artifacts / "user-text-character.png"), full_page=True)

        assert page.locator(f"img[src*='{port}'], a[href*='{port}']").count() == 0
        time.sleep(0.5)
    assert hits == [], f"the browser fetched {hits} from a URL in user text"


def test_stop_ends_a_generation_and_refunds_it(app_server, artifacts):
    url, services = app_server
    idle = time.monotonic() + 120  # the shared app may still finish an earlier test's background work: start on a quiet machine
    while any(services.jobs._running.values()) and time.monotonic() < idle:
        time.sleep(0.2)
    with browser_page() as page:
        open_app(page, url, "Images", "Text", balance="50 credits")
        page.get_by_text("Advanced settings", exact=True).click()
        page.locator("#text-steps input[type=number]").fill("200")
        page.locator("#text-steps input[type=number]").press("Enter")
        page.locator("#text-count input[type=number]").fill("8")
        page.locator("#text-count input[type=number]").press("Enter")
        page.locator("#text-price").get_by_text("= 8 credits").wait_for(timeout=10_000)
        page.locator("#text-generate").click()
        deadline = time.monotonic() + 60
        while not any(services.jobs._running.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any(services.jobs._running.values()), "the generation never started"
        page.screenshot(path=str(artifacts / "stop-running.png"), full_page=True)
        # the DOM click itself: on a loaded 2-core machine the busy page can miss Playwright's actionability window
        page.locator("#text-stop").dispatch_event("click", timeout=90_000)
        page.locator(".toast-body, .toast-wrap").get_by_text("Generation cancelled; nothing was charged").first.wait_for(timeout=20_000)
        page.locator("#account-bar").get_by_text("50 credits").wait_for(timeout=10_000)
        page.screenshot(path=str(artifacts / "stop-cancelled.png"), full_page=True)
