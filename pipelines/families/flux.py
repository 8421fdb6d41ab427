"""FLUX.1 family (dev and schnell): text-to-image and image-to-image on shared components."""
from __future__ import annotations

from typing import Any

from ..family import Family, common_parameters, register_family, request_kwargs, run_per_seed
from ..tiny import flux as tiny_flux
from ..types import GenerationRequest, Task


def guidance_settings(pipe: Any, request: GenerationRequest) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pipeline kwargs, recorded parameters) for FLUX's guidance.

    FLUX.1-dev embeds the guidance value in the transformer (no CFG pass); schnell has no guidance at
    all (recorded as 0.0) and was trained with 256 T5 tokens. A real negative prompt needs "true CFG"
    (a second transformer pass), opted into with request.true_cfg > 1; otherwise the negative
    prompt is not used and is recorded as empty.
    """
    embedded = bool(pipe.transformer.config.guidance_embeds)
    guidance = float(request.guidance) if embedded else 0.0
    kwargs: dict[str, Any] = {"guidance_scale": guidance}
    params: dict[str, Any] = {"guidance": guidance, "negative_prompt": ""}
    if not embedded:
        kwargs["max_sequence_length"] = 256
    true_cfg = float(request.true_cfg or 1.0)
    if true_cfg > 1.0 and request.negative_prompt:
        kwargs.update(negative_prompt=request.negative_prompt, true_cfg_scale=true_cfg)
        params.update(negative_prompt=request.negative_prompt, true_cfg=true_cfg)
    return kwargs, params


def text_to_image(pipe, request, on_step, cancel):
    kwargs, recorded = guidance_settings(pipe, request)

    def call(generator, callback):
        return pipe(
            **request_kwargs(request, generator, callback),
            **kwargs,
        )

    params = common_parameters(request, sampler=type(pipe.scheduler).__name__, **recorded)
    return run_per_seed(pipe, request, on_step, cancel, call, params)


def image_to_image(pipe, request, on_step, cancel):
    kwargs, recorded = guidance_settings(pipe, request)
    image = request.reference_images[0].convert("RGB").resize((request.width, request.height))

    def call(generator, callback):
        return pipe(
            **request_kwargs(request, generator, callback),
            image=image,
            strength=request.strength,
            **kwargs,
        )

    params = common_parameters(request, sampler=type(pipe.scheduler).__name__, strength=request.strength, **recorded)
    return run_per_seed(pipe, request, on_step, cancel, call, params)


FAMILY = register_family(
    Family(
        name="flux",
        pipeline_classes={Task.TEXT_TO_IMAGE: "FluxPipeline", Task.IMAGE_TO_IMAGE: "FluxImg2ImgPipeline"},
        runners={Task.TEXT_TO_IMAGE: text_to_image, Task.IMAGE_TO_IMAGE: image_to_image},
        tiny_builders={"flux": tiny_flux.build, "flux-schnell": tiny_flux.build_schnell},
        size_multiple=16,
        options={Task.TEXT_TO_IMAGE: frozenset({"true_cfg"}), Task.IMAGE_TO_IMAGE: frozenset({"true_cfg"})},
        batch_tasks=frozenset({Task.TEXT_TO_IMAGE}),
    )
)
