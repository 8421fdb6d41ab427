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


def apply_fast_paths(pipe: Any, fast: FastPaths) -> dict[str, Any]:
    """Apply the options; returns what was applied (recorded with every output's parameters)."""
    applied: dict[str, Any] = {}
    if not fast.any:
        return applied
    model = denoiser(pipe)
    if fast.attention_backend:
        if not hasattr(model, "set_attention_backend"):
            raise FastPathError(f"{type(model).__name__} does not support attention backend selection")
        model.set_attention_backend(fast.attention_backend)
        applied["attention_backend"] = fast.attention_backend
    if fast.step_cache is not None:
        from diffusers import FirstBlockCacheConfig

        model.enable_cache(FirstBlockCacheConfig(threshold=fast.step_cache))
        applied["step_cache"] = f"first-block {fast.step_cache}"
    if fast.fp8:
        try:
            from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, quantize_
        except ImportError as exc:
            raise FastPathError("fp8 needs torchao (pip install torchao) and a GPU with fp8 support") from exc
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
