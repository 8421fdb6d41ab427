"""Every declared local model loads from its saved tiny folder through the registry runtime and runs each task."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipelines.family import get_family
from pipelines.registry import load_registry
from pipelines.runtime import preview_request
from pipelines.types import GenerationRequest, Task

CASES = [(e.id, t) for e in load_registry() if not e.is_remote and not e.is_chat for t in e.tasks]
CHAT_MODELS = [e.id for e in load_registry() if not e.is_remote and e.is_chat]


def small_request(entry, family, task, seed: int, count: int) -> GenerationRequest:
    # A non-square declared size shrunk to the tiny model's scale, so width and height are both checked.
    ratio = "16:9" if "16:9" in entry.sizes else next(iter(entry.sizes))
    width, height = next(iter(entry.sizes[ratio].values()))
    base = GenerationRequest(prompt="a red-haired explorer waving", width=width, height=height,
                             num_frames=entry.defaults.num_frames)
    req = preview_request(family, base)
    refs = ()
    if task in (Task.IMAGE_TO_IMAGE, Task.REFERENCE, Task.EDIT, Task.IMAGE_TO_VIDEO, Task.MULTI_REFERENCE):
        rng = np.random.default_rng(0)
        n = 2 if task == Task.MULTI_REFERENCE else 1
        refs = tuple(
            Image.fromarray(rng.integers(0, 255, (req.height, req.width, 3), dtype=np.uint8)) for _ in range(n)
        )
    return GenerationRequest(
        prompt=req.prompt, negative_prompt="blurry", width=req.width, height=req.height, steps=2,
        guidance=entry.defaults.guidance or 1.0, seed=seed, count=count, reference_images=refs,
        num_frames=req.num_frames, fps=entry.defaults.fps, max_reference_area=req.max_reference_area,
        strength=entry.defaults.strength if task is Task.IMAGE_TO_IMAGE else None,
    )


def outputs(result, task):
    if task.is_video:
        assert len(result.videos) == result.parameters["count"]
        return [np.stack([np.asarray(f) for f in frames]) for frames in result.videos]
    return [np.asarray(im) for im in result.images]


@pytest.mark.parametrize(("model_id", "task"), CASES, ids=[f"{m}:{t.value}" for m, t in CASES])
def test_tiny_model_runs_through_registry(preview_runtime, registry, model_id, task):
    entry = registry.get(model_id)
    family = get_family(entry.family)
    pipe = preview_runtime.pipeline(entry, task)
    assert type(pipe).__name__ == family.pipeline_classes[task]

    steps = []
    req = small_request(entry, family, task, seed=11, count=2)
    result = family.runners[task](pipe, req, lambda done, total: steps.append((done, total)), None)
    assert result.seeds == [11, 12]
    done, total = steps[-1]
    assert done == total == len(steps) and total % 2 == 0  # progress ends at 100 % over both seeds
    assert [d for d, _ in steps] == list(range(1, total + 1))
    first, second = outputs(result, task)
    if task.is_video:
        assert first.shape[0] == req.num_frames
        assert result.parameters["num_frames"] == req.num_frames and result.parameters["fps"]
        assert first.shape[1:3] == (req.height, req.width)
    else:
        assert first.shape[:2] == (req.height, req.width)
    assert not np.array_equal(first, second), "different seeds must differ"

    again = family.runners[task](pipe, small_request(entry, family, task, seed=11, count=1), lambda d, t: None, None)
    assert np.array_equal(outputs(again, task)[0], first), "the same seed must reproduce the output"


@pytest.mark.parametrize("model_id", CHAT_MODELS)
def test_tiny_chat_model_loads_through_registry_streams_and_reproduces(preview_runtime, registry, model_id):
    """A local chat entry: transformers' AutoModelForCausalLM from the tiny folder, its chat template, a reply that
    streams piece by piece (the pieces are the reply), progress per token, seeded sampling, Stop between tokens."""
    import threading

    from pipelines.types import GenerationCancelled

    entry = registry.get(model_id)
    family = get_family(entry.family)
    pipe = preview_runtime.pipeline(entry, Task.CHAT)
    assert type(pipe).__name__ == "ChatModel" and type(pipe.model).__name__ == "Qwen3ForCausalLM"
    messages = (("system", "You are Maren."), ("user", "Hello there"))

    def request(seed, stream=None):
        return GenerationRequest(prompt="Hello there", messages=messages, max_new_tokens=24, temperature=0.8, seed=seed,
                                 stream=stream)

    pieces, steps = [], []
    result = family.runners[Task.CHAT](pipe, request(5, pieces.append), lambda d, t: steps.append((d, t)), None)
    assert result.texts and "".join(pieces).strip() == result.texts[0]
    assert [d for d, _ in steps] == list(range(1, len(steps) + 1)) and steps[-1][1] == 24
    assert result.parameters["reply_tokens"] == len(steps) and result.parameters["prompt_tokens"] > 0
    again = family.runners[Task.CHAT](pipe, request(5), lambda d, t: None, None)
    other = family.runners[Task.CHAT](pipe, request(6), lambda d, t: None, None)
    assert again.texts == result.texts and other.texts != result.texts
    cancel = threading.Event()

    def stop_after_three(done, total):
        if done == 3:
            cancel.set()

    with pytest.raises(GenerationCancelled):
        family.runners[Task.CHAT](pipe, request(5), stop_after_three, cancel)
