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


def run(folder, tmp_path, device="cpu", **fast):
    entry = ModelEntry.model_validate({
        "id": "fast-flux", "name": "tiny flux", "family": "flux", "tasks": ["text-to-image"],
        "source": {"path": str(folder)}, "defaults": {"steps": STEPS, "guidance": 3.5},
        "sizes": {"1:1": {"1K": [64, 64]}}, "licence": {"name": "test"}, "tiny": "flux", "fast": fast,
        "gpu": {"overhead_s": 10, "step_s": 1.0},
    })
    runtime = PipelineRuntime(Registry([entry]), RuntimeSettings(tiny_root=tmp_path, preview="forbid", device=device))
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


def _fp8_round_trip(x: torch.Tensor) -> torch.Tensor:
    """Per-tensor scaled float8 e4m3 quantise + dequantise: the rounding torchao's default fp8 config applies."""
    scale = x.abs().amax().clamp(min=1e-12) / torch.finfo(torch.float8_e4m3fn).max
    return (x / scale).to(torch.float8_e4m3fn).to(x.dtype) * scale


def test_fp8_output_difference_is_reported_by_simulating_its_rounding(flux_folder, capsys):
    """fp8 itself runs only on an fp8 GPU. Here its numerical effect is simulated on the same tiny FLUX.1:
    every Linear of the denoiser gets fp8-rounded weights and fp8-rounded inputs (per-tensor dynamic scales, as
    torchao's Float8DynamicActivationFloat8WeightConfig), so the lossy option's distance is visible."""
    def render(simulate: bool):
        pipe = FluxPipeline.from_pretrained(flux_folder)
        if simulate:
            with torch.no_grad():
                for module in pipe.transformer.modules():
                    if isinstance(module, torch.nn.Linear):
                        module.weight.copy_(_fp8_round_trip(module.weight))
                        module.register_forward_pre_hook(lambda _m, args: (_fp8_round_trip(args[0]),) + args[1:])
        image = pipe("a lighthouse", height=64, width=64, num_inference_steps=STEPS, guidance_scale=3.5,
                     generator=torch.Generator("cpu").manual_seed(3)).images[0]
        return np.asarray(image, dtype=np.float32)

    plain, fp8 = render(False), render(True)
    diff = float(np.abs(plain - fp8).max())
    with capsys.disabled():
        print(f"\n  fast path fp8 (simulated rounding): max abs diff {diff:.3f} (of 255), PSNR {psnr(plain, fp8):.1f} dB")
    assert diff > 0, "fp8 is lossy: the simulated rounding must move the output"


@pytest.mark.skipif(fp8_unavailable_reason() is not None, reason=f"{fp8_unavailable_reason()}")
def test_fp8_with_compile_on_an_fp8_gpu_reports_its_difference(flux_folder, tmp_path, capsys):
    plain, _ = run(flux_folder, tmp_path, device="cuda")
    fp8, params = run(flux_folder, tmp_path, device="cuda", fp8=True, compile=True)
    with capsys.disabled():
        print(f"\n  fast path fp8+compile: max abs diff {float(np.abs(plain - fp8).max()):.3f} (of 255), "
              f"PSNR {psnr(plain, fp8):.1f} dB")
    assert params["fast_paths"] == {"fp8": True, "compile": True}
