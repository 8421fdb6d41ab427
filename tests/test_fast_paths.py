"""Registry fast paths on a tiny FLUX.1: off changes nothing; on, the output difference is measured and
printed, and the lossless options stay within float tolerance."""
from __future__ import annotations

import numpy as np
import pytest

from pipelines.family import get_family
from pipelines.registry import FastPaths, ModelEntry, Registry
from pipelines.runtime import PipelineRuntime, RuntimeSettings, build_tiny
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
        ({"attention_backend": "native"}, True),
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


def test_fp8_needs_compile_and_torchao():
    with pytest.raises(ValueError, match="fp8 needs compile"):
        FastPaths(fp8=True)
    torchao = pytest.importorskip("torchao", reason="torchao is not installed; fp8 runs only where it is")
    assert torchao
