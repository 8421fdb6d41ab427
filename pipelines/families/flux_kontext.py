"""FLUX.1 Kontext family: instruction editing and reference-guided generation from one input image."""
from __future__ import annotations

import math

from PIL import Image

from ..lora import run_with_loras
from ..family import Family, common_parameters, register_family, request_kwargs, run_per_seed
from ..tiny import flux_kontext as tiny_flux_kontext
from ..types import GenerationRequest, Task
from .flux import guidance_settings

MULTIPLE = 16


def context_image(request: GenerationRequest) -> Image.Image:
    """The input image at about the output's area, keeping its own aspect ratio.

    Left alone, Kontext resizes every input to one of its ~1 MP preferred resolutions
    (`_auto_resize=True`): at real sizes that is about what the output area already is, but it would
    run the VAE on 1 MP inputs for tiny 64 px previews. So the runners resize the input here to the
    requested output area (rounded to multiples of 16 = VAE factor 8 x 2x2 latent packing, so the pipeline does not
    crop it further) and call with `_auto_resize=False`.

    The output size is also rescaled by Kontext to `max_area` (default 1024**2) at the requested aspect
    ratio, so the runners pass max_area = width * height: the output is then exactly width x height.
    """
    image = request.reference_images[0].convert("RGB")
    area = request.width * request.height
    aspect = image.width / image.height
    width = max(MULTIPLE, round(math.sqrt(area * aspect) / MULTIPLE) * MULTIPLE)
    height = max(MULTIPLE, round(math.sqrt(area / aspect) / MULTIPLE) * MULTIPLE)
    return image.resize((width, height), Image.LANCZOS)


def _run(pipe, request, on_step, cancel, mode: str):
    kwargs, recorded = guidance_settings(pipe, request)
    image = context_image(request)

    def call(generator, callback):
        return pipe(
            **request_kwargs(request, generator, callback),
            image=image,
            max_area=request.width * request.height,
            _auto_resize=False,
            **kwargs,
        )

    params = common_parameters(
        request,
        sampler=type(pipe.scheduler).__name__,
        mode=mode,
        context_size=f"{image.width}x{image.height}",
        **recorded,
    )
    # a figure's pinned Kontext LoRAs (the library's), through peft adapters on the transformer, off after the call
    return run_with_loras(pipe, request, lambda: run_per_seed(pipe, request, on_step, cancel, call, params))


def edit(pipe, request, on_step, cancel):
    """Instruction edit: the prompt says what to change in the input image."""
    return _run(pipe, request, on_step, cancel, "edit")


def reference(pipe, request, on_step, cancel):
    """Reference: the same call, with a prompt describing a new scene for the input's subject."""
    return _run(pipe, request, on_step, cancel, "reference")


FAMILY = register_family(
    Family(
        name="flux-kontext",
        pipeline_classes={Task.EDIT: "FluxKontextPipeline", Task.REFERENCE: "FluxKontextPipeline"},
        runners={Task.EDIT: edit, Task.REFERENCE: reference},
        tiny_builders={"flux-kontext": tiny_flux_kontext.build},
        size_multiple=16,
        options={Task.EDIT: frozenset({"true_cfg", "loras"}), Task.REFERENCE: frozenset({"true_cfg", "loras"})},
    )
)
