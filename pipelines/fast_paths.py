"""Apply an entry's fast paths (registry `fast` options) to a freshly loaded pipeline's denoiser.

Every option works on the one denoiser the pipeline's task views share (`transformer` or `unet`), so a
from_pipe view gets them too. Off (the default) touches nothing.
"""
from __future__ import annotations

from typing import Any

from .registry import FastPaths


class FastPathError(RuntimeError):
    pass


def denoiser(pipe: Any) -> Any:
    model = getattr(pipe, "transformer", None) or getattr(pipe, "unet", None)
    if model is None:
        raise FastPathError(f"{type(pipe).__name__} has no transformer or unet to speed up")
    return model


def fp8_unavailable_reason() -> str | None:
    """Why torchao's fp8 dynamic quantisation cannot run here, or None when it can."""
    import importlib.util

    import torch

    missing = []
    if importlib.util.find_spec("torchao") is None:
        missing.append("torchao (pip install torchao)")
    if not torch.cuda.is_available():
        missing.append("a CUDA GPU with compute capability 8.9 or newer (Ada, Hopper); none is present")
    elif torch.cuda.get_device_capability() < (8, 9):
        name, cap = torch.cuda.get_device_name(), torch.cuda.get_device_capability()
        missing.append(f"compute capability 8.9 or newer; {name} has {cap[0]}.{cap[1]}")
    if missing:
        return "fp8 needs " + " and ".join(missing)
    return None


def dispatches_attention(model: Any) -> bool:
    """Whether the model's attention goes through diffusers' dispatcher (so a backend choice takes effect).

    Older processors (e.g. the UNet's AttnProcessor2_0) call SDPA directly and ignore the setting."""
    return any(hasattr(getattr(m, "processor", None), "_attention_backend") for m in model.modules())


def apply_fast_paths(pipe: Any, fast: FastPaths) -> dict[str, Any]:
    """Apply the options; returns what was applied (recorded with every output's parameters)."""
    applied: dict[str, Any] = {}
    if not fast.any:
        return applied
    model = denoiser(pipe)
    if fast.attention_backend:
        if not hasattr(model, "set_attention_backend") or not dispatches_attention(model):
            raise FastPathError(
                f"{type(model).__name__}'s attention does not go through diffusers' dispatcher, "
                "so an attention backend would change nothing; remove attention_backend from this entry"
            )
        from diffusers.models.attention_dispatch import _AttentionBackendRegistry

        # set_attention_backend also makes the backend the process-wide default; keep that default as it was so
        # one entry's choice does not leak into every other loaded model.
        previous = _AttentionBackendRegistry._active_backend
        try:
            model.set_attention_backend(fast.attention_backend)
        except (ValueError, RuntimeError, ImportError) as exc:
            raise FastPathError(f"attention backend {fast.attention_backend!r}: {exc}") from exc
        finally:
            _AttentionBackendRegistry._active_backend = previous
        applied["attention_backend"] = fast.attention_backend
    if fast.step_cache is not None:
        from diffusers import FirstBlockCacheConfig

        if not hasattr(model, "enable_cache"):
            raise FastPathError(f"{type(model).__name__} has no step cache support in diffusers; remove step_cache")
        model.enable_cache(FirstBlockCacheConfig(threshold=fast.step_cache))
        applied["step_cache"] = f"first-block {fast.step_cache}"
    if fast.fp8:
        reason = fp8_unavailable_reason()
        if reason:
            raise FastPathError(reason)
        from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, quantize_

        quantize_(model, Float8DynamicActivationFloat8WeightConfig())
        applied["fp8"] = "torchao dynamic"
    if fast.compile:
        if hasattr(model, "compile_repeated_blocks") and getattr(model, "_repeated_blocks", None):
            model.compile_repeated_blocks(fullgraph=True)
            applied["compile"] = "repeated blocks"
        else:
            model.compile(fullgraph=False)
            applied["compile"] = "whole model"
    return applied
