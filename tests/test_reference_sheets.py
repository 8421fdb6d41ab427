"""Advanced reference sheets: full-body options made from the canonical image, one picked; regenerating costs twice
the image price (plans data); Advanced, Group and Figure-to-Video take the picked sheet in place of the canonical."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipelines.types import Task
from services.accounts.plans import load_plans
from services.errors import UserError

from .test_remix import make_figure, spy_calls  # noqa: F401  (fixture)


@pytest.fixture
def db_url(tmp_path):  # the ledger's rules are tested on both databases elsewhere
    return f"sqlite:///{tmp_path / 'playground.db'}"


def same(received, path) -> bool:
    received = received[0] if isinstance(received, list) else received
    with Image.open(path) as original:
        expected = np.asarray(original.convert("RGB").resize(received.size))
    return float(np.abs(np.asarray(received.convert("RGB"), dtype=np.float32) - expected).mean()) < 2.0


def test_a_sheet_offers_options_costs_the_image_price_then_twice(make_services):
    services = make_services()
    account = services.identity.start(None, ip="10.10.0.1").account
    figure = make_figure(services, account)
    terms = load_plans().reference_sheets
    image_price = load_plans().prices.unit(terms.model, Task.REFERENCE)
    assert services.sheets.quote(account, figure.id).total == terms.first * image_price
    before = services.ledger.balance(account.id)
    sheet = services.sheets.generate(account, figure.id, seed=5)
    assert len(sheet.files) == terms.options and sheet.charged == terms.first * image_price
    assert services.ledger.balance(account.id) == before - sheet.charged
    assert services.sheets.quote(account, figure.id).total == terms.regenerate * image_price == 2 * image_price
    again = services.sheets.generate(account, figure.id, seed=6)
    assert again.charged == 2 * image_price
    for path in sheet.files:
        with Image.open(path) as image:
            assert image.size == tuple(services.catalogue.get(terms.model).size_for("3:4", "1K"))


def test_only_this_figures_sheet_can_be_picked(make_services):
    services = make_services()
    account = services.identity.start(None, ip="10.10.0.2").account
    figure, other = make_figure(services, account, "Ivy", 1), make_figure(services, account, "Oak", 2)
    sheet = services.sheets.generate(account, figure.id, seed=5)
    with pytest.raises(UserError, match="not a reference sheet of this figure"):
        services.sheets.pick(account, other.id, sheet.request_id, 0)
    with pytest.raises(UserError, match="Pick one of the sheet's 4 options"):
        services.sheets.pick(account, figure.id, sheet.request_id, 4)
    stranger = services.identity.start(None, ip="10.10.0.3").account
    with pytest.raises(UserError):
        services.sheets.pick(stranger, figure.id, sheet.request_id, 0)
    picked = services.sheets.pick(account, figure.id, sheet.request_id, 2)
    assert picked["reference_sheet"]["idx"] == 2
    assert services.figures.reference(account, figure.id, purpose="advanced").image == sheet.files[2]
    assert services.figures.reference(account, figure.id).image == figure.canonical_path  # Remix keeps the canonical


def test_advanced_group_and_video_take_the_picked_sheet(make_services, spy_calls):
    services = make_services()
    account = services.identity.start(None, ip="10.10.0.4").account
    with services.db.begin() as conn:
        services.ledger.adjust(conn, account.id, 100, "test", "enough for every surface")
    figure, other = make_figure(services, account, "Ivy", 1), make_figure(services, account, "Oak", 2)
    advanced_calls = spy_calls(services, "flux.2-dev", Task.REFERENCE)
    plain = services.remix.advanced_image(account, figure_id=figure.id, description="On a pier.", model="flux.2-dev")
    assert plain.parameters["reference"] == "canonical" and same(advanced_calls[-1]["image"], figure.canonical_path)

    sheet = services.sheets.generate(account, figure.id, seed=5)
    services.sheets.pick(account, figure.id, sheet.request_id, 1)
    chosen = sheet.files[1]
    with Image.open(figure.canonical_path) as canonical:
        assert not same(canonical.convert("RGB"), chosen)  # the two are told apart
    output = services.remix.advanced_image(account, figure_id=figure.id, description="On a pier.", model="flux.2-dev")
    assert output.parameters["reference"] == "sheet" and same(advanced_calls[-1]["image"], chosen)

    group_calls = spy_calls(services, "flux.2-dev", Task.MULTI_REFERENCE)
    group = services.remix.group_image(account, figure_ids=[figure.id, other.id], prompt="two friends", model="flux.2-dev")
    assert group.parameters["references"] == ["sheet", "canonical"]
    assert same(group_calls[-1]["image"][0], chosen) and same(group_calls[-1]["image"][1], other.canonical_path)

    video_calls = spy_calls(services, "ltx-video", Task.IMAGE_TO_VIDEO)
    services.video.figure_to_video(account, figure.id, "wave", model="ltx-video", aspect_ratio="1:1")
    assert same(video_calls[-1]["image"], chosen)
