"""The two image modes of the guide, with their rules (presets/plans.toml [modes]) enforced by the services, and the
prices of Advanced and group images at 2K and 4K against the plans table."""
from __future__ import annotations

import inspect

import pytest
from PIL import Image

from pipelines.types import Task
from services.accounts.plans import load_plans
from services.creation.text import TextToImageParams
from services.errors import UserError

from .test_remix import make_figure


@pytest.fixture
def db_url(tmp_path):  # the paid path's database rules are tested on both databases elsewhere
    return f"sqlite:///{tmp_path / 'playground.db'}"


def guest(services, ip="10.9.0.1"):
    return services.identity.start(None, ip=ip).account


def test_premium_takes_tags_up_to_1000_characters_local_models_and_batches_up_to_8(make_services):
    services = make_services()
    account = guest(services)
    premium = dict(model="sdxl-base", prompt_style="tags", steps=1)
    long_natural = "A quiet harbour at dawn, with fishing boats drifting past the old stone lighthouse. " * 13
    assert 1000 < len(long_natural) <= 2000
    with pytest.raises(UserError, match="1,000"):
        services.text.text_to_image(account, TextToImageParams(prompt=long_natural, **premium))
    services.text.text_to_image(account, TextToImageParams(prompt=long_natural, model="sdxl-base", steps=1))  # natural: fine
    with pytest.raises(UserError, match="Premium runs on local models"):
        services.text.text_to_image(account, TextToImageParams(prompt="harbour, dawn", **dict(premium, model="flux.2-pro")))
    with pytest.raises(UserError):
        services.text.text_to_image(account, TextToImageParams(prompt="harbour, dawn", count=9, **premium))
    balance = services.ledger.balance(account.id)
    output = services.text.text_to_image(account, TextToImageParams(prompt="harbour, dawn, oil painting", count=8, **premium))
    assert len(output.files) == 8 and services.ledger.balance(account.id) == balance - 8


def test_advanced_refuses_1k_and_batches_and_face_less_models_and_has_no_presets(make_services):
    services = make_services()
    account = guest(services, "10.9.0.2")
    figure = make_figure(services, account)
    before = services.ledger.balance(account.id)
    ask = dict(figure_id=figure.id, description="She reads by a rainy window.", model="flux.2-dev")
    with pytest.raises(UserError, match="2K or 4K images, not 1K"):
        services.remix.advanced_image(account, resolution="1K", **ask)
    assert load_plans().modes["advanced"].max_batch == 1
    with pytest.raises(UserError, match="1 image per request, not 2"):
        services.remix.advanced_image(account, count=2, **ask)
    with pytest.raises(UserError, match="cannot keep a face at 2K/4K"):
        services.remix.advanced_image(account, **dict(ask, model="qwen-image-edit"))
    with pytest.raises(UserError, match="pick a figure first"):
        services.remix.advanced_image(account, **dict(ask, figure_id=""))
    assert services.ledger.balance(account.id) == before
    parameters = set(inspect.signature(services.remix.advanced_image).parameters)
    assert not parameters & {"preset", "presets", "chips", "prompt_style", "negative_prompt"}


@pytest.mark.parametrize("tier", ["2K", "4K"])
def test_advanced_makes_the_tier_size_at_the_plans_price(make_services, tier):
    services = make_services()
    account = guest(services, f"10.9.0.{3 if tier == '2K' else 4}")
    figure = make_figure(services, account)
    entry = services.catalogue.get("flux.2-dev")
    expected = load_plans().quote(entry, Task.REFERENCE, tier, 1).total
    assert expected == {"2K": 4, "4K": 8}[tier]
    before = services.ledger.balance(account.id)
    output = services.remix.advanced_image(account, figure_id=figure.id, description="She reads by a rainy window.",
                                           model=entry.id, aspect_ratio="3:4", resolution=tier)
    assert output.charged == expected and services.ledger.balance(account.id) == before - expected
    with Image.open(output.files[0]) as image:
        assert image.size == tuple(entry.size_for("3:4", tier))
    assert output.parameters["style_register"]["locked"] is True


@pytest.mark.parametrize("figures", [2, 3])
@pytest.mark.parametrize("tier", ["2K", "4K"])
def test_group_prices_at_2k_and_4k_follow_the_plans(make_services, figures, tier):
    services = make_services()
    plans = load_plans()
    entry = services.catalogue.get("flux.2-dev")
    per_figure = plans.prices.unit(entry.id, Task.MULTI_REFERENCE) * {"2K": 1, "4K": 2}[tier]
    assert services.catalogue.quote(entry.id, Task.MULTI_REFERENCE, "9:16", tier, 1, figures).total == per_figure * figures


def test_a_group_at_4k_is_the_4k_size_and_refuses_1k(make_services):
    services = make_services()
    account = guest(services, "10.9.0.5")
    with services.db.begin() as conn:
        services.ledger.adjust(conn, account.id, 50, "test", "a 4K group costs more than a guest grant")
    first, second = make_figure(services, account, "Ivy", 1), make_figure(services, account, "Oak", 2)
    ask = dict(figure_ids=[first.id, second.id], prompt="two friends at a fair", model="flux.2-dev", aspect_ratio="9:16")
    with pytest.raises(UserError, match="2K or 4K, not 1K"):
        services.remix.group_image(account, resolution="1K", **ask)
    with pytest.raises(UserError, match="does not make group shots"):
        services.remix.group_image(account, **dict(ask, model="qwen-image-edit-plus"))
    output = services.remix.group_image(account, resolution="4K", **ask)
    assert output.charged == 2 * 2 * 5
    with Image.open(output.files[0]) as image:
        assert image.size == tuple(services.catalogue.get("flux.2-dev").size_for("9:16", "4K"))
    assert [s["stage"] for s in output.parameters["stages"]] == ["generate", "upscale"]
