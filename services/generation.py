"""Generation requests: validate, quote, and run as paid jobs (reserve -> run -> safety -> store -> capture)."""
from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from pipelines.registry import ASPECT_RATIOS, ModelEntry, Registry
from pipelines.runtime import PREVIEW_NOTICE, PipelineRuntime
from pipelines.types import GenerationRequest, StepCallback, Task

from .identity import Account
from .jobs import JobResult, Jobs
from .metadata import png_bytes, read_png_metadata
from .plans import Plans, Quote
from .policy import PromptPolicy, Surface, UploadLimits
from .storage import OutputStore
from .uploads import load_image

MAX_PROMPT_CHARS = 2000
MAX_COUNT = 8


class InvalidRequest(ValueError):
    """The request cannot run as given; the message says what to change."""


def aspect_value(name: str) -> float:
    """'16:9' -> 1.777..."""
    w, _, h = name.partition(":")
    return int(w) / int(h)


def checked_count(count: int) -> int:
    count = int(count)
    if not 1 <= count <= MAX_COUNT:
        raise InvalidRequest(f"Batch size must be between 1 and {MAX_COUNT}, not {count}.")
    return count


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
    prompt_style: str = "natural"  # natural (up to 2,000 characters) | tags (up to 1,000)
    init_image: str | None = None  # an uploaded image to start from (image-to-image)
    strength: float = 0.75  # with init_image: how far to move away from it (0..1)


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
    def from_job(cls, job: JobResult) -> "ImageOutput":
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


class GenerationService:
    def __init__(self, registry: Registry, runtime: PipelineRuntime, plans: Plans, jobs: Jobs, policy: PromptPolicy, uploads: UploadLimits, store: OutputStore):
        self.registry = registry
        self.runtime = runtime
        self.plans = plans
        self.jobs = jobs
        self.policy = policy
        self.uploads = uploads
        self.store = store

    def models(self) -> list[dict[str, Any]]:
        """The registry as JSON, with whether real weights or the offline preview would run."""
        rows = []
        for entry in self.registry:
            row = entry.model_dump(mode="json", exclude={"sizes"})
            row["sizes"] = {r: {t: list(s) for t, s in tiers.items()} for r, tiers in entry.sizes.items()}
            if row.get("source") and "path" in row["source"]:
                # A dict with a "path" key reads as a file to gradio_client, which would try to download it.
                row["source"]["local_folder"] = row["source"].pop("path")
            row.update(self.runtime.status(entry))
            rows.append(row)
        return rows

    def build_request(self, params: TextToImageParams, task: Task = Task.TEXT_TO_IMAGE) -> tuple[ModelEntry, GenerationRequest]:
        prompt = (params.prompt or "").strip()
        if not prompt:
            raise InvalidRequest("Write a prompt first: describe what the image should show.")
        if params.prompt_style not in ("natural", "tags"):
            raise InvalidRequest(f"Prompt style must be 'natural' or 'tags', not {params.prompt_style!r}.")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise InvalidRequest(f"The prompt is {len(prompt)} characters; shorten it to {MAX_PROMPT_CHARS} or fewer.")
        entry = self.registry.require(params.model, task)
        width, height = entry.size_for(params.aspect_ratio, params.resolution)
        count = checked_count(params.count)
        seed = params.seed
        if seed is None or int(seed) < 0:
            seed = secrets.randbelow(2**32)
        if int(seed) >= 2**32:
            raise InvalidRequest("Seed must be below 4294967296 (or -1 for random).")
        steps = int(params.steps or 0) or entry.defaults.steps
        if not 1 <= steps <= 200:
            raise InvalidRequest(f"Steps must be between 1 and 200, not {steps}.")
        guidance = params.guidance
        if guidance is None or guidance < 0:
            guidance = entry.defaults.guidance
        request = GenerationRequest(
            prompt=prompt,
            negative_prompt=(params.negative_prompt or "").strip(),
            width=width,
            height=height,
            steps=steps,
            guidance=float(guidance),
            seed=int(seed),
            count=count,
            scheduler=entry.defaults.scheduler,
        )
        return entry, request

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
        entry = self.registry.get(model) if model in self.registry.ids() else None
        width = int(record.get("width") or params.get("width") or 1024)
        height = int(record.get("height") or params.get("height") or 1024)
        ratio = record.get("aspect_ratio") or min(ASPECT_RATIOS, key=lambda r: abs(aspect_value(r) - width / height))
        seed = params.get("seed", record.get("seed", -1))
        guidance = record.get("guidance", params.get("CFG scale"))
        return {
            "prompt": prompt,
            "negative_prompt": record.get("negative_prompt", params.get("negative_prompt", "")),
            "model": entry.id if entry else None,
            "aspect_ratio": ratio,
            "resolution": record.get("resolution") or "1K",
            "seed": int(seed) if seed is not None else -1,
            "steps": int(record.get("steps") or params.get("Steps") or 0),
            "guidance": float(guidance) if guidance is not None else -1.0,
            "prompt_style": record.get("prompt_style") or "natural",
        }

    def quote(self, model: str, task: Task | str, aspect_ratio: str, resolution: str, count: int = 1, figures: int = 1) -> Quote:
        """The price of a request, after checking the model offers the task and the size."""
        task = Task(task)
        entry = self.registry.require(model, task)
        entry.size_for(aspect_ratio, resolution)
        return self.plans.quote(entry, task, resolution, checked_count(count), figures)

    def text_to_image(
        self,
        account: Account,
        params: TextToImageParams,
        idempotency_key: str | None = None,
        on_step: StepCallback | None = None,
        surface: Surface = Surface.IMAGE,
        context: dict[str, Any] | None = None,
    ) -> ImageOutput:
        """Text mode (with an optional start image). Every check runs before any credit is reserved:
        prompt policy (for the surface: figures are SFW adults), request validation, the upload.
        `context` is recorded with the request (e.g. a figure's picker choices)."""
        self.policy.check(params.prompt or "", account, surface, params.prompt_style, params.negative_prompt or "")
        task = Task.IMAGE_TO_IMAGE if params.init_image else Task.TEXT_TO_IMAGE
        entry, request = self.build_request(params, task)
        asked = asdict(params)
        if context:
            asked["context"] = context
        if params.init_image:
            if not 0.0 < float(params.strength) <= 1.0:
                raise InvalidRequest(f"Strength must be between 0 and 1, not {params.strength}.")
            start = load_image(params.init_image, self.uploads).convert("RGB")
            kept = self.store.put(png_bytes(start, {}, 0), ".png")  # the cleaned start image, for history and replays
            asked["init_image"] = self.store.relative(kept)
            request = replace(request, reference_images=(start,), strength=float(params.strength))
        quote = self.plans.quote(entry, task, params.resolution, request.count)

        def work(cancel):
            result = self.runtime.run(entry, task, request, on_step=on_step, cancel=cancel)
            result.parameters.update(aspect_ratio=params.aspect_ratio, resolution=params.resolution, prompt_style=params.prompt_style)
            return result

        job = self.jobs.run(
            account, quote=quote, request=asked, work=work, idempotency_key=idempotency_key,
            allow_flagged=account.can("adult_prompts") and not surface.sfw_only,
        )
        return ImageOutput.from_job(job)
