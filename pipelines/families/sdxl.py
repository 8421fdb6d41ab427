"""SDXL family (SDXL base, Playground v2.5): text-to-image and image-to-image on shared components."""
from __future__ import annotations

from ..face_adapter import ip_adapter_call
from ..lora import run_with_loras
from ..family import Family, common_parameters, register_family, request_kwargs, run_per_seed
from ..tiny import sdxl as tiny_sdxl
from ..types import Task


def text_to_image(pipe, request, on_step, cancel):
    # request.face (a FaceConditioning: embedding, path, scale, weights) conditions on a face through the adapter of
    # its path (FaceID, FaceID Plus v2, InstantID), loaded once per pipeline by pipelines.face_adapter; without it
    # nothing changes.
    # InstantID calls the ControlNet view of the same components (face.pipe) with a keypoint image.
    face = ip_adapter_call(pipe, request)

    def call(generator, callback):
        with face.context():
            return face.pipe(
                **request_kwargs(request, generator, callback),
                negative_prompt=request.negative_prompt or None,
                guidance_scale=request.guidance,
                **face.kwargs,
            )

    params = common_parameters(request, sampler=type(pipe.scheduler).__name__, **face.params)
    return run_with_loras(pipe, request, lambda: run_per_seed(pipe, request, on_step, cancel, call, params))


def image_to_image(pipe, request, on_step, cancel):
    image = request.reference_images[0].convert("RGB").resize((request.width, request.height))
    # The UNet is shared with text_to_image's view: a loaded FaceID adapter applies (or is muted) here too.
    face = ip_adapter_call(pipe, request, image_to_image=True)

    def call(generator, callback):
        with face.context():
            return face.pipe(
                **request_kwargs(request, generator, callback, size=False),
                negative_prompt=request.negative_prompt or None,
                image=image,
                strength=request.strength,
                guidance_scale=request.guidance,
                **face.kwargs,
            )

    params = common_parameters(request, sampler=type(pipe.scheduler).__name__, strength=request.strength, **face.params)
    return run_with_loras(pipe, request, lambda: run_per_seed(pipe, request, on_step, cancel, call, params))


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
        options={Task.TEXT_TO_IMAGE: frozenset({"face", "loras"}), Task.IMAGE_TO_IMAGE: frozenset({"face", "loras"})},
        batch_tasks=frozenset({Task.TEXT_TO_IMAGE}),
    )
)
