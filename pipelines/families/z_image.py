"""Z-Image (Turbo) family: text-to-image with a Qwen3 text encoder."""
from __future__ import annotations

from ..family import Family, common_parameters, register_family, request_kwargs, run_per_seed
from ..tiny import z_image as tiny_z_image
from ..types import Task


def text_to_image(pipe, request, on_step, cancel):
    # Turbo is distilled for guidance 0 (one transformer pass per step). Z-Image's CFG is
    # pos + g * (pos - neg): it runs, and so uses the negative prompt, whenever guidance_scale > 0.
    use_cfg = request.guidance > 0.0
    negative_prompt = request.negative_prompt if use_cfg else ""

    def call(generator, callback):
        return pipe(
            **request_kwargs(request, generator, callback),
            negative_prompt=negative_prompt or None,
            guidance_scale=request.guidance,
        )

    params = common_parameters(request, sampler=type(pipe.scheduler).__name__, negative_prompt=negative_prompt)
    return run_per_seed(pipe, request, on_step, cancel, call, params)


FAMILY = register_family(
    Family(
        name="z-image",
        pipeline_classes={Task.TEXT_TO_IMAGE: "ZImagePipeline"},
        runners={Task.TEXT_TO_IMAGE: text_to_image},
        tiny_builders={"z-image-turbo": tiny_z_image.build},
        size_multiple=16,
        batch_tasks=frozenset({Task.TEXT_TO_IMAGE}),
    )
)
