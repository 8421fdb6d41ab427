"""4K on local models: a 2K generation, then a 2x tiled image-to-image upscale of the same model; one reservation
at the 4K price for both stages, one progress bar, and a failure in the upscale stage refunds both."""
from __future__ import annotations

import pytest
from PIL import Image

from pipelines.families import flux as flux_family
from pipelines.family import get_family
from pipelines.types import Task
from pipelines.upscale import tile_boxes
from services.creation.text import TextToImageParams


@pytest.fixture
def db_url(tmp_path):  # the reservation rules are tested on both databases elsewhere
    return f"sqlite:///{tmp_path / 'playground.db'}"


def test_tiles_cover_the_image_with_overlap():
    boxes = tile_boxes(3840, 2176, 1024, 128)
    covered = {(x, y) for x0, y0, x1, y1 in boxes for x in range(x0, x1, 64) for y in range(y0, y1, 64)}
    assert {(x, y) for x in range(0, 3840, 64) for y in range(0, 2176, 64)} <= covered
    assert all(x1 - x0 == 1024 and y1 - y0 == 1024 for x0, y0, x1, y1 in boxes)
    xs = sorted({b[0] for b in boxes})
    assert all(b - a <= 1024 - 128 for a, b in zip(xs, xs[1:]))  # neighbours overlap by at least 128


@pytest.mark.parametrize("ratio", ["16:9", "3:4"])
def test_4k_is_exactly_the_4k_size_at_the_4k_price_with_one_progress_bar(make_services, ratio):
    services = make_services()
    account = services.identity.start(None, ip="10.7.0.1").account
    entry = services.catalogue.get("flux.1-schnell")
    quote = services.catalogue.quote(entry.id, Task.TEXT_TO_IMAGE, ratio, "4K", 2)
    assert quote.total == 2 * services.catalogue.quote(entry.id, Task.TEXT_TO_IMAGE, ratio, "2K", 2).total
    steps: list[tuple[int, int]] = []
    output = services.text.text_to_image(
        account, TextToImageParams(prompt="a harbour at dawn", model=entry.id, aspect_ratio=ratio, resolution="4K", count=2, seed=9),
        on_step=lambda done, total: steps.append((done, total)))
    assert output.charged == quote.total and services.ledger.balance(account.id) == 50 - quote.total
    assert len(output.files) == 2
    for path in output.files:
        with Image.open(path) as image:
            assert image.size == tuple(entry.size_for(ratio, "4K"))
    stages = output.parameters["stages"]
    assert [s["stage"] for s in stages] == ["generate", "upscale"]
    assert (stages[0]["width"], stages[0]["height"]) == tuple(entry.size_for(ratio, "2K"))
    assert output.parameters["upscale"]["tiles"] > 1 and output.parameters["upscale"]["method"] == "tiled-img2img"
    totals = {total for _, total in steps}
    assert len(totals) == 1  # one bar over both stages
    done = [d for d, _ in steps]
    assert done == sorted(done) and done[-1] == totals.pop()


def test_a_failure_in_the_upscale_stage_refunds_both(make_services, monkeypatch):
    services = make_services()
    account = services.identity.start(None, ip="10.7.0.2").account
    calls = []

    def broken(pipe, request, on_step, cancel):
        calls.append(request.width)
        raise RuntimeError("out of memory in tile 1")

    family = get_family("flux")
    monkeypatch.setitem(family.runners, Task.IMAGE_TO_IMAGE, broken)
    with pytest.raises(Exception, match="out of memory"):
        services.text.text_to_image(account, TextToImageParams(prompt="a harbour", model="flux.1-schnell", resolution="4K", seed=1))
    assert calls, "the upscale stage ran (after the 2K stage)"
    assert services.ledger.balance(account.id) == 50 == services.ledger.total(account.id)
    kinds = [e["kind"] for e in services.ledger.entries(account.id)]
    assert kinds[:2] == ["refund", "reserve"] and kinds.count("reserve") == 1
    assert flux_family.image_to_image is not broken


def test_a_model_without_an_upscale_refuses_4k_before_any_charge(make_services):
    services = make_services()
    account = services.identity.start(None, ip="10.7.0.3").account
    from services.errors import UserError

    with pytest.raises(UserError, match="offers 1:1 at 1K, not 4K"):
        services.text.text_to_image(account, TextToImageParams(prompt="x", model="sdxl-base", resolution="4K"))
    assert services.ledger.balance(account.id) == 50
