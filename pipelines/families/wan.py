"""Wan 2.1 families: text-to-video (WanPipeline) and image-to-video (WanImageToVideoPipeline, 480P).

They are two families because the real checkpoints are two folders with different transformers (the I2V one takes
the encoded first frame and CLIP image tokens), so no pipeline can be reached from the other with from_pipe.
"""
from __future__ import annotations

from ..family import Family, common_parameters, register_family, request_kwargs, run_per_seed
from ..tiny import wan as tiny_wan
from ..types import Task

DEFAULT_NUM_FRAMES = 81  # about 5 s at 16 fps, what Wan 2.1 was trained on
DEFAULT_FPS = 16
FRAME_STEP = 4  # the VAE compresses time 4x: valid frame counts are 4k + 1
SIZE_MULTIPLE = 16  # 8x VAE times the transformer's 2x2 patches (the pipeline silently crops other sizes)


def video_settings(request) -> tuple[int, int]:
    """(num_frames, fps) actually used: the requested count snapped down to 4k + 1 (as the pipeline would)."""
    frames = request.num_frames or DEFAULT_NUM_FRAMES
    frames = max(1, (frames - 1) // FRAME_STEP * FRAME_STEP + 1)
    return frames, request.fps or DEFAULT_FPS


def _parameters(pipe, request, num_frames: int, fps: int, **extra) -> dict:
    return common_parameters(
        request, sampler=type(pipe.scheduler).__name__, num_frames=num_frames, fps=fps, **extra
    )


def text_to_video(pipe, request, on_step, cancel):
    num_frames, fps = video_settings(request)

    def call(generator, callback):
        return pipe(
            **request_kwargs(request, generator, callback),
            negative_prompt=request.negative_prompt or None,
            num_frames=num_frames,
            guidance_scale=request.guidance,
        )

    return run_per_seed(pipe, request, on_step, cancel, call, _parameters(pipe, request, num_frames, fps), video=True)


def image_to_video(pipe, request, on_step, cancel):
    num_frames, fps = video_settings(request)
    # The first frame: the pipeline would stretch it to width x height anyway; doing it here keeps that visible.
    image = request.reference_images[0].convert("RGB").resize((request.width, request.height))

    def call(generator, callback):
        return pipe(
            **request_kwargs(request, generator, callback),
            image=image,
            negative_prompt=request.negative_prompt or None,
            num_frames=num_frames,
            guidance_scale=request.guidance,
        )

    return run_per_seed(pipe, request, on_step, cancel, call, _parameters(pipe, request, num_frames, fps), video=True)


T2V_FAMILY = register_family(
    Family(
        name="wan-t2v",
        pipeline_classes={Task.TEXT_TO_VIDEO: "WanPipeline"},
        runners={Task.TEXT_TO_VIDEO: text_to_video},
        tiny_builders={"wan-t2v": tiny_wan.build_t2v},
        size_multiple=SIZE_MULTIPLE,
    )
)

I2V_FAMILY = register_family(
    Family(
        name="wan-i2v",
        pipeline_classes={Task.IMAGE_TO_VIDEO: "WanImageToVideoPipeline"},
        runners={Task.IMAGE_TO_VIDEO: image_to_video},
        tiny_builders={"wan-i2v": tiny_wan.build_i2v},
        size_multiple=SIZE_MULTIPLE,
    )
)
