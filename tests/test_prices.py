"""Prices as published in the character gallery guide, through the real quote path, and README's generated table."""
from __future__ import annotations

import pytest

from pipelines.registry import load_registry
from pipelines.types import Task
from services.accounts.plans import load_plans
from services.price_table import README, markdown, readme_table

# (registry id, task, credits per output as published)
PUBLISHED = [
    ("playground-v2.5", "text-to-image", 1),
    ("flux.1-dev", "text-to-image", 4),
    ("flux.2-dev", "text-to-image", 4),
    ("z-image", "text-to-image", 4),
    ("flux.2-pro", "text-to-image", 8),
    ("flux.2-dev", "edit", 4),  # FLUX.2 dev editing
    ("flux.2-pro", "edit", 8),  # FLUX.2 pro editing
    ("hunyuan-image-3", "text-to-image", 25),
    ("hunyuan-image-3-instruct", "text-to-image", 25),
    ("hunyuan-image-3-edit", "edit", 25),
    ("nano-banana-2", "text-to-image", 25),
    ("nano-banana-2-edit", "edit", 25),
    ("kling-2.6-pro", "image-to-video", 100),  # without voice
    ("kling-2.6-pro", "text-to-video", 100),
    ("kling-2.6-pro-voice", "image-to-video", 225),
    ("kling-2.6-pro-voice", "text-to-video", 225),
    ("avatar-voice", "image-to-video", 135),
]
# The documented multipliers (README, Credits): 1K and 2K x1, 4K x2; a video model offered only at 720p costs its figure.
TIER_FACTOR = {"1K": 1, "2K": 1, "4K": 2, "720p": 1}


@pytest.mark.parametrize("model,task,price", PUBLISHED)
@pytest.mark.parametrize("count", [1, 4, 8])
def test_every_published_price_for_1_4_and_8_outputs(registry, model, task, price, count):
    plans = load_plans()
    entry = registry.get(model)
    assert entry.supports(Task(task))
    tiers = {t for sizes in entry.sizes.values() for t in sizes}
    assert tiers <= set(TIER_FACTOR)
    for tier in sorted(tiers):
        assert plans.quote(entry, Task(task), tier, count).total == price * TIER_FACTOR[tier] * count, (model, tier)
    if "4K" in tiers:
        assert plans.quote(entry, Task(task), "4K", count).total == 2 * price * count


def test_an_edit_with_flux_2_pro_costs_8_through_the_catalogue(make_services):
    services = make_services()
    quote = services.catalogue.quote("flux.2-pro", Task.EDIT, "1:1", "1K", 1)
    assert quote.total == 8
    assert services.catalogue.quote("qwen-image-edit", Task.EDIT, "1:1", "1K", 1).total == 3  # per model, not flat


def test_readme_price_table_is_generated_from_the_plans():
    assert readme_table(README.read_text(encoding="utf-8")) == markdown(load_plans(), load_registry()), \
        "README's price table is stale: run python -m services.price_table --write"
