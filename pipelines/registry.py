"""The model registry: typed entries declared as data in presets/models.toml, validated on load."""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import InvalidSize, UnknownModel, UnsupportedTask
from .family import get_family
from .types import OPTION_LABELS, FacePath, Task

ASPECT_RATIOS = ("1:1", "16:9", "9:16", "4:3", "3:4")
RESOLUTION_TIERS = ("1K", "2K", "4K", "480p", "720p")
DEFAULT_REGISTRY = Path(__file__).resolve().parent.parent / "presets" / "models.toml"


STEPS_MAX = 200  # denoising steps a request may ask for
GUIDANCE_MAX = 30.0  # the largest guidance any entry or request may use


class RegistryError(ValueError):
    """A registry file is invalid; the message names file, entry and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
    repo: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
    revision: str = "main"
    path: str | None = None

    @model_validator(mode="after")
    def _one_location(self) -> "Source":
        if (self.repo is None) == (self.path is None):
            raise ValueError("give exactly one of 'repo' (hub id) or 'path' (local folder)")
        return self


class Licence(_Strict):
    name: str
    non_commercial: bool = False
    region_restricted: bool = False
    note: str = ""


class Defaults(_Strict):
    steps: int = Field(ge=1, le=STEPS_MAX)
    guidance: float = Field(ge=0.0, le=GUIDANCE_MAX)
    scheduler: str | None = None
    strength: float = Field(default=0.75, gt=0.0, le=1.0)
    num_frames: int | None = Field(default=None, ge=1)
    fps: int | None = Field(default=None, ge=1, le=60)


Size = tuple[int, int]


class FastPaths(_Strict):
    """Speed options, all off by default (the lossy ones stay off unless an entry opts in).

    compile: torch.compile of the denoiser's repeated blocks (lossless within float tolerance).
    attention_backend: a diffusers attention backend name (e.g. "native", "flash", "_native_cudnn").
    fp8: torchao fp8 dynamic quantisation of the denoiser; only with compile (it is slower without). Lossy.
    step_cache: First Block Cache threshold (skips denoiser blocks when a step changes little). Lossy.
    """

    compile: bool = False
    attention_backend: str | None = None
    fp8: bool = False
    step_cache: float | None = Field(default=None, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _fp8_needs_compile(self) -> "FastPaths":
        if self.fp8 and not self.compile:
            raise ValueError("fp8 needs compile = true (fp8 dynamic quantisation is slower without torch.compile)")
        return self

    @property
    def any(self) -> bool:
        return self.compile or self.fp8 or self.attention_backend is not None or self.step_cache is not None


class GpuTiming(_Strict):
    """ZeroGPU: seconds one request borrows the GPU for = overhead_s + step_s x steps x outputs x megapixels
    (x frames for video); the runtime caps it at the platform's maximum."""

    overhead_s: float = Field(default=10, ge=0, le=300)
    step_s: float = Field(gt=0, le=60)

    def seconds(self, steps: int, count: int, width: int, height: int, frames: int | None = None) -> float:
        return self.overhead_s + self.step_s * max(1, steps) * max(1, count) * (width * height / 1e6) * max(1, frames or 1)


class Upscale(_Strict):
    """How a local entry reaches 4K: its 2K output refined by a tiled image-to-image pass of the same model."""

    method: Literal["tiled-img2img"] = "tiled-img2img"
    # the entry whose image-to-image refines the tiles: the entry itself unless its family has none (FLUX.2 -> FLUX.1)
    model: str | None = None
    strength: float = Field(default=0.3, gt=0.0, le=1.0)  # low: new detail, same picture
    tile: int = Field(default=1024, ge=64, le=2048)
    overlap: int = Field(default=128, ge=0, le=512)


class ChatSettings(_Strict):
    """A language model's own numbers (task "chat"): its context window in tokens, a reply's cap, its sampling."""

    context_tokens: int = Field(ge=512, le=2_000_000)
    max_new_tokens: int = Field(default=400, ge=16, le=8192)
    temperature: float = Field(default=0.8, ge=0.0, le=2.0)


class ServeOptions(_Strict):
    """How a local entry runs on a Ray Serve cluster (PLAYGROUND_BACKEND=ray; pipelines/serve): the resources of one
    replica and its autoscaling. An entry without a `serve` table gets these defaults: one replica on one GPU, always
    up (min_replicas = 0 scales to zero and pays a cold start of loading the weights), one request running and one
    queued per replica. Entries naming the same `group` share replicas: Serve multiplexes their models on one GPU, at
    most `max_models_per_replica` loaded at once (the least recently used is unloaded), and they must agree on
    every other field."""

    group: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9._-]*$")  # None: the entry alone
    num_gpus: float = Field(default=1.0, ge=0.0, le=8.0)  # fractions share a GPU between replicas
    num_cpus: float = Field(default=1.0, gt=0.0, le=64.0)
    min_replicas: int = Field(default=1, ge=0, le=1000)
    max_replicas: int = Field(default=1, ge=1, le=1000)
    target_ongoing_requests: float = Field(default=1.0, gt=0.0, le=100.0)  # autoscaling: requests per replica
    max_ongoing_requests: int = Field(default=2, ge=1, le=100)  # more wait in the caller's queue
    max_models_per_replica: int = Field(default=1, ge=1, le=16)
    # a replica being scaled down or replaced finishes its in-flight requests for up to this long (the app's own
    # deadline, PLAYGROUND_TIMEOUT_S, is 900 s by default)
    graceful_shutdown_timeout_s: float = Field(default=900.0, ge=0.0, le=86400.0)

    @model_validator(mode="after")
    def _check(self) -> "ServeOptions":
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) is above max_replicas ({self.max_replicas})")
        if self.target_ongoing_requests > self.max_ongoing_requests:
            raise ValueError(f"target_ongoing_requests ({self.target_ongoing_requests:g}) is above max_ongoing_requests "
                             f"({self.max_ongoing_requests}): autoscaling would never see it")
        return self

    def shared(self) -> dict[str, Any]:
        """Every field but the group: what the entries of one group must agree on."""
        return self.model_dump(exclude={"group"})


class ModelEntry(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    name: str
    family: str
    backend: Literal["local", "remote"] = "local"
    provider: str | None = None  # remote: an Inference Providers name (InferenceClient) or a presets/providers.toml id
    remote_model: str | dict[Task, str] | None = None  # remote: the model id (hub id or provider path), or one per task
    remote_params: dict[str, str | int | float | bool] = {}  # remote: fixed parameters sent with every request
    remote_body: dict[str, Any] = {}  # remote: this entry's own request template (replaces the vendor's per-task body)
    takes: tuple[str, ...] = ()  # remote: optional request fields it reads beyond its tasks' own (e.g. script, voice)
    tasks: tuple[Task, ...] = Field(min_length=1)
    source: Source | None = None
    defaults: Defaults = Defaults(steps=1, guidance=0.0)  # image and video entries must give theirs
    sizes: dict[str, dict[str, Size]] = {}  # image and video entries must give theirs; chat entries have none
    chat: ChatSettings | None = None  # language models (task "chat"): window, reply cap, temperature
    licence: Licence
    # how Remix and Advanced keep a face: a reference image, or a face adapter (FACE_PATHS); `face_paths` offers
    # further adapters on the same base for a visitor to pick (the first one, face_preservation, is the default)
    face_preservation: Literal["none", "reference"] | FacePath = "none"
    face_paths: tuple[FacePath, ...] = ()
    gpu: GpuTiming | None = None  # required for local entries (ZeroGPU durations)
    prompt_note: str = Field(default="", max_length=200)  # how to write prompts for it (shown by the prompt box)
    tiny: str | None = None
    fast: FastPaths = FastPaths()
    upscale: Upscale | None = None  # local: how 4K is made (a 2K generation, then a 2x upscale stage)
    # per-seed (default): a batch runs one pipeline call per seed, so every seed reproduces alone exactly;
    # one-call: the whole batch in one call (faster; seeds then differ from their single runs by rounding)
    batch: Literal["per-seed", "one-call"] = "per-seed"
    # reference and multi-reference: the most reference images one request may carry (the model's or its API's own
    # limit); None: no limit declared. Projects rank or refuse refs past it (presets/projects.toml over_cap).
    max_references: int | None = Field(default=None, ge=1)
    serve: ServeOptions | None = None  # local: how it runs on Ray Serve (None: ServeOptions' defaults)

    @property
    def offered_face_paths(self) -> tuple[str, ...]:
        """The face adapters a visitor may pick for this entry, the default first (none for reference models)."""
        if self.face_preservation in ("none", "reference"):
            return ()
        return tuple(dict.fromkeys((self.face_preservation, *self.face_paths)))

    @property
    def is_chat(self) -> bool:
        return Task.CHAT in self.tasks

    @model_validator(mode="after")
    def _check(self) -> "ModelEntry":
        if self.is_chat:
            if self.tasks != (Task.CHAT,):
                raise ValueError("tasks: a language model's only task is chat")
            if self.chat is None:
                raise ValueError("chat: language models need their window, e.g. chat = { context_tokens = 32768 }")
            if self.sizes or "defaults" in self.model_fields_set:
                raise ValueError("sizes and defaults are for image and video models; a chat entry gives `chat`")
        else:
            if self.chat is not None:
                raise ValueError("chat: only entries with task chat take chat settings")
            if not self.sizes or "defaults" not in self.model_fields_set:
                raise ValueError("sizes and defaults: image and video entries need both")
        if self.max_references is not None and not {Task.REFERENCE, Task.MULTI_REFERENCE} & set(self.tasks):
            raise ValueError("max_references: only entries with a reference or multi-reference task take reference images")
        for ratio, tiers in self.sizes.items():
            if ratio not in ASPECT_RATIOS:
                raise ValueError(f"sizes: unknown aspect ratio {ratio!r} (use {', '.join(ASPECT_RATIOS)})")
            for tier, (w, h) in tiers.items():
                if tier not in RESOLUTION_TIERS:
                    raise ValueError(f"sizes.{ratio}: unknown tier {tier!r} (use {', '.join(RESOLUTION_TIERS)})")
                if w <= 0 or h <= 0:
                    raise ValueError(f"sizes.{ratio}.{tier}: {w}x{h} is not a size")
        if self.backend == "remote":
            if not (self.provider and self.remote_model):
                raise ValueError("remote entries need 'provider' and 'remote_model'")
            if isinstance(self.remote_model, dict):
                missing = [t.value for t in self.tasks if t not in self.remote_model]
                if missing:
                    raise ValueError(f"remote_model: no model id for tasks {missing}")
            from .remote.transports import check_provider

            check_provider(self.provider, self.tasks, own_body=bool(self.remote_body))
            unknown = sorted(set(self.takes) - set(OPTION_LABELS))
            if unknown:
                raise ValueError(f"takes: unknown request fields {unknown} (known: {', '.join(OPTION_LABELS)})")
            if self.serve is not None:
                raise ValueError("serve: remote entries run at their provider, not on a Ray Serve deployment")
            return self
        if self.takes or self.remote_params or self.remote_body:
            raise ValueError("takes and remote_params are for remote entries; a local family declares what it reads")
        if self.source is None:
            raise ValueError("source: local entries need a hub 'repo' or a local 'path'")
        if self.gpu is None:
            raise ValueError("gpu: local entries need their ZeroGPU timing, e.g. gpu = { overhead_s = 10, step_s = 0.6 }")
        family = get_family(self.family)
        adapters = {self.face_preservation, *self.face_paths} - {"none", "reference"}
        if adapters and not family.accepts(Task.TEXT_TO_IMAGE) >= {"face"}:
            raise ValueError(f"face_preservation: family {self.family!r} takes no face adapter ({', '.join(sorted(adapters))})")
        if self.face_paths and self.face_preservation in ("none", "reference"):
            raise ValueError("face_paths: further face adapters go with an adapter as face_preservation")
        unsupported = [t.value for t in self.tasks if t not in family.tasks]
        if unsupported:
            raise ValueError(f"tasks: family {self.family!r} has no runner for {unsupported}")
        if self.batch == "one-call" and not family.batch_tasks:
            raise ValueError(f"batch: family {self.family!r} cannot run a batch in one call")
        if not self.tiny or self.tiny not in family.tiny_builders:
            raise ValueError(f"tiny: family {self.family!r} has tiny variants {sorted(family.tiny_builders)}, got {self.tiny!r}")
        for ratio, tiers in self.sizes.items():
            if "4K" in tiers:
                if self.upscale is None or (self.upscale.model is None and Task.IMAGE_TO_IMAGE not in family.tasks):
                    raise ValueError("sizes: a local 4K tier needs `upscale`, with a family that has image-to-image or "
                                     "upscale.model naming an entry that has")
                if "2K" not in tiers or tuple(tiers["4K"]) != (2 * tiers["2K"][0], 2 * tiers["2K"][1]):
                    raise ValueError(f"sizes.{ratio}: 4K must be exactly twice the 2K size (it is a 2x upscale of it)")
            for tier, (w, h) in tiers.items():
                if w % family.size_multiple or h % family.size_multiple:
                    raise ValueError(f"sizes.{ratio}.{tier}: {w}x{h} is not a multiple of {family.size_multiple}")
        return self

    @property
    def is_remote(self) -> bool:
        return self.backend == "remote"

    def remote_model_for(self, task: Task) -> str:
        model = self.remote_model
        return model[Task(task)] if isinstance(model, dict) else str(model)

    @property
    def serving(self) -> ServeOptions:
        """The entry's Ray Serve options, the defaults when it gives none."""
        return self.serve or ServeOptions()

    @property
    def serve_group(self) -> str:
        """The Serve deployment that runs it: its group, else its own id."""
        return self.serving.group or self.id

    @property
    def hub_repo(self) -> str | None:
        return self.source.repo if self.source else None

    def supports(self, task: Task) -> bool:
        return task in self.tasks

    def size_for(self, aspect_ratio: str, tier: str) -> Size:
        tiers = self.sizes.get(aspect_ratio)
        if tiers is None:
            raise InvalidSize(f"{self.name} has no {aspect_ratio} sizes; choose one of {', '.join(self.sizes)}")
        if tier not in tiers:
            raise InvalidSize(f"{self.name} offers {aspect_ratio} at {', '.join(tiers)}, not {tier}")
        return tiers[tier]


class Registry:
    """All declared models by id, in declaration order."""

    def __init__(self, entries: list[ModelEntry]):
        self._entries = {e.id: e for e in entries}
        for entry in entries:
            upscaler = entry.upscale.model if entry.upscale else None
            if upscaler and (upscaler not in self._entries or Task.IMAGE_TO_IMAGE not in self._entries[upscaler].tasks
                             or self._entries[upscaler].is_remote):
                raise RegistryError(f"entry '{entry.id}': field 'upscale.model': {upscaler!r} is not a local image-to-image entry")
        first: dict[str, ModelEntry] = {}
        for entry in entries:
            if entry.is_remote:
                continue
            other = first.setdefault(entry.serve_group, entry)
            if other is not entry and other.serving.shared() != entry.serving.shared():
                raise RegistryError(f"entry '{entry.id}': field 'serve': its group {entry.serve_group!r} is served with "
                                    f"'{other.id}', whose serve settings differ; give the group's entries the same ones")

    def __iter__(self):
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def ids(self) -> list[str]:
        return list(self._entries)

    def get(self, model_id: str) -> ModelEntry:
        try:
            return self._entries[model_id]
        except KeyError:
            raise UnknownModel(f"unknown model {model_id!r}; known models: {', '.join(self._entries)}") from None

    def for_task(self, task: Task) -> list[ModelEntry]:
        return [e for e in self if e.supports(task)]

    def require(self, model_id: str, task: Task) -> ModelEntry:
        entry = self.get(model_id)
        if not entry.supports(task):
            able = ", ".join(e.id for e in self.for_task(task)) or "none"
            raise UnsupportedTask(f"{entry.name} cannot do {task.value}; models that can: {able}")
        return entry

    def hub_repos(self) -> list[str]:
        return sorted({e.hub_repo for e in self if e.hub_repo})


def closest_ratio(width: int, height: int) -> str:
    """The named aspect ratio nearest to width:height."""
    def value(name: str) -> float:
        w, _, h = name.partition(":")
        return int(w) / int(h)

    return min(ASPECT_RATIOS, key=lambda r: abs(value(r) - width / height))


def _resolve_sizes(raw: dict, tables: dict) -> dict:
    sizes = raw.get("sizes")
    if isinstance(sizes, str):
        if sizes not in tables:
            raise KeyError(f"sizes: no size table {sizes!r} (tables: {', '.join(tables)})")
        raw = dict(raw, sizes=tables[sizes])
    return raw


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        loc = ".".join(str(p) for p in item["loc"]) or "(entry)"
        parts.append(f"field '{loc}': {item['msg']}")
    return "; ".join(parts)


def load_registry(path: Path | str = DEFAULT_REGISTRY) -> Registry:
    """Parse and validate a registry file; any bad entry raises RegistryError naming file, entry and field."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RegistryError(f"{path}: cannot read registry: {exc}") from exc
    tables = data.get("size_tables", {})
    entries: list[ModelEntry] = []
    seen: set[str] = set()
    for index, raw in enumerate(data.get("models", [])):
        label = raw.get("id") or f"#{index + 1}"
        try:
            entry = ModelEntry.model_validate(_resolve_sizes(raw, tables))
        except ValidationError as exc:
            raise RegistryError(f"{path}: entry '{label}': {_describe(exc)}") from None
        except (KeyError, ValueError) as exc:
            raise RegistryError(f"{path}: entry '{label}': {exc}") from None
        if entry.id in seen:
            raise RegistryError(f"{path}: entry '{label}': field 'id': duplicate id")
        seen.add(entry.id)
        entries.append(entry)
    if not entries:
        raise RegistryError(f"{path}: no [[models]] entries")
    return Registry(entries)

