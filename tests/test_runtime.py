"""Where weights come from (real, download, preview), sharing via from_pipe, and the preview contract."""
from __future__ import annotations

import numpy as np
import pytest

from pipelines.runtime import PREVIEW_NOTICE, PipelineRuntime, RemoteBackendUnavailable, RuntimeSettings, WeightsUnavailable
from pipelines.registry import ModelEntry
from pipelines.types import GenerationRequest, Task


def runtime_for(registry, tiny_root, **kw) -> PipelineRuntime:
    return PipelineRuntime(registry, RuntimeSettings(tiny_root=tiny_root, device="cpu", **kw))


def test_without_weights_a_cpu_machine_uses_the_preview(registry, tiny_root):
    runtime = runtime_for(registry, tiny_root)
    assert runtime.downloads_allowed is False  # no GPU here: a 24 GB download would help nobody
    status = runtime.status(registry.get("flux.1-dev"))
    assert status == {"runnable": True, "preview": True, "weights": "preview", "note": status["note"]}
    assert PREVIEW_NOTICE in status["note"]


def test_forbidding_the_preview_names_the_repo(registry, tiny_root):
    runtime = runtime_for(registry, tiny_root, preview="forbid")
    with pytest.raises(WeightsUnavailable, match="black-forest-labs/FLUX.1-dev"):
        runtime.resolve(registry.get("flux.1-dev"))
    assert runtime.status(registry.get("flux.1-dev"))["runnable"] is False


def test_downloads_allowed_flag_resolves_to_the_hub_repo(registry, tiny_root):
    runtime = runtime_for(registry, tiny_root, allow_downloads=True)
    resolved = runtime.resolve(registry.get("sdxl-base"))
    assert (resolved.location, resolved.preview, resolved.local_only) == ("stabilityai/stable-diffusion-xl-base-1.0", False, False)


def test_remote_models_refuse_clearly(registry, tiny_root):
    with pytest.raises(RemoteBackendUnavailable, match="Nano Banana 2 .* runs on Google Gemini API: it has no weights"):
        runtime_for(registry, tiny_root).resolve(registry.get("nano-banana-2"))


def test_local_folder_loads_as_real_weights(registry, preview_runtime, tiny_root):
    # A checkpoint folder on disk is "real weights" and goes through the same from_pretrained path.
    folder = preview_runtime.ensure_tiny(registry.get("sdxl-base"))
    base = registry.get("sdxl-base").model_dump()
    base.update(id="local-sdxl", source={"path": str(folder)})
    entry = ModelEntry.model_validate(base)
    runtime = runtime_for(registry, tiny_root, preview="forbid")
    resolved = runtime.resolve(entry)
    assert resolved.preview is False and resolved.location == str(folder)
    result = runtime.run(entry, Task.TEXT_TO_IMAGE, GenerationRequest(prompt="x", width=64, height=48, steps=2))
    assert result.images[0].size == (64, 48)
    assert result.parameters["preview"] is False and "notice" not in result.parameters


def test_from_pipe_shares_components(registry, preview_runtime):
    entry = registry.get("sdxl-base")
    t2i = preview_runtime.pipeline(entry, Task.TEXT_TO_IMAGE)
    loads = preview_runtime.cache.loads
    i2i = preview_runtime.pipeline(entry, Task.IMAGE_TO_IMAGE)
    assert type(i2i).__name__ == "StableDiffusionXLImg2ImgPipeline"
    for name in ("unet", "vae", "text_encoder", "text_encoder_2", "tokenizer"):
        assert getattr(i2i, name) is getattr(t2i, name)
    assert preview_runtime.pipeline(entry, Task.IMAGE_TO_IMAGE) is i2i
    assert preview_runtime.cache.loads == loads  # no second load


def test_entries_on_the_same_weights_share_one_load(registry, preview_runtime):
    base = registry.get("sdxl-base")
    twin = ModelEntry.model_validate(dict(base.model_dump(), id="sdxl-twin", name="SDXL twin"))
    assert preview_runtime.pipeline(twin, Task.TEXT_TO_IMAGE) is preview_runtime.pipeline(base, Task.TEXT_TO_IMAGE)
    assert preview_runtime.pipeline(registry.get("flux.1-dev"), Task.TEXT_TO_IMAGE) is not preview_runtime.pipeline(
        registry.get("flux.1-schnell"), Task.TEXT_TO_IMAGE
    )


def test_preview_run_returns_requested_size_and_says_so(registry, preview_runtime):
    entry = registry.get("playground-v2.5")
    width, height = entry.size_for("16:9", "1K")
    steps = []
    request = GenerationRequest(prompt="a castle", width=width, height=height, steps=3, seed=5, count=2)
    result = preview_runtime.run(entry, Task.TEXT_TO_IMAGE, request, on_step=lambda d, t: steps.append((d, t)))
    assert [im.size for im in result.images] == [(width, height)] * 2
    assert result.parameters["preview"] is True and result.parameters["notice"] == PREVIEW_NOTICE
    assert result.parameters["sampler"] == "EDMDPMSolverMultistepScheduler"
    assert result.parameters["model"] == "playground-v2.5" and result.seeds == [5, 6]
    assert steps == [(i, 6) for i in range(1, 7)]
    again = preview_runtime.run(entry, Task.TEXT_TO_IMAGE, request)
    assert np.array_equal(np.asarray(again.images[1]), np.asarray(result.images[1]))


def test_loading_through_the_runtime_prints_no_future_warning(preview_runtime, registry):
    """The project's own from_pretrained calls use current arguments (`dtype`, not the deprecated `torch_dtype`)."""
    import warnings

    from pipelines.runtime import PipelineRuntime

    fresh = PipelineRuntime(registry, preview_runtime.settings)  # an empty cache: every pipeline really loads
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for model, task in (("sdxl-base", Task.TEXT_TO_IMAGE), ("sdxl-base", Task.IMAGE_TO_IMAGE), ("flux.1-schnell", Task.TEXT_TO_IMAGE),
                            ("qwen-image-edit", Task.EDIT), ("ltx-video", Task.IMAGE_TO_VIDEO)):
            fresh.pipeline(registry.get(model), task)
    future = [f"{w.filename}:{w.lineno}: {w.message}" for w in caught if issubclass(w.category, FutureWarning)]
    assert not future, future
