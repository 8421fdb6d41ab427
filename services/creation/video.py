"""Video: Figure to Video (figure + required Action, optional Background/Outfit) and Image to Video
(members only). With a Background or Outfit, the start frame is made first from the figure's canonical
image through a reference-editing model (the Remix path), then animated; one reservation covers both
stages, and a failure in either refunds it all. Output: H.264 MP4 plus a poster frame."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from pipelines.registry import ModelEntry, Registry
from pipelines.types import GenerationRequest, StepCallback, Task

from ..accounts.history import History
from ..accounts.identity import Account
from ..accounts.plans import Quote
from ..catalogue import PREVIEW_NOTICE, Catalogue
from ..errors import UserError
from ..faces import monitor
from ..presets_io import PRESETS_DIR, load_validated
from ..runs.params import checked_seed
from ..runs.runner import PaidRun, PromptCheck, Runner, Stage
from ..safety.policy import Surface
from .figures import Figures

DEFAULT_VIDEO = PRESETS_DIR / "video.toml"


class VideoError(UserError, ValueError):
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


class Talking(BaseModel):
    """Talking-avatar models: the longest script, and the voices a visitor picks from."""

    model_config = ConfigDict(extra="forbid")
    script_max: int = Field(ge=1, le=5000)
    voices: dict[str, str] = Field(min_length=1)


class VideoPresets(BaseModel):
    model_config = ConfigDict(extra="forbid")
    defaults: VideoDefaults
    talking: Talking
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
    def __init__(self, catalogue: Catalogue, runner: Runner, figures: Figures, history: History, presets: VideoPresets):
        self.catalogue = catalogue
        self.runner = runner
        self.figures = figures
        self.history = history
        self.presets = presets

    def models(self) -> list[ModelEntry]:
        """Image-to-video models, local and API-only."""
        return self.catalogue.entries(Task.IMAGE_TO_VIDEO)

    def voice_choices(self) -> list[tuple[str, str]]:
        return [(label, key) for key, label in self.presets.talking.voices.items()]

    def _speech(self, entry: ModelEntry, script: str, voice: str | None) -> tuple[str | None, str | None]:
        """A talking-avatar model needs a script (and takes a voice from presets); other models refuse one."""
        script = (script or "").strip()
        if "script" not in entry.takes:
            if script:
                raise VideoError(f"{entry.name} does not speak a script; leave the script empty or pick a talking-avatar model.")
            return None, None
        talking = self.presets.talking
        if not script:
            raise VideoError(f"{entry.name} speaks a script: write what the figure says (up to {talking.script_max} characters).")
        if len(script) > talking.script_max:
            raise VideoError(f"The script is {len(script)} characters; {entry.name} takes up to {talking.script_max}.")
        voice = voice or next(iter(talking.voices))
        if voice not in talking.voices:
            raise VideoError(f"Voice {voice!r} is not one of {', '.join(talking.voices)}.")
        return script, voice

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

    def start_frame_entry(self) -> ModelEntry:
        return self.catalogue.get(self.presets.defaults.start_frame_model)

    def start_frame_ratio(self, aspect_ratio: str) -> str:
        start = self.start_frame_entry()
        return aspect_ratio if aspect_ratio in start.sizes else "1:1"

    def quote(self, model: str, aspect_ratio: str, resolution: str, staged: bool) -> Quote:
        """The price line's quote: the video, plus the start frame when a Background or Outfit is picked."""
        video = self.catalogue.quote(model, Task.IMAGE_TO_VIDEO, aspect_ratio, resolution, 1)
        if not staged:
            return video
        start = self.catalogue.quote(self.start_frame_entry().id, Task.REFERENCE, self.start_frame_ratio(aspect_ratio), "1K", 1)
        return Quote.combined([start, video], ["start frame", "video"])

    # -- the two modes -----------------------------------------------------------------------------------
    def figure_to_video(self, account: Account, figure_id: str, action: str, *, background: str | None = None,
                        outfit: str | None = None, prompt: str = "", model: str | None = None, aspect_ratio: str = "16:9",
                        resolution: str | None = None, seed: int | None = None, idempotency_key: str | None = None,
                        on_step: StepCallback | None = None, script: str = "", voice: str | None = None,
                        keep_style: bool = True) -> VideoOutput:
        act = self._preset("actions", action, required=True)
        bg = self._preset("backgrounds", background, required=False)
        wear = self._preset("outfits", outfit, required=False)
        text = (prompt or "").strip()
        reference = self.figures.reference(account, figure_id, purpose="advanced")  # the reference sheet when picked
        asked = {"mode": "figure", "figure_id": figure_id, "action": action, "background": background or "",
                 "outfit": outfit or "", "prompt": text, "keep_style": bool(keep_style), "reference": reference.source}
        return self._run(account, reference.image, act, bg, wear, text, model, aspect_ratio, resolution, seed, asked, (),
                         idempotency_key, on_step, script, voice, self.figures.style_lock(reference, keep_style),
                         annotate=self._sim_ref(account, figure_id))

    def _sim_ref(self, account: Account, figure_id: str):
        """The identity monitor on a figure's video: SimRef of its first frame against the canonical face."""
        canonical = self.figures.reference(account, figure_id)  # the canonical image, even when the sheet started it

        def annotate(result) -> None:
            faces = self.figures.faces
            references = {figure_id: monitor.reference(faces, canonical.image, canonical.embedding)}
            simrefs = monitor.outputs(faces, references, monitor.first_frames(result))
            if simrefs is not None:
                result.parameters["sim_ref"] = simrefs
                result.parameters["figure_ids"] = [figure_id]

        return annotate

    def image_to_video(self, account: Account, request_id: str, index: int, action: str, *, prompt: str = "",
                       model: str | None = None, aspect_ratio: str = "16:9", resolution: str | None = None,
                       seed: int | None = None, idempotency_key: str | None = None, on_step: StepCallback | None = None,
                       script: str = "", voice: str | None = None) -> VideoOutput:
        self.runner.check_features(account, ("image_to_video",))
        act = self._preset("actions", action, required=True)
        text = (prompt or "").strip()
        index = int(index)
        images = self.history.image_files(account.id, request_id)
        if not 0 <= index < len(images):
            raise VideoError(f"Pick one of your generated images: {request_id} has {len(images)} image(s).")
        asked = {"mode": "image", "source": request_id, "index": index, "action": action, "prompt": text}
        return self._run(account, images[index], act, None, None, text, model, aspect_ratio, resolution, seed, asked,
                         ("image_to_video",), idempotency_key, on_step, script, voice)

    def text_models(self) -> list[ModelEntry]:
        return self.catalogue.entries(Task.TEXT_TO_VIDEO)

    def text_quote(self, model: str, aspect_ratio: str, resolution: str | None = None) -> Quote:
        entry = self.catalogue.require(model, Task.TEXT_TO_VIDEO)
        return self.catalogue.quote(entry.id, Task.TEXT_TO_VIDEO, aspect_ratio, resolution or self.catalogue.default_tier(entry, aspect_ratio), 1)

    def text_to_video(self, account: Account, prompt: str, *, model: str | None = None, aspect_ratio: str = "16:9",
                      resolution: str | None = None, seed: int | None = None, idempotency_key: str | None = None,
                      on_step: StepCallback | None = None) -> VideoOutput:
        """Members: a video from a prompt alone (a text-to-video model), SFW, paid through the runner."""
        self.runner.check_features(account, ("video_prompt",))
        text = (prompt or "").strip()
        if not text:
            raise VideoError("Describe the video: the subject, what moves and how the camera moves.")
        entry = self.catalogue.require(model or self.text_models()[0].id, Task.TEXT_TO_VIDEO)
        resolution = resolution or self.catalogue.default_tier(entry, aspect_ratio)
        width, height = self.catalogue.size(entry, aspect_ratio, resolution)
        seed = checked_seed(seed)
        request = GenerationRequest(
            prompt=text, negative_prompt=self.presets.defaults.negative, width=width, height=height,
            steps=entry.defaults.steps, guidance=entry.defaults.guidance, seed=seed, count=1,
            num_frames=entry.defaults.num_frames, fps=entry.defaults.fps, scheduler=entry.defaults.scheduler,
        )
        run = PaidRun(
            stages=(Stage("generate", entry, Task.TEXT_TO_VIDEO, request, resolution, label="video"),),
            surface=Surface.VIDEO,
            replay={"mode": "text", "prompt": text, "model": entry.id, "aspect_ratio": aspect_ratio, "resolution": resolution,
                    "seed": seed},
            prompts=(PromptCheck(text),),
            requires=("video_prompt",),
            record={"aspect_ratio": aspect_ratio, "resolution": resolution},
        )
        return self._output(self.runner.run(account, run, idempotency_key, on_step))

    def _output(self, job) -> VideoOutput:
        return VideoOutput(
            job.request_id, job.files[0], job.posters[0] if job.posters else None, job.seeds[0], job.parameters,
            job.charged, job.preview, job.replayed, PREVIEW_NOTICE if job.preview else "",
        )

    def _run(self, account, source: Path, act: Preset, bg: Preset | None, wear: Preset | None, text: str, model, aspect_ratio,
             resolution, seed, asked, requires, idempotency_key, on_step, script="", voice=None, lock=None, annotate=None) -> VideoOutput:
        entry = self.catalogue.require(model or self.presets.defaults.figure_model, Task.IMAGE_TO_VIDEO)
        script, voice = self._speech(entry, script, voice)
        if script:
            asked = dict(asked, script=script, voice=voice)
        resolution = resolution or self.catalogue.default_tier(entry, aspect_ratio)  # the model's tier for the ratio
        width, height = self.catalogue.size(entry, aspect_ratio, resolution)
        staged = bg is not None or wear is not None
        seed = checked_seed(seed)
        scene = [p.prompt for p in (wear, bg) if p is not None]
        motion = ", ".join([f"the person {act.prompt}", *scene, self.presets.defaults.identity, *([text] if text else [])])
        negative = self.presets.defaults.negative
        if lock is not None:  # the figure's style register holds through the motion (and the start frame)
            motion, negative = lock.instruction(motion), lock.negative(negative)
        with Image.open(source) as opened:
            start_image = opened.convert("RGB")
        video_request = GenerationRequest(
            prompt=motion, negative_prompt=negative, width=width, height=height,
            steps=entry.defaults.steps, guidance=entry.defaults.guidance, seed=seed, count=1,
            num_frames=entry.defaults.num_frames, fps=entry.defaults.fps, scheduler=entry.defaults.scheduler,
            reference_images=(start_image,), script=script, voice=voice,
        )
        stages = [Stage("animate", entry, Task.IMAGE_TO_VIDEO, video_request, resolution, chain=staged, label="video")]
        if staged:
            start_entry = self.start_frame_entry()
            sw, sh = self.catalogue.size(start_entry, self.start_frame_ratio(aspect_ratio), "1K")
            start_request = GenerationRequest(
                prompt=", ".join(["the same person, identical face and hairstyle", *scene,
                                  *([lock.register.positive] if lock is not None and lock.locked else []), "full body visible"]),
                width=sw, height=sh, steps=start_entry.defaults.steps, guidance=start_entry.defaults.guidance, seed=seed,
                count=1, scheduler=start_entry.defaults.scheduler, reference_images=(start_image,),
            )
            stages.insert(0, Stage("start_frame", start_entry, Task.REFERENCE, start_request, "1K", keep=True, label="start frame"))
        run = PaidRun(
            stages=tuple(stages),
            surface=Surface.VIDEO,
            replay=dict(asked, model=entry.id, aspect_ratio=aspect_ratio, resolution=resolution, seed=seed),
            # a script is free text the figure speaks: the same SFW policy and members-only rule as a video prompt
            prompts=tuple(PromptCheck(t) for t in (text, script) if t),
            requires=tuple(requires) + (("video_prompt",) if text or script else ()),
            record={"aspect_ratio": aspect_ratio, "resolution": resolution, "action": asked["action"],
                    **({"style_register": lock.record()} if lock is not None else {})},
            record_stages=True,
            annotate=annotate,
        )
        return self._output(self.runner.run(account, run, idempotency_key, on_step))
