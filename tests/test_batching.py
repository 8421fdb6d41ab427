"""Batches and seeds: for every local text-to-image family, seed N of a batch of 3 is pixel-identical to seed N run
alone, because every shipped entry runs a batch as one call per seed; the one-call path (an entry's opt-in) is
measured beside it, which is the reason written in the registry."""
from __future__ import annotations

import numpy as np
import pytest

from pipelines.family import BATCH_ROUNDING, get_family
from pipelines.types import GenerationRequest, Task

ENTRIES = ["sdxl-base", "playground-v2.5", "flux.1-schnell", "flux.1-dev", "flux.2-dev", "z-image-turbo"]


def images(runtime, entry, seed: int, count: int):
    request = GenerationRequest(prompt="a red-haired explorer waving", width=1024, height=1024, steps=2,
                                guidance=entry.defaults.guidance, seed=seed, count=count)
    result = runtime.run(entry, Task.TEXT_TO_IMAGE, request)
    return [np.asarray(image) for image in result.images], result.parameters


def test_the_list_covers_every_local_text_to_image_family(registry):
    families = {e.family for e in registry.for_task(Task.TEXT_TO_IMAGE) if not e.is_remote}
    assert families == {registry.get(e).family for e in ENTRIES}


@pytest.mark.parametrize("model", ENTRIES)
def test_seed_n_of_a_batch_is_seed_n_alone(preview_runtime, registry, model):
    entry = registry.get(model)
    batch, params = images(preview_runtime, entry, seed=21, count=3)
    alone = [images(preview_runtime, entry, seed=21 + i, count=1)[0][0] for i in range(3)]
    assert params["seeds"] == [21, 22, 23]
    if entry.batch == "one-call":
        assert params["batch"] == "one call"
    else:
        assert entry.batch == "per-seed" and "batch" not in params and "reproduce" in BATCH_ROUNDING
    for n, (a, b) in enumerate(zip(batch, alone)):
        assert np.array_equal(a, b), f"{model}: seed {21 + n} in a batch differs from the same seed alone"

    # The opt-in path, measured: it runs (one call, one image per seed) and stays within the rounding the reason names.
    if Task.TEXT_TO_IMAGE in get_family(entry.family).batch_tasks:
        one_call = entry.model_copy(update={"batch": "one-call"})
        fused, fused_params = images(preview_runtime, one_call, seed=21, count=3)
        assert fused_params["batch"] == "one call" and len(fused) == 3
        worst = max(int(np.abs(a.astype(int) - b.astype(int)).max()) for a, b in zip(fused, alone))
        print(f"\n  {model}: one call vs per seed, max pixel difference {worst}/255")
        assert worst <= 2, f"{model}: one-call batches differ from per-seed ones by {worst}/255"
