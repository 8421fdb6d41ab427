"""Text mode: a prompt (and optionally a start image) -> a paid run of one text-to-image (or image-to-image) stage.

`build_request` turns the visitor's settings into a typed request for a model (the other image surfaces build
theirs with it too); `describe` wraps it as a `PaidRun`; `text_to_image` hands that to the runner.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from pipelines.registry import ModelEntry
from pipelines.types import GenerationRequest, StepCallback, Task

from ..accounts.identity import Account
from ..catalogue import ASPECT_RATIOS, PREVIEW_NOTICE, Catalogue, aspect_value
from ..errors import InvalidRequest
from ..media.png import png_bytes, read_png_metadata
from ..media.storage import OutputStore
from ..runs.params import RANDOM_SEED, checked_count, checked_guidance, checked_seed, checked_steps, checked_strength
from ..runs.runner import PaidRun, PromptCheck, Runner, RunOutput, Stage
from ..safety.policy import PromptStyle, Surface, UploadLimits
from ..safety.uploads import load_image

__all__ = ["ImageOutput", "InvalidRequest", "TextImages", "TextToImageParams", "aspect_value"]


@dataclass(frozen=True)
class TextToImageParams:
    prompt: str
    model: str
    negative_prompt: str = ""
    aspect_ratio: str = "1:1"
    resolution: str = "1K"
    count: int = 1
    seed: int | None = None  # None or negative: random
    steps: int | None = None  # None or 0: the model's default
    guidance: float | None = None  # None or negative: the model's default
    prompt_style: str = "natural"  # natural (up to 2,000 characters) | tags (up to 1,000): presets/safety.toml
    init_image: str | None = None  # an uploaded image to start from (image-to-image)
    strength: float | None = None  # with init_image: how far to move away from it (0..1]; None: the model's default


@dataclass
class ImageOutput:
    files: list[Path]
    seeds: list[int]
    parameters: dict[str, Any]
    preview: bool
    notice: str = ""
    request_id: str = ""
    charged: int = 0
    replayed: bool = False
    blocked: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_job(cls, job: RunOutput) -> "ImageOutput":
        return cls(
            job.files, job.seeds, job.parameters, job.preview, PREVIEW_NOTICE if job.preview else "",
            job.request_id, job.charged, job.replayed, job.blocked,
        )

    def info(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "charged": self.charged,
            "replayed": self.replayed,
            "blocked": self.blocked,
            "seeds": self.seeds,
            "parameters": self.parameters,
            "preview": self.preview,
            "notice": self.notice,
            "files": [str(p) for p in self.files],
        }


class TextImages:
    def __init__(self, catalogue: Catalogue, runner: Runner, uploads: UploadLimits, store: OutputStore):
        self.catalogue = catalogue
        self.runner = runner
        self.uploads = uploads
        self.store = store

    def build_request(self, params: TextToImageParams, task: Task = Task.TEXT_TO_IMAGE) -> tuple[ModelEntry, GenerationRequest]:
        """The typed request for these settings on their model (the prompt's length is the policy's to check)."""
        prompt = (params.prompt or "").strip()
        if not prompt:
            raise InvalidRequest("Write a prompt first: describe what the image should show.")
        if params.prompt_style not in tuple(s.value for s in PromptStyle):
            raise InvalidRequest(f"Prompt style must be 'natural' or 'tags', not {params.prompt_style!r}.")
        entry = self.catalogue.require(params.model, task)
        width, height = self.catalogue.size(entry, params.aspect_ratio, params.resolution)
        request = GenerationRequest(
            prompt=prompt,
            negative_prompt=(params.negative_prompt or "").strip(),
            width=width,
            height=height,
            steps=checked_steps(params.steps, entry.defaults.steps),
            guidance=checked_guidance(params.guidance, entry.defaults.guidance),
            seed=checked_seed(params.seed),
            count=checked_count(params.count),
            scheduler=entry.defaults.scheduler,
        )
        return entry, request

    def describe(self, params: TextToImageParams, surface: Surface = Surface.IMAGE, context: dict[str, Any] | None = None) -> PaidRun:
        """Text mode's paid run: one stage (image-to-image when a start image is given). `context` is recorded with
        the request (e.g. a figure's picker choices, a comparison's group)."""
        task = Task.IMAGE_TO_IMAGE if params.init_image else Task.TEXT_TO_IMAGE
        entry, request = self.build_request(params, task)
        if params.prompt_style == PromptStyle.TAGS.value:  # Premium: its rules, whatever the UI shows
            premium = self.catalogue.mode("premium")
            if entry.is_remote:
                raise InvalidRequest(f"{premium.label} runs on local models; {entry.name} is API-only. Pick a local model, "
                                     "or write a natural description instead of tags.")
            if request.count > premium.max_batch:
                raise InvalidRequest(f"{premium.label} makes up to {premium.max_batch} images at once, not {request.count}.")
            if params.resolution not in premium.tiers:
                raise InvalidRequest(f"{premium.label} offers {', '.join(premium.tiers)}, not {params.resolution}.")
        asked = asdict(params)
        if context:
            asked["context"] = context
        inputs: tuple[tuple[bytes, str], ...] = ()
        if params.init_image:
            strength = checked_strength(params.strength, entry.defaults.strength)
            start = load_image(params.init_image, self.uploads).convert("RGB")
            cleaned = png_bytes(start, {}, 0)  # the cleaned start image, kept for history and replays
            inputs = ((cleaned, ".png"),)
            asked["init_image"] = self.store.name_for(cleaned, ".png")
            request = replace(request, reference_images=(start,), strength=strength)
        stages: tuple[Stage, ...] = (Stage("generate", entry, task, request, params.resolution),)
        if params.resolution == "4K" and not entry.is_remote:
            stages = self.four_k(entry, task, request, params.aspect_ratio)
        return PaidRun(
            stages=stages,
            surface=surface,
            replay=asked,
            prompts=(PromptCheck(params.prompt or "", params.prompt_style, params.negative_prompt or ""),),
            record={"aspect_ratio": params.aspect_ratio, "resolution": params.resolution, "prompt_style": params.prompt_style},
            inputs=inputs,
        )

    def four_k(self, entry: ModelEntry, task: Task, request: GenerationRequest, ratio: str) -> tuple[Stage, ...]:
        """4K on a local model: the 2K generation, then the 2x upscale of every output (a tiled image-to-image pass of
        the same model); one quote at the 4K price covers both, and a failure in either refunds it all."""
        if entry.upscale is None:
            raise InvalidRequest(f"{entry.name} has no 4K; pick 2K, or a model that offers 4K.")
        w2, h2 = self.catalogue.size(entry, ratio, "2K")
        upscale = entry.upscale
        upscaler = self.catalogue.get(upscale.model or entry.id)
        refine = replace(request, reference_images=(), strength=upscale.strength, tile=upscale.tile, tile_overlap=upscale.overlap,
                         steps=request.steps if upscaler.id == entry.id else upscaler.defaults.steps,
                         guidance=request.guidance if upscaler.id == entry.id else upscaler.defaults.guidance,
                         face=None, true_cfg=None, max_reference_area=None, scheduler=upscaler.defaults.scheduler)
        return (
            Stage("generate", entry, task, replace(request, width=w2, height=h2), "4K", label="4K (2K + 2x upscale)"),
            Stage("upscale", upscaler, Task.IMAGE_TO_IMAGE, refine, "4K", chain_all=True, priced=False, check_size=False),
        )

    def text_to_image(
        self,
        account: Account,
        params: TextToImageParams,
        idempotency_key: str | None = None,
        on_step: StepCallback | None = None,
        surface: Surface = Surface.IMAGE,
        context: dict[str, Any] | None = None,
    ) -> ImageOutput:
        """Text mode (with an optional start image), paid through the runner: every check (prompt policy for the
        surface, the request, the upload) runs before any credit is reserved."""
        run = self.describe(params, surface, context)
        return ImageOutput.from_job(self.runner.run(account, run, idempotency_key, on_step))

    # -- uploads and PNG settings ---------------------------------------------------------------------------
    def check_upload(self, path: str):
        """Validate an upload as a request would (for an early preview); raises InvalidUpload."""
        return load_image(path, self.uploads)

    def settings_from_png(self, path: str) -> dict[str, Any]:
        """The settings a PNG carries (this app's JSON chunk, or an A1111-style `parameters` chunk), mapped onto
        Text mode's fields; the file is validated like any upload first."""
        load_image(path, self.uploads)
        try:
            meta = read_png_metadata(Path(path).read_bytes())
        except Exception:  # a JPEG/WEBP, or a PNG whose chunks do not parse
            meta = {}
        record, params = meta.get("record") or {}, meta.get("parameters") or {}
        prompt = record.get("prompt") or params.get("prompt")
        if not prompt:
            raise InvalidRequest("This image carries no generation settings; PNGs made here or by A1111-style tools do.")
        model = record.get("model") or params.get("Model")
        entry = self.catalogue.get(model) if model in self.catalogue.ids() else None
        width = int(record.get("width") or params.get("width") or 1024)
        height = int(record.get("height") or params.get("height") or 1024)
        ratio = record.get("aspect_ratio") or min(ASPECT_RATIOS, key=lambda r: abs(aspect_value(r) - width / height))
        seed = params.get("seed", record.get("seed", RANDOM_SEED))
        guidance = record.get("guidance", params.get("CFG scale"))
        return {
            "prompt": prompt,
            "negative_prompt": record.get("negative_prompt", params.get("negative_prompt", "")),
            "model": entry.id if entry else None,
            "aspect_ratio": ratio,
            "resolution": record.get("resolution") or "1K",
            "seed": int(seed) if seed is not None else RANDOM_SEED,
            "steps": int(record.get("steps") or params.get("Steps") or 0),
            "guidance": float(guidance) if guidance is not None else -1.0,
            "prompt_style": record.get("prompt_style") or "natural",
        }
