"""SDXL family (SDXL base, Playground v2.5): text-to-image and image-to-image on shared components."""
from __future__ import annotations

from ..family import Family, common_parameters, register_family, run_per_seed
from ..tiny import sdxl as tiny_sdxl
from ..types import Task


def text_to_image(pipe, request, on_step, cancel):
    def call(generator, callback):
        return pipe(
            prompt=request.prompt,
            negative_prompt=request.negative_prompt or None,
            width=request.width,
            height=request.height,
            num_inference_steps=request.steps,
            guidance_scale=request.guidance,
            generator=generator,
            callback_on_step_end=callback,
            output_type="pil",
        )

    return run_per_seed(pipe, request, on_step, cancel, call, common_parameters(request, sampler=type(pipe.scheduler).__name__))


def image_to_image(pipe, request, on_step, cancel):
    image = request.reference_images[0].convert("RGB").resize((request.width, request.height))

    def call(generator, callback):
        return pipe(
            prompt=request.prompt,
            negative_prompt=request.negative_prompt or None,
            image=image,
            strength=request.strength,
            num_inference_steps=request.steps,
            guidance_scale=request.guidance,
            generator=generator,
            callback_on_step_end=callback,
            output_type="pil",
        )

    params = common_parameters(request, sampler=type(pipe.scheduler).__name__, strength=request.strength)
    return run_per_seed(pipe, request, on_step, cancel, call, params)


FAMILY = register_family(
    Family(
        name="sdxl",
        pipeline_classes={
            Task.TEXT_TO_IMAGE: "StableDiffusionXLPipeline",
            Task.IMAGE_TO_IMAGE: "StableDiffusionXLImg2ImgPipeline",
        },
        runners={Task.TEXT_TO_IMAGE: text_to_image, Task.IMAGE_TO_IMAGE: image_to_image},
        tiny_builders={"sdxl": tiny_sdxl.build, "playground-v2.5": tiny_sdxl.build_playground},
        size_multiple=8,
    )
)
