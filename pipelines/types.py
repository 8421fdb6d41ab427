"""Typed requests and results that every family's run functions speak."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any, Callable, Literal, get_args

from PIL import Image

from .lora import LoraUse


class Task(str, Enum):
    TEXT_TO_IMAGE = "text-to-image"
    IMAGE_TO_IMAGE = "image-to-image"
    REFERENCE = "reference"
    EDIT = "edit"
    MULTI_REFERENCE = "multi-reference"
    IMAGE_TO_VIDEO = "image-to-video"
    TEXT_TO_VIDEO = "text-to-video"
    CHAT = "chat"  # a language model's reply to a conversation (text out, no pixels)

    @property
    def is_text(self) -> bool:
        """Whether the task's output is text (a chat reply), not images or video."""
        return self is Task.CHAT

    @property
    def is_video(self) -> bool:
        return self in (Task.IMAGE_TO_VIDEO, Task.TEXT_TO_VIDEO)

    @property
    def takes_images(self) -> bool:
        """Whether the task's request carries input images (`reference_images`)."""
        return self in (Task.IMAGE_TO_IMAGE, Task.REFERENCE, Task.EDIT, Task.MULTI_REFERENCE, Task.IMAGE_TO_VIDEO)

    def inherent_options(self) -> frozenset[str]:
        """The optional request fields every family's runner for this task reads."""
        options = set()
        if self.takes_images:
            options.add("reference_images")
        if self is Task.IMAGE_TO_IMAGE:
            options.add("strength")
        if self.is_video:
            options.update(("num_frames", "fps"))
        if self.is_text:
            options.update(("messages", "max_new_tokens", "temperature"))
        return frozenset(options)


SEED_LIMIT = 2**32  # seeds are integers in [0, SEED_LIMIT): the one seed range of every request


# Called as on_step(done, total) after every denoising step of the whole request.
StepCallback = Callable[[int, int], None]


class GenerationCancelled(RuntimeError):
    """Raised when a request's cancel flag is set between denoising steps."""


FacePath = Literal["ip-adapter-faceid", "ip-adapter-faceid-plusv2", "instantid"]  # the face adapters (SDXL)
FACE_PATHS: tuple[str, ...] = get_args(FacePath)


@dataclass(frozen=True)
class FaceConditioning:
    """A face to keep through an adapter (SDXL): one value instead of loose keys.

    `path` picks the adapter: IP-Adapter FaceID (the embedding alone), FaceID Plus v2 (the embedding plus a CLIP
    image embedding of `crop`, the aligned face crop) or InstantID (the embedding through its resampler, plus a
    ControlNet on a keypoint image drawn from `keypoints`, fractions of the output's width and height)."""

    embedding: tuple[float, ...]  # insightface-style normed embedding (512 floats), or several of them flattened
    scale: float | None = None  # the adapter scale for this request; None keeps the loaded scale; 0 = no effect
    weights: str | None = None  # the adapter weight file; None: the runtime resolves the entry's own weights
    lora_weight: float | None = None  # the adapter's own LoRA weight (FaceID recipes pair them); None: no LoRA
    path: str = "ip-adapter-faceid"
    crop: Image.Image | None = None  # Plus v2: the aligned face crop its CLIP image encoder sees
    keypoints: tuple[tuple[float, float], ...] = ()  # InstantID: the five face keypoints as (x, y) fractions
    control_scale: float | None = None  # InstantID: the ControlNet conditioning scale
    image_encoder: str | None = None  # Plus v2: the CLIP image encoder folder (the runtime fills it)
    controlnet: str | None = None  # InstantID: the IdentityNet ControlNet folder (the runtime fills it)

    def __post_init__(self) -> None:
        object.__setattr__(self, "embedding", tuple(float(x) for x in self.embedding))
        object.__setattr__(self, "keypoints", tuple((float(x), float(y)) for x, y in self.keypoints))
        if self.path not in FACE_PATHS:
            raise ValueError(f"unknown face path {self.path!r} (one of {', '.join(FACE_PATHS)})")
        if self.path == "instantid" and len(self.keypoints) != 5:
            raise ValueError("InstantID needs the face's five keypoints")
        if self.path == "ip-adapter-faceid-plusv2" and self.crop is None:
            raise ValueError("FaceID Plus v2 needs the aligned face crop")


# The optional fields of a request (beyond prompt, size, steps, guidance, seed, count) and how a refusal names them.
OPTION_LABELS = {
    "reference_images": "input images",
    "strength": "an image-to-image strength",
    "num_frames": "a frame count",
    "fps": "a frame rate",
    "face": "a face to keep (face adapter)",
    "max_reference_area": "a reference-area cap",
    "true_cfg": "true classifier-free guidance",
    "tile": "tiled upscaling",
    "loras": "LoRAs",
    "script": "a spoken script",
    "voice": "a voice",
    "messages": "a conversation",
    "max_new_tokens": "a reply length",
    "temperature": "a sampling temperature",
}

Role = Literal["system", "user", "assistant"]
ChatMessage = tuple[Role, str]  # (role, content): what a chat template renders

# Called with each new piece of a reply's text as it is generated (streaming); the pieces add up to the reply.
TextCallback = Callable[[str], None]


@dataclass(frozen=True)
class GenerationRequest:
    """What a run function needs; sizes are final pixel sizes the pipeline is called with.

    The optional fields are typed, and a family declares which ones it reads per task (`Family.options`); the
    runtime refuses a request that sets one the family cannot use, naming it (`UnsupportedOption`)."""

    prompt: str
    negative_prompt: str = ""
    width: int = 1024
    height: int = 1024
    steps: int = 20
    guidance: float = 5.0
    seed: int = 0
    count: int = 1
    scheduler: str | None = None
    reference_images: tuple[Image.Image, ...] = ()
    strength: float | None = None  # image-to-image; None: the registry entry's default (filled by the runtime)
    num_frames: int | None = None
    fps: int | None = None
    face: FaceConditioning | None = None
    # Edit pipelines scale references to about 1 MP before their VAE; this caps that area (pixels).
    max_reference_area: int | None = None
    true_cfg: float | None = None  # FLUX.1: > 1 runs true CFG with the negative prompt (a second pass per step)
    loras: tuple[LoraUse, ...] = ()  # LoRA library entries to apply for this request (pipelines/lora.py)
    tile: int | None = None  # image-to-image as a tiled upscale: tile side in pixels (pipelines/upscale.py)
    tile_overlap: int = 128
    script: str | None = None  # talking video: the words the avatar says (the prompt policy checks it)
    voice: str | None = None  # talking video: a voice id from presets/video.toml [voices]
    one_call: bool = False  # run a batch as one pipeline call (the runtime sets it for entries with batch = "one-call")
    # chat: the conversation as (role, content) messages, system first; the reply's length cap and temperature (None:
    # the entry's own); `stream` receives the reply's text piece by piece as it is generated (not a setting: not recorded)
    messages: tuple[ChatMessage, ...] = ()
    max_new_tokens: int | None = None
    temperature: float | None = None
    stream: TextCallback | None = field(default=None, compare=False, repr=False)

    def seeds(self) -> list[int]:
        # One seed per output so that any single output can be reproduced alone.
        return [(self.seed + i) % SEED_LIMIT for i in range(self.count)]

    def options(self) -> frozenset[str]:
        """The optional fields this request sets."""
        return frozenset(
            f.name for f in fields(self) if f.name in OPTION_LABELS and getattr(self, f.name) not in (None, ())
        )


class VideoFrames(list):
    """A video's frames (PIL images). `encoded` holds the video file as a remote provider sent it (e.g. with its
    soundtrack), stored as it is instead of re-encoding the frames."""

    encoded: bytes | None = None


@dataclass
class GenerationResult:
    """Images (or frame lists for videos) plus the parameters actually used."""

    seeds: list[int]
    parameters: dict[str, Any]
    images: list[Image.Image] = field(default_factory=list)
    videos: list[list[Image.Image]] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)  # chat replies (one per seed)
