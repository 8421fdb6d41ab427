"""LTX-Video family: text-to-video (LTXPipeline) and image-to-video (LTXImageToVideoPipeline) on shared components."""
from __future__ import annotations

from ..family import Family, common_parameters, register_family, request_kwargs, run_per_seed
from ..tiny import ltx as tiny_ltx
from ..types import Task

DEFAULT_NUM_FRAMES = 161  # the pipeline's default (6.4 s at 25 fps)
DEFAULT_FPS = 25  # the pipeline's default frame_rate; the transformer's time positions are scaled by it
FRAME_STEP = 8  # the VAE compresses time 8x: valid frame counts are 8k + 1
SIZE_MULTIPLE = 32  # the VAE compresses space 32x; the pipeline raises on other sizes
# Recommended decode settings for the 0.9.1+ VAEs that take a decode timestep (ignored by 0.9.0's VAE).
DECODE_TIMESTEP = 0.05
DECODE_NOISE_SCALE = 0.025


def video_settings(request) -> tuple[int, int]:
    """(num_frames, fps) actually used: the requested count snapped down to 8k + 1 (what the VAE can decode)."""
    frames = request.num_frames or DEFAULT_NUM_FRAMES
    frames = max(1, (frames - 1) // FRAME_STEP * FRAME_STEP + 1)
    return frames, request.fps or DEFAULT_FPS


def _run(pipe, request, on_step, cancel, **inputs):
    num_frames, fps = video_settings(request)
    decode = {}
    if pipe.vae.config.timestep_conditioning:
        decode = {"decode_timestep": DECODE_TIMESTEP, "decode_noise_scale": DECODE_NOISE_SCALE}

    def call(generator, callback):
        return pipe(
            **request_kwargs(request, generator, callback),
            negative_prompt=request.negative_prompt or None,
            num_frames=num_frames,
            frame_rate=fps,
            guidance_scale=request.guidance,
            **decode,
            **inputs,
        )

    params = common_parameters(
        request, sampler=type(pipe.scheduler).__name__, num_frames=num_frames, fps=fps, **decode
    )
    return run_per_seed(pipe, request, on_step, cancel, call, params, video=True)


def text_to_video(pipe, request, on_step, cancel):
    return _run(pipe, request, on_step, cancel)


def image_to_video(pipe, request, on_step, cancel):
    # The first frame: the pipeline would stretch it to width x height anyway; doing it here keeps that visible.
    image = request.reference_images[0].convert("RGB").resize((request.width, request.height))
    return _run(pipe, request, on_step, cancel, image=image)


FAMILY = register_family(
    Family(
        name="ltx",
        # LTXPipeline first: it is the class saved in the folder; image-to-video is reached with from_pipe.
        pipeline_classes={Task.TEXT_TO_VIDEO: "LTXPipeline", Task.IMAGE_TO_VIDEO: "LTXImageToVideoPipeline"},
        runners={Task.TEXT_TO_VIDEO: text_to_video, Task.IMAGE_TO_VIDEO: image_to_video},
        tiny_builders={"ltx": tiny_ltx.build},
        size_multiple=SIZE_MULTIPLE,
    )
)
