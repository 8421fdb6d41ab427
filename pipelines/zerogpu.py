"""ZeroGPU: how long a request borrows a device, the call that borrows it, and ZeroGPU's own errors as refusals.
Elsewhere (a GPU box, a CPU, a Ray replica) `spaces.GPU` returns the function unchanged."""
from __future__ import annotations

import math

import spaces

from .errors import AcceleratorBusy, RequestRefused
from .registry import ModelEntry
from .types import GenerationRequest

# The most one @spaces.GPU call may ask for: 5 minutes (the ZeroGPU team, huggingface.co/spaces/zero-gpu-explorers/
# README/discussions/7). A visitor's plan may allow less; ZeroGPU then refuses ("illegal duration") and we say so.
ZEROGPU_MAX_S = 300


# InstantID runs an SDXL ControlNet (a copy of the UNet's down and mid blocks) beside the UNet on every step: about
# half a UNet more per step. The registry's step_s times the UNet alone.
INSTANTID_STEP_COST = 1.5


def gpu_duration(entry: ModelEntry, request: GenerationRequest) -> int:
    """The seconds a request borrows a ZeroGPU device for: the entry's timing of the request's steps, outputs,
    megapixels and frames (InstantID's ControlNet adds half a UNet per step), at least 1 and at most ZEROGPU_MAX_S."""
    if request.messages:  # a chat reply: step_s per generated token, at most the reply's cap
        return max(1, min(ZEROGPU_MAX_S, math.ceil(entry.gpu.overhead_s + entry.gpu.step_s * (request.max_new_tokens or 256))))
    steps = request.steps * (INSTANTID_STEP_COST if request.face is not None and request.face.path == "instantid" else 1)
    seconds = entry.gpu.seconds(steps, request.count, request.width, request.height, request.num_frames)
    return max(1, min(ZEROGPU_MAX_S, math.ceil(seconds)))


def _gpu_duration(fn, pipe, request, on_step, cancel, seconds) -> int:
    return seconds


def on_accelerator(spaces_module):
    """The call that runs a family's runner on the accelerator: on ZeroGPU, `spaces.GPU` borrows a device for the
    duration it reads from the call's last argument; elsewhere the decorator returns the function unchanged."""

    @spaces_module.GPU(duration=_gpu_duration)
    def run(fn, pipe, request, on_step, cancel, seconds):
        return fn(pipe, request, on_step, cancel)

    return run


_run_on_accelerator = on_accelerator(spaces)


def zerogpu_refusal(exc: BaseException) -> RequestRefused | None:
    """ZeroGPU's own errors (gradio errors titled "ZeroGPU ...") as plain refusals; None for anything else."""
    title = str(getattr(exc, "title", "") or "")
    if not title.startswith("ZeroGPU"):
        return None
    if "quota" in title or "credits" in title:
        return AcceleratorBusy("The free GPU time for this session is used up for now (ZeroGPU quota). Nothing was "
                               "charged. Sign in with Hugging Face for a larger quota, or wait a while and try again.")
    if "duration" in title:
        return AcceleratorBusy("This request needs more GPU time than ZeroGPU allows you in one go. Nothing was charged. "
                               "Lower the batch size, steps or resolution, or sign in with Hugging Face and try again.")
    return AcceleratorBusy("The GPU stopped before this request finished (ZeroGPU). Nothing was charged. Wait a moment "
                           "and try again, or lower the batch size or steps.")
