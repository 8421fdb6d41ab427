"""Typed requests and results that every family's run functions speak."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable

from PIL import Image


class Task(str, Enum):
    TEXT_TO_IMAGE = "text-to-image"
    IMAGE_TO_IMAGE = "image-to-image"
    REFERENCE = "reference"
    EDIT = "edit"
    MULTI_REFERENCE = "multi-reference"
    IMAGE_TO_VIDEO = "image-to-video"
    TEXT_TO_VIDEO = "text-to-video"

    @property
    def is_video(self) -> bool:
        return self in (Task.IMAGE_TO_VIDEO, Task.TEXT_TO_VIDEO)


# Called as on_step(done, total) after every denoising step of the whole request.
StepCallback = Callable[[int, int], None]


class GenerationCancelled(RuntimeError):
    """Raised when a request's cancel flag is set between denoising steps."""


@dataclass(frozen=True)
class GenerationRequest:
    """What a run function needs; sizes are final pixel sizes the pipeline is called with."""

    prompt: str
    negative_prompt: str = ""
    width: int = 1024
    height: int = 1024
    steps: int = 20
    guidance: float = 5.0
    seed: int = 0
    count: int = 1
    reference_images: tuple[Image.Image, ...] = ()
    strength: float = 0.75
    num_frames: int | None = None
    fps: int | None = None
    scheduler: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def seeds(self) -> list[int]:
        # One seed per output so that any single output can be reproduced alone.
        return [(self.seed + i) % (2**32) for i in range(self.count)]


@dataclass
class GenerationResult:
    """Images (or frame lists for videos) plus the parameters actually used."""

    seeds: list[int]
    parameters: dict[str, Any]
    images: list[Image.Image] = field(default_factory=list)
    videos: list[list[Image.Image]] = field(default_factory=list)
