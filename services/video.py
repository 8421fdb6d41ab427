"""Video: Figure to Video (figure + required Action, optional Background/Outfit) and Image to Video
(members only). With a Background or Outfit, the start frame is made first from the figure's canonical
image through a reference-editing model (the Remix path), then animated; one reservation covers both
stages, and a failure in either refunds it all. Output: H.264 MP4 plus a poster frame."""
from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from pipelines.registry import ModelEntry, Registry
from pipelines.runtime import PREVIEW_NOTICE, PipelineRuntime
from pipelines.types import GenerationRequest, StepCallback, Task

from .figures import Figures
from .history import History
from .identity import Account
from .jobs import Jobs
from .metadata import png_bytes
from .plans import Plans, Quote
from .policy import PromptPolicy, Surface, require
from .presets_io import load_validated
from .storage import OutputStore

DEFAULT_VIDEO = Path(__file__).resolve().parent.parent / "presets" / "video.toml"


class VideoError(ValueError):
    """A video request that cannot run as asked; the message says what to change."""


class Preset(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str = Field(min_length=1)
    prompt: str = Field(min_length=1)


class VideoDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid")
    figure_model: str
    start_frame_model: str
    identity: str
    negative: str


class VideoPresets(BaseModel):
    model_config = ConfigDict(extra="forbid")
    defaults: VideoDefaults
    actions: dict[str, Preset] = Field(min_length=1)
    backgrounds: dict[str, Preset] = {}
    outfits: dict[str, Preset] = {}

    def check(self, registry: Registry) -> None:
        video = registry.get(self.defaults.figure_model)
        if Task.IMAGE_TO_VIDEO not in video.tasks:
            raise VideoError(f"video.toml defaults.figure_model: {video.id} does not do image-to-video")
        start = registry.get(self.defaults.start_frame_model)
        if Task.REFERENCE not in start.tasks:
            raise VideoError(f"video.toml defaults.start_frame_model: {start.id} does not take a reference image")

    def choices(self, kind: str) -> list[tuple[str, str]]:
        return [(p.label, key) for key, p in getattr(self, kind).items()]


def load_video_presets(path: Path = DEFAULT_VIDEO) -> VideoPresets:
    return load_validated(path, VideoPresets, VideoError)


@dataclass
class VideoOutput:
    request_id: str
    video: Path
    poster: Path | None
    seed: int
    parameters: dict[str, Any]
    charged: int
    preview: bool
    replayed: bool = False
    notice: str = ""

    def info(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id, "video": str(self.video), "poster": str(self.poster) if self.poster else None,
            "seed": self.seed, "charged": self.charged, "preview": self.preview, "replayed": self.replayed,
            "notice": self.notice, "parameters": self.parameters,
        }


class VideoService:
    def __init__(self, registry: Registry, runtime: PipelineRuntime, plans: Plans, jobs: Jobs, policy: PromptPolicy,
                 store: OutputStore, figures: Figures, history: History, presets: VideoPresets):
        self.registry = registry
        self.runtime = runtime
        self.plans = plans
        self.jobs = jobs
        self.policy = policy
        self.store = store
        self.figures = figures
        self.history = history
        self.presets = presets

    def models(self) -> list[ModelEntry]:
        return [e for e in self.registry.for_task(Task.IMAGE_TO_VIDEO) if not e.is_remote]

    # -- validation shared by both modes -----------------------------------------------------------------
    def _preset(self, kind: str, key: str | None, required: bool) -> Preset | None:
        table = getattr(self.presets, kind)
        if not key:
            if required:
                raise VideoError(f"Pick an Action: one of {', '.join(table)}. The Action says what the figure does.")
            return None
        if key not in table:
            raise VideoError(f"{kind[:-1].title()} {key!r} is not one of {', '.join(table)}.")
        return table[key]

    def _prompt_check(self, account: Account, prompt: str) -> str:
        prompt = (prompt or "").strip()
        if prompt:
            require(account, "video_prompt")
            self.policy.check(prompt, account, Surface.VIDEO)
        return prompt

    def quote(self, model: str, aspect_ratio: str, resolution: str, staged: bool) -> Quote:
        entry = self.registry.require(model, Task.IMAGE_TO_VIDEO)
        entry.size_for(aspect_ratio, resolution)
        video = self.plans.quote(entry, Task.IMAGE_TO_VIDEO, resolution, 1)
        if not staged:
            return video
        start = self.plans.quote(self.registry.get(self.presets.defaults.start_frame_model), Task.REFERENCE, "1K", 1)
        total = video.total + start.total
        return Quote(entry.id, Task.IMAGE_TO_VIDEO.value, total, 1, 1, 1, total, note=f"{start.total} (start frame) + {video.total} (video)")

    # -- the two modes -----------------------------------------------------------------------------------
    def figure_to_video(self, account: Account, figure_id: str, action: str, *, background: str | None = None,
                        outfit: str | None = None, prompt: str = "", model: str | None = None, aspect_ratio: str = "16:9",
                        resolution: str | None = None, seed: int | None = None, idempotency_key: str | None = None,
                        on_step: StepCallback | None = None) -> VideoOutput:
        act = self._preset("actions", action, required=True)
        bg = self._preset("backgrounds", background, required=False)
        wear = self._preset("outfits", outfit, required=False)
        text = self._prompt_check(account, prompt)
        reference = self.figures.reference(account, figure_id)
        asked = {"mode": "figure", "figure_id": figure_id, "action": action, "background": background or "",
                 "outfit": outfit or "", "prompt": text}
        return self._run(account, reference.image, act, bg, wear, text, model, aspect_ratio, resolution, seed, asked, idempotency_key, on_step)

    def image_to_video(self, account: Account, request_id: str, index: int, action: str, *, prompt: str = "",
                       model: str | None = None, aspect_ratio: str = "16:9", resolution: str | None = None,
                       seed: int | None = None, idempotency_key: str | None = None, on_step: StepCallback | None = None) -> VideoOutput:
        require(account, "image_to_video")
        act = self._preset("actions", action, required=True)
        text = self._prompt_check(account, prompt)
        index = int(index)
        images = self.history.image_files(account.id, request_id)
        if not 0 <= index < len(images):
            raise VideoError(f"Pick one of your generated images: {request_id} has {len(images)} image(s).")
        asked = {"mode": "image", "source": request_id, "index": index, "action": action, "prompt": text}
        return self._run(account, images[index], act, None, None, text, model, aspect_ratio, resolution, seed, asked, idempotency_key, on_step)

    def _run(self, account, source: Path, act: Preset, bg: Preset | None, wear: Preset | None, text: str, model, aspect_ratio,
             resolution, seed, asked, idempotency_key, on_step) -> VideoOutput:
        entry = self.registry.require(model or self.presets.defaults.figure_model, Task.IMAGE_TO_VIDEO)
        resolution = resolution or next(iter(entry.sizes.get(aspect_ratio, {})), "")  # the model's tier for the ratio
        width, height = entry.size_for(aspect_ratio, resolution)
        staged = bg is not None or wear is not None
        quote = self.quote(entry.id, aspect_ratio, resolution, staged)
        seed = secrets.randbelow(2**32) if seed is None or int(seed) < 0 else int(seed)
        scene = [p.prompt for p in (wear, bg) if p is not None]
        motion = ", ".join([f"the person {act.prompt}", *scene, self.presets.defaults.identity, *([text] if text else [])])
        video_request = GenerationRequest(
            prompt=motion, negative_prompt=self.presets.defaults.negative, width=width, height=height,
            steps=entry.defaults.steps, guidance=entry.defaults.guidance, seed=seed, count=1,
            num_frames=entry.defaults.num_frames, fps=entry.defaults.fps, scheduler=entry.defaults.scheduler,
        )
        start_entry = self.registry.get(self.presets.defaults.start_frame_model)
        start_request = None
        if staged:
            sw, sh = start_entry.size_for(aspect_ratio if aspect_ratio in start_entry.sizes else "1:1", "1K")
            start_request = GenerationRequest(
                prompt=", ".join(["the same person, identical face and hairstyle", *scene, "photorealistic, full body visible"]),
                width=sw, height=sh, steps=start_entry.defaults.steps, guidance=start_entry.defaults.guidance, seed=seed,
                count=1, scheduler=start_entry.defaults.scheduler,
            )
        with Image.open(source) as opened:
            start_image = opened.convert("RGB")

        def work(cancel):
            stages: list[dict[str, Any]] = []
            first = start_image
            planned_video = video_request.steps
            if start_request is not None:
                stage_one = self.runtime.run(
                    start_entry, Task.REFERENCE, replace(start_request, reference_images=(first,)), cancel=cancel,
                    on_step=(lambda d, t: on_step(d, t + planned_video)) if on_step else None,
                )
                first = stage_one.images[0]
                kept = self.store.put(png_bytes(first, stage_one.parameters, seed), ".png")
                stages.append({"stage": "start_frame", "file": self.store.relative(kept), **stage_one.parameters})
            offset = start_request.steps if start_request is not None else 0
            result = self.runtime.run(
                entry, Task.IMAGE_TO_VIDEO, replace(video_request, reference_images=(first,)), cancel=cancel,
                on_step=(lambda d, t: on_step(offset + d, offset + t)) if on_step else None,
            )
            stages.append({"stage": "animate", **{k: v for k, v in result.parameters.items() if k != "stages"}})
            result.parameters.update(stages=stages, aspect_ratio=aspect_ratio, resolution=resolution, action=asked["action"])
            return result

        job = self.jobs.run(account, quote=quote, request=dict(asked, model=entry.id, aspect_ratio=aspect_ratio,
                            resolution=resolution, seed=seed), work=work, idempotency_key=idempotency_key)
        return VideoOutput(
            job.request_id, job.files[0], job.posters[0] if job.posters else None, job.seeds[0], job.parameters,
            job.charged, job.preview, job.replayed, PREVIEW_NOTICE if job.preview else "",
        )
