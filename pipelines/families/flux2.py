"""FLUX.2 [dev] family: text-to-image, reference, edit and multi-reference on one Flux2Pipeline.

Flux2Pipeline takes zero or more conditioning images (`image=[...]`) next to the prompt, so every task is the same
call with a different image list. The pipeline itself scales references above 1 megapixel down to 1 MP and crops
them to a multiple of 16 px; `request.max_reference_area` (pixels, optional) lowers that cap, which keeps
tiny preview runs fast and lets users trade reference detail for speed. References must be at least 64 px a side
(the pipeline refuses smaller ones), so smaller ones are scaled up to 64 px.
"""
from __future__ import annotations

import math

from PIL import Image

from ..family import Family, common_parameters, register_family, request_kwargs, run_per_seed
from ..tiny import flux2 as tiny_flux2
from ..types import Task

# Flux2Pipeline's default text_encoder_out_layers: hidden states of Mistral-Small-3.1 (40 layers) it stacks.
DEFAULT_OUT_LAYERS = (10, 20, 30)
MIN_REFERENCE_SIDE = 64  # Flux2ImageProcessor.check_image_input's min_side_length
PIPELINE_REFERENCE_AREA = 1024 * 1024  # what the pipeline scales larger references down to


def text_encoder_out_layers(text_encoder) -> tuple[int, ...]:
    """The pipeline default when the text model is deep enough, else three picks spread over its depth (tiny: 1-3)."""
    depth = text_encoder.config.text_config.num_hidden_layers
    if depth >= max(DEFAULT_OUT_LAYERS):
        return DEFAULT_OUT_LAYERS
    count = len(DEFAULT_OUT_LAYERS)
    return tuple(max(1, round(depth * i / count)) for i in range(1, count + 1))


def fit_reference(image: Image.Image, max_area: int) -> Image.Image:
    """RGB copy of a reference scaled (aspect kept) to at most max_area pixels and at least 64 px a side.

    Scaling down mirrors Flux2Pipeline's own 1 MP resize (LANCZOS, sides truncated), so with the default area the
    pipeline receives exactly what it would have made itself; it then crops to a multiple of 16 px.
    """
    image = image.convert("RGB")
    width, height = image.size
    scale = math.sqrt(max_area / (width * height)) if width * height > max_area else 1.0
    scale = max(scale, MIN_REFERENCE_SIDE / min(width, height))
    if scale == 1.0:
        return image
    size = (max(MIN_REFERENCE_SIDE, int(width * scale)), max(MIN_REFERENCE_SIDE, int(height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def _max_reference_area(request) -> int:
    value = request.max_reference_area
    return min(int(value), PIPELINE_REFERENCE_AREA) if value else PIPELINE_REFERENCE_AREA


def _run(pipe, request, on_step, cancel, references: list[Image.Image]):
    max_area = _max_reference_area(request)
    images = [fit_reference(image, max_area) for image in references] or None
    out_layers = text_encoder_out_layers(pipe.text_encoder)

    def call(generator, callback):
        return pipe(
            **request_kwargs(request, generator, callback),
            image=images,
            guidance_scale=request.guidance,
            text_encoder_out_layers=out_layers,
        )

    # FLUX.2 [dev] is guidance-distilled: request.guidance is its embedded guidance and there is no negative prompt.
    params = common_parameters(request, sampler=type(pipe.scheduler).__name__, negative_prompt="")
    if images:
        params["reference_count"] = len(images)
        params["reference_sizes"] = [list(image.size) for image in images]
        params["max_reference_area"] = max_area
    return run_per_seed(pipe, request, on_step, cancel, call, params)


def _references(request, at_least: int, at_most: int) -> list[Image.Image]:
    refs = list(request.reference_images)
    if not at_least <= len(refs) <= at_most:
        raise ValueError(f"FLUX.2 needs {at_least}-{at_most} reference images for this task, got {len(refs)}")
    return refs


def text_to_image(pipe, request, on_step, cancel):
    return _run(pipe, request, on_step, cancel, [])


def reference(pipe, request, on_step, cancel):
    """One reference image (a subject, a style) placed in the scene the prompt describes."""
    return _run(pipe, request, on_step, cancel, _references(request, 1, 1))


def edit(pipe, request, on_step, cancel):
    """One input image changed as the prompt instructs."""
    return _run(pipe, request, on_step, cancel, _references(request, 1, 1))


def multi_reference(pipe, request, on_step, cancel):
    """Two or three references combined (group shots); FLUX.2 itself accepts up to 10."""
    return _run(pipe, request, on_step, cancel, _references(request, 2, 3))


FAMILY = register_family(
    Family(
        name="flux2",
        pipeline_classes={
            Task.TEXT_TO_IMAGE: "Flux2Pipeline",
            Task.REFERENCE: "Flux2Pipeline",
            Task.EDIT: "Flux2Pipeline",
            Task.MULTI_REFERENCE: "Flux2Pipeline",
        },
        runners={
            Task.TEXT_TO_IMAGE: text_to_image,
            Task.REFERENCE: reference,
            Task.EDIT: edit,
            Task.MULTI_REFERENCE: multi_reference,
        },
        tiny_builders={"flux2": tiny_flux2.build},
        size_multiple=16,
        options={task: frozenset({"max_reference_area"}) for task in (Task.TEXT_TO_IMAGE, Task.REFERENCE, Task.EDIT, Task.MULTI_REFERENCE)},
        batch_tasks=frozenset({Task.TEXT_TO_IMAGE}),
    )
)
