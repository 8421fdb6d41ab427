"""Registry fast paths on a tiny FLUX.1: off changes nothing; on, the output difference is measured and
printed, and the lossless options stay within float tolerance."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import FluxPipeline

from pipelines.family import get_family
from pipelines.fast_paths import FastPathError, apply_fast_paths, fp8_unavailable_reason
from pipelines.registry import FastPaths, ModelEntry, Registry
from pipelines.runtime import PipelineRuntime, RuntimeSettings, build_tiny
from pipelines.tiny.flux import dev_scheduler, flux_components
from pipelines.types import GenerationRequest, Task

STEPS = 6


@pytest.fixture(scope="module")
def flux_folder(tmp_path_factory):
    return build_tiny(get_family("flux"), "flux", tmp_path_factory.mktemp("fast") / "flux")


def run(folder, tmp_path, **fast):
    entry = ModelEntry.model_validate({
        "id": "fast-flux", "name": "tiny flux", "family": "flux", "tasks": ["text-to-image"],
        "source": {"path": str(folder)}, "defaults": {"steps": STEPS, "guidance": 3.5},
        "sizes": {"1:1": {"1K": [64, 64]}}, "price": 1, "licence": {"name": "test"}, "tiny": "flux", "fast": fast,
    })
    runtime = PipelineRuntime(Registry([entry]), RuntimeSettings(tiny_root=tmp_path, preview="forbid", device="cpu"))
    request = GenerationRequest(prompt="a lighthouse", width=64, height=64, steps=STEPS, guidance=3.5, seed=3)
    result = runtime.run(entry, Task.TEXT_TO_IMAGE, request)
    return np.asarray(result.images[0], dtype=np.float32), result.parameters


def psnr(a, b) -> float:
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def test_off_changes_nothing(flux_folder, tmp_path):
    plain, params = run(flux_folder, tmp_path)
    again, _ = run(flux_folder, tmp_path, compile=False, attention_backend=None, fp8=False, step_cache=None)
    assert np.array_equal(plain, again) and "fast_paths" not in params


@pytest.mark.parametrize(
    "fast, lossless",
    [
        ({"attention_backend": "_native_math"}, True),  # another SDPA kernel than the default
        ({"step_cache": 0.5}, False),
        ({"compile": True}, True),
    ],
)
def test_each_option_reports_its_difference(flux_folder, tmp_path, fast, lossless, capsys):
    plain, _ = run(flux_folder, tmp_path)
    fast_out, params = run(flux_folder, tmp_path, **fast)
    diff = float(np.abs(plain - fast_out).max())
    with capsys.disabled():
        print(f"\n  fast path {fast}: max abs diff {diff:.3f} (of 255), PSNR {psnr(plain, fast_out):.1f} dB")
    assert params["fast_paths"] == fast
    if lossless:
        assert diff <= 1.0, "a lossless option must stay within float tolerance (one 8-bit level)"


def test_fp8_needs_compile_and_says_why_it_cannot_run_here():
    with pytest.raises(ValueError, match="fp8 needs compile"):
        FastPaths(fp8=True)
    reason = fp8_unavailable_reason()
    if reason is None:
        pytest.skip("fp8 can run on this machine; the GPU benchmark covers it")
    pipe = FluxPipeline(scheduler=dev_scheduler(), **flux_components())
    before = {k: v.clone() for k, v in pipe.transformer.state_dict().items()}
    with pytest.raises(FastPathError, match="fp8 needs"):
        apply_fast_paths(pipe, FastPaths(fp8=True, compile=True))
    after = pipe.transformer.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "a refused fp8 option must leave the weights alone"


def test_attention_backend_does_not_leak_into_other_models():
    from diffusers.models.attention_dispatch import _AttentionBackendRegistry

    before = _AttentionBackendRegistry._active_backend
    pipe = FluxPipeline(scheduler=dev_scheduler(), **flux_components())
    assert apply_fast_paths(pipe, FastPaths(attention_backend="_native_math")) == {"attention_backend": "_native_math"}
    assert _AttentionBackendRegistry._active_backend == before


def test_options_a_denoiser_cannot_take_are_refused_clearly():
    from diffusers import StableDiffusionXLPipeline

    from pipelines.tiny.sdxl import _components

    pipe = StableDiffusionXLPipeline(**_components())
    with pytest.raises(FastPathError, match="UNet2DConditionModel's attention does not go through"):
        apply_fast_paths(pipe, FastPaths(attention_backend="_native_math"))
    with pytest.raises(FastPathError, match="UNet2DConditionModel has no step cache"):
        apply_fast_paths(pipe, FastPaths(step_cache=0.1))
