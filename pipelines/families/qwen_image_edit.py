"""Qwen-Image-Edit families: "qwen-image-edit" (one input image) and "qwen-image-edit-plus" (2509/2511, 1-3 images).

Guidance is true classifier-free guidance: request.guidance is passed as true_cfg_scale together with a negative
prompt (a single space when the request has none, as in Qwen's own examples); values <= 1 turn CFG off.

Reference area: both pipelines scale every input image to about 1 megapixel before their VAE (and Plus to 384x384
for the text encoder), through the module-level `calculate_dimensions(target_area, ratio)` of their diffusers
module, with the area hard-coded; no call argument changes it. `request.max_reference_area` (pixels,
optional) caps that area: for the duration of one pipeline call the runner swaps the function of the pipeline's own
module for one that clamps target_area. The swap happens only under `_DIMENSIONS_LOCK`, which every call of these
runners holds (capped or not), so no concurrent call ever sees another call's cap; the original is restored even
when the call fails or is cancelled. Tiny preview runs set it (e.g. 64*64): 0.15 s per call instead of 25-50 s and 2 GB;
real runs leave it unset and get the pipelines' trained behaviour. The output size is always the requested one.
"""
from __future__ import annotations

import inspect
import threading
from contextlib import contextmanager

from ..family import Family, common_parameters, register_family, request_kwargs, run_per_seed
from ..tiny import qwen_image_edit as tiny_qwen
from ..types import Task

PIPELINE_REFERENCE_AREA = 1024 * 1024  # the area the pipelines scale inputs to
MIN_DIMENSION = 32  # calculate_dimensions rounds to multiples of 32; never let a capped side round to 0

_DIMENSIONS_LOCK = threading.Lock()


def _clamped(original, max_area: int):
    def calculate_dimensions(target_area, ratio):
        result = original(min(target_area, max_area), ratio)
        return tuple(max(MIN_DIMENSION, v) if isinstance(v, (int, float)) else v for v in result)

    return calculate_dimensions


def _call_globals(pipe) -> dict | None:
    """The globals of the module whose __call__ the pipeline runs, if they hold calculate_dimensions."""
    call = inspect.unwrap(type(pipe).__call__)
    namespace = getattr(call, "__globals__", {})
    return namespace if callable(namespace.get("calculate_dimensions")) else None


@contextmanager
def reference_area(pipe, max_area: int | None):
    """Hold the lock for one pipeline call; with max_area, clamp the pipeline module's calculate_dimensions."""
    namespace = _call_globals(pipe)
    with _DIMENSIONS_LOCK:
        if not max_area or namespace is None:
            yield
            return
        original = namespace["calculate_dimensions"]
        namespace["calculate_dimensions"] = _clamped(original, max_area)
        try:
            yield
        finally:
            namespace["calculate_dimensions"] = original


def _run(pipe, request, on_step, cancel, image):
    value = request.max_reference_area
    max_area = int(value) if value and _call_globals(pipe) is not None else None
    use_cfg = request.guidance > 1
    negative = (request.negative_prompt or " ") if use_cfg else None

    def call(generator, callback):
        with reference_area(pipe, max_area):
            return pipe(
                **request_kwargs(request, generator, callback),
                image=image,
                negative_prompt=negative,
                true_cfg_scale=request.guidance,
            )

    count = len(image) if isinstance(image, list) else 1
    params = common_parameters(
        request,
        sampler=type(pipe.scheduler).__name__,
        negative_prompt=negative or "",
        true_cfg_scale=request.guidance,
        reference_count=count,
        max_reference_area=max_area or PIPELINE_REFERENCE_AREA,
    )
    return run_per_seed(pipe, request, on_step, cancel, call, params)


def _references(request, at_least: int, at_most: int) -> list:
    refs = [image.convert("RGB") for image in request.reference_images]
    if not at_least <= len(refs) <= at_most:
        raise ValueError(f"Qwen-Image-Edit needs {at_least}-{at_most} input images for this task, got {len(refs)}")
    return refs


def edit(pipe, request, on_step, cancel):
    """Change the one input image as the prompt instructs."""
    return _run(pipe, request, on_step, cancel, _references(request, 1, 1)[0])


def reference(pipe, request, on_step, cancel):
    """Put the subject of the one reference image into the scene the prompt describes."""
    return _run(pipe, request, on_step, cancel, _references(request, 1, 1)[0])


def multi_reference(pipe, request, on_step, cancel):
    """Plus only: combine two or three input images (the prompt can name them "picture 1", "picture 2", ...)."""
    return _run(pipe, request, on_step, cancel, _references(request, 2, 3))


FAMILY = register_family(
    Family(
        name="qwen-image-edit",
        pipeline_classes={Task.EDIT: "QwenImageEditPipeline", Task.REFERENCE: "QwenImageEditPipeline"},
        runners={Task.EDIT: edit, Task.REFERENCE: reference},
        tiny_builders={"qwen-image-edit": tiny_qwen.build},
        size_multiple=16,
        options={task: frozenset({"max_reference_area"}) for task in (Task.EDIT, Task.REFERENCE)},
    )
)

PLUS_FAMILY = register_family(
    Family(
        name="qwen-image-edit-plus",
        pipeline_classes={
            Task.EDIT: "QwenImageEditPlusPipeline",
            Task.REFERENCE: "QwenImageEditPlusPipeline",
            Task.MULTI_REFERENCE: "QwenImageEditPlusPipeline",
        },
        runners={Task.EDIT: edit, Task.REFERENCE: reference, Task.MULTI_REFERENCE: multi_reference},
        tiny_builders={"qwen-image-edit-plus": tiny_qwen.build_plus},
        size_multiple=16,
        options={task: frozenset({"max_reference_area"}) for task in (Task.EDIT, Task.REFERENCE, Task.MULTI_REFERENCE)},
    )
)
