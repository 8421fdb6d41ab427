"""The identity monitor as a visitor meets it in headless chromium: All Figures › a figure whose canonical image is a
real photograph (scikit-image's astronaut) shows its Identity section: the outputs made from it with their SimRef,
lowest first, a copy-paste flag on the copied face, "no face" last; clicking an edit shows its chain back to the
canonical image. The outputs are made through the real paid path; only the tiny models' pictures are replaced by
real photos (tests/test_identity_monitor.py's `scripted`)."""
from __future__ import annotations

import sqlalchemy as sa
import pytest
from PIL import Image, ImageEnhance, ImageOps

from pipelines.types import Task
from services.accounts.tables import accounts

from .browser import browser_page, open_app
from .test_default_engines import ASTRONAUT, TOM
from .test_identity_monitor import scripted  # noqa: F401 - a fixture
from .test_remix import make_figure

pytestmark = pytest.mark.browser


def visitor_ids(services) -> set[str]:
    with services.db.engine.connect() as conn:
        return set(conn.execute(sa.select(accounts.c.id)).scalars())


def test_all_figures_shows_identity_lowest_first_with_the_copy_paste_flag(app_server, scripted, artifacts):  # noqa: F811
    url, services = app_server
    before = visitor_ids(services)
    with browser_page(height=1800) as page:
        open_app(page, url)
        (account_id,) = visitor_ids(services) - before  # the browser's own session
        account = services.identity.account(account_id)
        scripted(services, {("sdxl-base", Task.TEXT_TO_IMAGE): [ASTRONAUT, TOM],
                            ("qwen-image-edit", Task.REFERENCE): [ImageOps.mirror(ASTRONAUT), None, TOM, ASTRONAUT.resize((200, 200))],
                            ("qwen-image-edit", Task.EDIT): [ASTRONAUT.resize((150, 150)).resize((512, 512))]})
        figure = make_figure(services, account, "Eileen")
        remix = services.remix.figure_remix(account, prompt="at the fair", model="qwen-image-edit", figure_id=figure.id, count=4, seed=3)
        edit = services.remix.edit_image(account, request_id=remix.request_id, index=3, instruction="softer light", model="qwen-image-edit")
        listing = services.monitor.figure_outputs(account, figure.id)
        assert listing["total"] == 5 and listing["copy_paste"] == 1 and listing["no_face"] == 1

        page.get_by_role("tab", name="Figures", exact=True).click()
        page.get_by_role("tab", name="All Figures").click()
        page.locator("#figures-refresh").click()
        page.locator("#figures-gallery img").first.wait_for(state="visible", timeout=20_000)
        page.locator("#figures-gallery img").first.click()
        box = page.locator("#identity-box")
        box.get_by_text("5 output(s)").wait_for(timeout=20_000)
        page.locator("#identity-gallery img").nth(4).wait_for(state="visible", timeout=20_000)
        summary = page.locator("#identity-summary").inner_text()
        assert "1 look copy-pasted" in summary and "without a face" in summary and "dlib ResNet" in summary, summary
        captions = page.locator("#identity-gallery").inner_text()
        order = [o["sim_ref"] for o in listing["outputs"]]
        assert order[:4] == sorted(order[:4]) and order[4] is None
        shown = [line for line in captions.splitlines() if " · " in line]
        assert shown == [f"{'⚠ copy-paste' if o['copy_paste'] else 'SimRef'} {o['sim_ref']:.3f} · {o['surface']}"
                         if o["sim_ref"] is not None else f"no face · {o['surface']}" for o in listing["outputs"]], captions
        assert page.locator("#identity-next").is_disabled() and page.locator("#identity-previous").is_disabled()  # one page
        box.scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        box.screenshot(path=str(artifacts / "figure-identity.png"))

        # An edit's chain: canonical -> the Remix it was made from -> the edit.
        position = [o["request_id"] for o in listing["outputs"]].index(edit.request_id)
        page.locator("#identity-gallery img").nth(position).click()
        page.locator("#identity-chain").get_by_text("Chain:").wait_for(timeout=20_000)
        chain = page.locator("#identity-chain").inner_text()
        assert chain.startswith("Chain: canonical 1.000 → Remix") and "→ edit" in chain and "drift from the canonical face" in chain
        box.screenshot(path=str(artifacts / "figure-identity-chain.png"))
    with Image.open(artifacts / "figure-identity.png") as shot:
        assert shot.size[0] > 800
