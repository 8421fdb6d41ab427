"""Runs registry entries: picks real weights or the tiny offline preview, loads lazily through the cache."""
from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch

from .cache import PipelineCache
from .errors import RemoteBackendUnavailable, UnsupportedOption, WeightsUnavailable
from .face_weights import complete_face, face_lora
from .family import get_family
from .lora import LoraUse, load_lora_library
from .registry import ModelEntry, Registry
from .remote import RemoteBackend, RemoteSettings
from .serve.backend import RaySettings, ServeBackend
from .upscale import run_tiled
from .preview import PREVIEW_NOTICE, PREVIEW_TEXT_NOTICE, build_tiny, preview_notice, preview_request  # noqa: F401
from .zerogpu import INSTANTID_STEP_COST, ZEROGPU_MAX_S, _run_on_accelerator, gpu_duration, on_accelerator, zerogpu_refusal  # noqa: F401
from .types import OPTION_LABELS, GenerationRequest, GenerationResult, StepCallback, Task

__all__ = ["PREVIEW_NOTICE", "PREVIEW_TEXT_NOTICE", "PipelineRuntime", "RemoteBackendUnavailable", "RuntimeSettings", "WeightsUnavailable", "build_tiny"]

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class RuntimeSettings:
    tiny_root: Path
    # auto: real weights when present (or downloadable), else the tiny preview; force: always the
    # preview; forbid: never the preview (a request without weights fails naming the repo).
    preview: Literal["auto", "force", "forbid"] = "auto"
    # None: downloads only on a machine with a GPU (a 24 GB download helps nobody on a CPU).
    allow_downloads: bool | None = None
    device: str | None = None
    dtype: str | None = None
    cache_budget_bytes: int | None = None
    remote: RemoteSettings | None = None  # API-only entries (None: from the environment)
    # where local entries run: in this process, or on their Ray Serve deployments (pipelines/serve; ray: None = defaults)
    backend: Literal["local", "ray"] = "local"
    ray: RaySettings | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend {self.backend!r}: use one of {', '.join(BACKENDS)} (PLAYGROUND_BACKEND)")


BACKENDS = ("local", "ray")


def pick_device(override: str | None = None) -> torch.device:
    if override:
        return torch.device(override)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(device: torch.device, override: str | None = None) -> torch.dtype:
    if override:
        return getattr(torch, override)
    return {"cuda": torch.bfloat16, "mps": torch.float16}.get(device.type, torch.float32)


@dataclass(frozen=True)
class Resolved:
    """Where an entry's weights come from for this process."""

    location: str
    revision: str | None
    preview: bool
    reason: str
    local_only: bool = True


# A remote language model's tokenizer is not here: its context is estimated at this many characters per token, on the
# safe side (English runs about 4 per token on current tokenizers; code and other scripts fewer).
REMOTE_CHARS_PER_TOKEN = 3

def _repo_cached(repo: str, revision: str, marker: str = "model_index.json") -> bool:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, marker, revision=revision)
    return isinstance(found, str)


class PipelineRuntime:
    def __init__(self, registry: Registry, settings: RuntimeSettings, cache: PipelineCache | None = None):
        self.registry = registry
        self.settings = settings
        self.cache = cache or PipelineCache(settings.cache_budget_bytes)
        self.device = pick_device(settings.device)
        self.dtype = pick_dtype(self.device, settings.dtype)
        self.remote = RemoteBackend(settings.remote)
        self.serve = ServeBackend(settings.ray or RaySettings()) if settings.backend == "ray" else None
        self._locks: dict[Any, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # -- where weights come from -------------------------------------------------
    @property
    def downloads_allowed(self) -> bool:
        allowed = self.settings.allow_downloads
        return torch.cuda.is_available() if allowed is None else allowed

    def resolve(self, entry: ModelEntry) -> Resolved:
        if entry.is_remote:
            raise RemoteBackendUnavailable(f"{entry.name} runs on {self.remote.label(entry)}: it has no weights to load")
        source = entry.source
        assert source is not None
        marker = get_family(entry.family).marker
        if self.settings.preview != "force":
            if source.path:
                if (Path(source.path) / marker).exists():
                    return Resolved(source.path, None, False, f"local folder {source.path}")
            elif _repo_cached(source.repo, source.revision, marker):
                return Resolved(source.repo, source.revision, False, "weights in the local Hugging Face cache")
            elif self.downloads_allowed:
                return Resolved(source.repo, source.revision, False, "weights download on first use", local_only=False)
        if self.settings.preview == "forbid":
            where = source.path or f"{source.repo} (revision {source.revision})"
            raise WeightsUnavailable(
                f"weights for {entry.name} are not on this machine: download {where}, "
                f"e.g. `hf download {source.repo}`, or allow the offline preview"
                if source.repo
                else f"weights for {entry.name} are not on this machine: {where} holds no {marker}"
            )
        reason = "forced by --offline-preview" if self.settings.preview == "force" else "weights not on this machine"
        return Resolved(str(self.tiny_folder(entry.tiny or "")), None, True, f"{preview_notice(entry)} ({reason})")

    def status(self, entry: ModelEntry) -> dict[str, Any]:
        """How this entry would run now, without loading anything."""
        if entry.is_remote:
            return self.remote.status(entry)
        if self.serve is not None:
            return self.serve.status(entry)
        try:
            resolved = self.resolve(entry)
        except (RemoteBackendUnavailable, WeightsUnavailable) as exc:
            return {"runnable": False, "preview": False, "weights": "unavailable", "note": str(exc)}
        return {
            "runnable": True,
            "preview": resolved.preview,
            "weights": "preview" if resolved.preview else ("download" if not resolved.local_only else "present"),
            "note": resolved.reason,
        }

    # -- tiny preview folders ------------------------------------------------------
    def tiny_folder(self, variant: str) -> Path:
        return Path(self.settings.tiny_root) / variant

    def unload(self, entry: ModelEntry) -> None:
        """Let go of an entry's loaded pipeline once its running request ends (a Serve replica unloading a multiplexed
        model: the next model loads only after, so the two never share the GPU)."""
        key = self._key(entry, self.resolve(entry))
        with self._lock_for(key):
            self.cache.drop(key)

    def ensure_tiny(self, entry: ModelEntry) -> Path:
        folder = self.tiny_folder(entry.tiny or "")
        marker = get_family(entry.family).marker
        if (folder / marker).exists():
            return folder
        with self._lock_for(("tiny", entry.tiny)):
            if not (folder / marker).exists():
                build_tiny(get_family(entry.family), entry.tiny or "", folder)
        return folder

    # -- loading -------------------------------------------------------------------
    def _lock_for(self, key: Any) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def _key(self, entry: ModelEntry, resolved: Resolved) -> tuple:
        return (resolved.location, resolved.revision, str(self.device), str(self.dtype), entry.defaults.scheduler)

    def _load(self, entry: ModelEntry, resolved: Resolved) -> Any:
        import diffusers

        family = get_family(entry.family)
        if resolved.preview:
            self.ensure_tiny(entry)
        kwargs: dict[str, Any] = {"dtype": self.dtype}
        if resolved.revision:
            kwargs["revision"] = resolved.revision
        if resolved.local_only:
            kwargs["local_files_only"] = True
        log.info("loading %s from %s", entry.id, resolved.location)
        if family.loader is not None:  # another library's model (a language model through transformers)
            return family.loader(resolved.location, kwargs, self.device)
        pipe = diffusers.DiffusionPipeline.from_pretrained(resolved.location, **kwargs)
        expected = family.pipeline_classes[family.tasks[0]]
        if type(pipe).__name__ != expected:
            raise TypeError(f"{resolved.location} holds a {type(pipe).__name__}; family {family.name} expects {expected}")
        wanted = entry.defaults.scheduler
        if wanted and type(pipe.scheduler).__name__ != wanted:
            pipe.scheduler = getattr(diffusers, wanted).from_config(pipe.scheduler.config)
        pipe.set_progress_bar_config(disable=True)
        pipe = pipe.to(self.device)
        if entry.fast.any:
            from .fast_paths import apply_fast_paths

            log.info("%s fast paths: %s", entry.id, apply_fast_paths(pipe, entry.fast))
        return pipe

    def pipeline(self, entry: ModelEntry, task: Task, resolved: Resolved | None = None) -> Any:
        """The loaded pipeline for a task: the base load, or a from_pipe view sharing its components."""
        resolved = resolved or self.resolve(entry)
        key = self._key(entry, resolved)
        base = self.cache.get(key, lambda: self._load(entry, resolved))
        class_name = get_family(entry.family).pipeline_classes[task]
        if type(base).__name__ == class_name:
            return base

        def make(pipe: Any) -> Any:
            import diffusers

            view = getattr(diffusers, class_name).from_pipe(pipe)
            view.set_progress_bar_config(disable=True)
            return view

        return self.cache.view(key, class_name, base, make)

    def slot_device(self, entry: ModelEntry) -> str:
        """What a local run of `entry` occupies, for the run slots: this process's device, or with the ray backend
        the entry's Serve application (its replicas are that group's devices)."""
        return f"ray:{entry.serve_group}" if self.settings.backend == "ray" else str(self.device)

    # -- language models --------------------------------------------------------------
    def chat_window(self, entry: ModelEntry) -> int:
        """The tokens of context a chat entry reads: its declared window, or the tiny preview's own."""
        assert entry.chat is not None
        if self.serve is not None and not entry.is_remote:
            return self.serve.chat_window(entry)
        if not entry.is_remote and self.resolve(entry).preview:
            from .tiny.causal_lm import TINY_CONTEXT_TOKENS

            return min(entry.chat.context_tokens, TINY_CONTEXT_TOKENS)
        return entry.chat.context_tokens

    def count_tokens(self, entry: ModelEntry, texts: list[str]) -> list[int]:
        """Tokens per text as the entry reads them: its own tokenizer for a local model (the model loads once, as it
        would for the reply), else an estimate of one token per REMOTE_CHARS_PER_TOKEN characters, rounded up."""
        if entry.is_remote:
            return [-(-len(text) // REMOTE_CHARS_PER_TOKEN) for text in texts]
        if self.serve is not None:
            return self.serve.count_tokens(entry, texts)
        pipe = self.pipeline(entry, Task.CHAT)
        return [pipe.count_tokens(text) for text in texts]

    # -- running -------------------------------------------------------------------
    def check_options(self, entry: ModelEntry, task: Task, request: GenerationRequest) -> None:
        """Refuse a request that sets an optional field this family's runner for `task` does not read (and an API-only
        entry, which no family here runs)."""
        if entry.is_remote:
            self.remote.require_key(entry)  # a deployment without the provider's key refuses before anything is paid
        accepts = task.inherent_options() | set(entry.takes) if entry.is_remote else get_family(entry.family).accepts(task)
        if request.tile is not None and task is Task.IMAGE_TO_IMAGE and entry.upscale is not None:
            accepts = accepts | {"tile"}  # the runtime tiles the family's own image-to-image runner
        refused = sorted(request.options() - accepts)
        if refused:
            names = ", ".join(OPTION_LABELS[o] for o in refused)
            raise UnsupportedOption(f"{entry.name} cannot use {names} for {task.value}; leave it out or pick another model.")

    def complete(self, entry: ModelEntry, task: Task, request: GenerationRequest) -> GenerationRequest:
        """Fill what the entry decides when a request leaves it open: image-to-image strength, the face adapter's weights."""
        if task is Task.IMAGE_TO_IMAGE and request.strength is None:
            request = replace(request, strength=entry.defaults.strength)
        if entry.batch == "one-call" and request.count > 1 and task in get_family(entry.family).batch_tasks:
            request = replace(request, one_call=True)
        if request.face is not None:
            request = replace(request, face=complete_face(self, entry, request.face))
            own = None if request.face.lora_weight is None else face_lora(self, entry, request.face.path, float(request.face.lora_weight))
            if own is not None:
                request = replace(request, loras=(*request.loras, own))
        if any(lora.folder is None for lora in request.loras):
            request = replace(request, loras=tuple(self.lora_weights(entry, lora) if lora.folder is None else lora
                                                   for lora in request.loras))
        return request

    def lora_weights(self, entry: ModelEntry, lora: LoraUse) -> LoraUse:
        """Where a library LoRA's weights are for this entry: a tiny random one of its own in the offline preview
        (built once), else its file from the local HF cache, a local folder, or a download where allowed."""
        try:
            spec = load_lora_library().get(lora.name)
        except KeyError:
            raise UnsupportedOption(f"LoRA {lora.name!r} is not in the library (presets/loras.toml)") from None
        if spec.family != entry.family:
            raise UnsupportedOption(f"LoRA {spec.name} is for {spec.family} models, not {entry.name}")
        if self.resolve(entry).preview:
            from .tiny.lora import LORA_FILE, build_tiny_lora

            folder = self.settings.tiny_root / f"lora-{spec.id}-{entry.tiny}"
            with self._lock_for(("lora", spec.id, entry.tiny)):
                if not (folder / LORA_FILE).exists():
                    seed = sum(ord(c) for c in spec.id)  # stable per entry
                    build_tiny_lora(folder, self.ensure_tiny(entry), seed, entry.family)
            return replace(lora, folder=str(folder), weight_name=LORA_FILE)
        if spec.source.path:
            return replace(lora, folder=spec.source.path, weight_name=spec.source.file)
        try:
            from huggingface_hub import hf_hub_download

            file = Path(hf_hub_download(spec.source.repo, spec.source.file, local_files_only=not self.downloads_allowed))
        except Exception as exc:
            raise WeightsUnavailable(f"LoRA {spec.name} ({spec.source.repo}/{spec.source.file}) is not on this machine and "
                                     "downloads are off; unpin it, or download it first") from exc
        return replace(lora, folder=str(file.parent), weight_name=file.name)

    def run(
        self,
        entry: ModelEntry,
        task: Task,
        request: GenerationRequest,
        on_step: StepCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> GenerationResult:
        """Run one request; the caller has validated it against the entry (sizes, task, limits). A remote entry runs at
        its provider; a local one here, or on its Ray Serve deployment with the ray backend."""
        if entry.is_remote:
            self.check_options(entry, task, request)
            result = self.remote.run(entry, task, request, on_step or (lambda done, total: None), cancel)
            result.parameters.update(model=entry.id, model_name=entry.name, task=task.value, preview=False)
            return result
        if self.serve is not None:
            self.check_options(entry, task, request)
            return self.serve.run(entry, task, request, on_step or (lambda done, total: None), cancel)
        return self.run_here(entry, task, request, on_step, cancel)

    def run_here(
        self,
        entry: ModelEntry,
        task: Task,
        request: GenerationRequest,
        on_step: StepCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> GenerationResult:
        """Run a local entry in this process: the local backend, and a Ray Serve replica's own runtime."""
        resolved = self.resolve(entry)
        family = get_family(entry.family)
        self.check_options(entry, task, request)
        request = self.complete(entry, task, request)
        pipe = self.pipeline(entry, task, resolved)
        run_request = preview_request(family, request) if resolved.preview else request
        on_step = on_step or (lambda done, total: None)
        # One request at a time per loaded pipeline: schedulers keep per-call state.
        with self._lock_for(self._key(entry, resolved)):
            try:
                runner = family.runners[task]
                if request.tile is not None:
                    runner = functools.partial(run_tiled, runner)
                result = _run_on_accelerator(runner, pipe, run_request, on_step, cancel, gpu_duration(entry, request))
                if request.face is not None or request.loras:
                    self.cache.remeasure(self._key(entry, resolved))  # adapters loaded into it count in the budget
            except Exception as exc:
                refusal = zerogpu_refusal(exc)
                if refusal is None:
                    raise
                raise refusal from exc
        result.parameters.update(model=entry.id, model_name=entry.name, task=task.value)
        result.parameters["revision"] = resolved.revision
        result.parameters["preview"] = resolved.preview
        if entry.fast.any:
            result.parameters["fast_paths"] = entry.fast.model_dump(exclude_defaults=True)
        if resolved.preview and task.is_text:
            result.parameters["notice"] = preview_notice(entry)
        elif resolved.preview:
            result.parameters["preview_size"] = [run_request.width, run_request.height]
            result.parameters["width"], result.parameters["height"] = request.width, request.height
            result.parameters["notice"] = PREVIEW_NOTICE
            size = (request.width, request.height)
            result.images = [im.resize(size) for im in result.images]
            result.videos = [[f.resize(size) for f in frames] for frames in result.videos]
        return result
