"""The read-only catalogue: which models exist, what they do, their sizes, prices, licence flags, and whether real
weights or the offline preview would run. The UI reads everything about models from here (it never imports the
pipeline layer), and services ask it instead of the registry, so a refusal always arrives as a `UserError`."""
from __future__ import annotations

from typing import Any

from pipelines.registry import ASPECT_RATIOS, RESOLUTION_TIERS, ModelEntry, Registry
from pipelines.runtime import PREVIEW_NOTICE, PipelineRuntime
from pipelines.types import Task

from .accounts.identity import Account
from .accounts.plans import Plans, Quote
from .errors import InvalidRequest, model_refusals
from .runs.params import checked_count

__all__ = ["ASPECT_RATIOS", "IMAGE_TIERS", "PREVIEW_NOTICE", "Catalogue", "Task"]

IMAGE_TIERS = tuple(t for t in RESOLUTION_TIERS if t.endswith("K"))  # still images: 1K, 2K, 4K


class Catalogue:
    def __init__(self, registry: Registry, runtime: PipelineRuntime, plans: Plans):
        self._registry = registry
        self._runtime = runtime
        self._plans = plans

    # -- models --------------------------------------------------------------------------------------------
    def entries(self, task: Task | str | None = None, local: bool = False) -> list[ModelEntry]:
        """Entries in declaration order, optionally only those offering `task`, optionally only local ones."""
        found = list(self._registry) if task is None else self._registry.for_task(task_of(task))
        return [e for e in found if not (local and e.is_remote)]

    def ids(self) -> list[str]:
        return self._registry.ids()

    def get(self, model_id: str) -> ModelEntry:
        with model_refusals():
            return self._registry.get(model_id)

    def require(self, model_id: str, task: Task | str) -> ModelEntry:
        """The entry, after checking it offers the task."""
        with model_refusals():
            return self._registry.require(model_id, task_of(task))

    def status(self, entry: ModelEntry) -> dict[str, Any]:
        """How the entry would run now (real weights, a download, the preview, or not at all), without loading."""
        return self._runtime.status(entry)

    def is_preview(self, entry: ModelEntry) -> bool:
        return bool(self.status(entry)["preview"])

    def preview_names(self) -> list[str]:
        """Local models that would run on their tiny offline preview."""
        return [e.name for e in self._registry if not e.is_remote and self.is_preview(e)]

    def models(self) -> list[dict[str, Any]]:
        """The registry as JSON, with whether real weights or the offline preview would run and its prices."""
        rows = []
        for entry in self._registry:
            row = entry.model_dump(mode="json", exclude={"sizes"})
            row["sizes"] = {r: {t: list(s) for t, s in tiers.items()} for r, tiers in entry.sizes.items()}
            if row.get("source") and "path" in row["source"]:
                # A dict with a "path" key reads as a file to gradio_client, which would try to download it.
                row["source"]["local_folder"] = row["source"].pop("path")
            row.update(self.status(entry))
            tiers = list(dict.fromkeys(t for ratio in entry.sizes.values() for t in ratio))
            # credits per output, per task and tier, as presets/plans.toml publishes them (a group image: per figure)
            row["prices"] = {task.value: {tier: self.price(entry, task, tier, 1).total for tier in tiers} for task in entry.tasks}
            if entry.is_chat:
                row["prices"] = {Task.CHAT.value: {"message": self.price(entry, Task.CHAT, "message").total}}
            rows.append(row)
        return rows

    # -- language models ---------------------------------------------------------------------------------
    def chat_entries(self) -> list[ModelEntry]:
        """The chat models in declaration order (the first is the default for a character that names none)."""
        return self._registry.for_task(Task.CHAT)

    def chat_entry(self, name: str) -> ModelEntry:
        """A chat model by registry id or by the hub id a character names (presets/characters.toml chat_models)."""
        for entry in self.chat_entries():
            if name in (entry.id, entry.hub_repo, entry.remote_model if isinstance(entry.remote_model, str) else None):
                return entry
        raise InvalidRequest(f"{name!r} is not a chat model here; pick one of {', '.join(e.name for e in self.chat_entries())}.")

    def chat_window(self, entry: ModelEntry) -> int:
        """Tokens of context the model reads (the tiny preview's own window when it would run)."""
        return self._runtime.chat_window(entry)

    def count_tokens(self, entry: ModelEntry, texts: list[str]) -> list[int]:
        """Tokens per text as the model reads them (its tokenizer; an estimate for a remote model)."""
        return self._runtime.count_tokens(entry, texts)

    # -- sizes ---------------------------------------------------------------------------------------------
    @staticmethod
    def ratios(entry: ModelEntry) -> list[str]:
        return list(entry.sizes)

    @staticmethod
    def tiers(entry: ModelEntry, ratio: str) -> list[str]:
        return list(entry.sizes.get(ratio, {}))

    @staticmethod
    def sizes_offered(entry: ModelEntry) -> set[tuple[int, int]]:
        return {tuple(size) for tiers in entry.sizes.values() for size in tiers.values()}

    def size(self, entry: ModelEntry, ratio: str, tier: str) -> tuple[int, int]:
        """The one place an aspect ratio and a tier become pixels (refuses what the model does not offer)."""
        with model_refusals():
            return tuple(entry.size_for(ratio, tier))

    def offers(self, entry: ModelEntry, ratio: str, tier: str) -> bool:
        return tier in entry.sizes.get(ratio, {})

    @staticmethod
    def nearest_ratio(entry: ModelEntry, width: int, height: int) -> str:
        """The model's aspect ratio closest to width:height (an edit keeps its source's shape)."""
        return min(entry.sizes, key=lambda r: abs(aspect_value(r) - width / height))

    @staticmethod
    def default_tier(entry: ModelEntry, ratio: str) -> str:
        return next(iter(entry.sizes.get(ratio, {})), "")

    # -- prices --------------------------------------------------------------------------------------------
    def quote(self, model: str, task: Task | str, aspect_ratio: str, resolution: str, count: int = 1, figures: int = 1) -> Quote:
        """The price of a request, after checking the model offers the task and the size."""
        entry = self.require(model, task)
        self.size(entry, aspect_ratio, resolution)
        return self._plans.quote(entry, task_of(task), resolution, checked_count(count), figures)

    def price(self, entry: ModelEntry, task: Task | str, resolution: str = "1K", count: int = 1, figures: int = 1) -> Quote:
        """A quote for display (no size check): e.g. a model picker's "credits per image"."""
        return self._plans.quote(entry, Task(task), resolution, count, figures)

    @staticmethod
    def loras() -> list:
        """The LoRA library's entries (presets/loras.toml): id, name, kind, family, licence, default weight."""
        from pipelines.lora import load_lora_library

        return list(load_lora_library().loras)

    def mode(self, name: str):
        """An image mode's rules (presets/plans.toml [modes])."""
        return self._plans.modes[name]

    def unit_price(self, entry: ModelEntry, task: Task | str | None = None) -> int:
        """Credits for one output of the entry at its base tier (its first task when none is given): model pickers."""
        return self._plans.prices.unit(entry.id, task_of(task) if task is not None else entry.tasks[0])

    def price_table(self) -> list[list[str]]:
        """[model name, task, "tier: price, ...", note] for every entry and task: the Credits tab's price list."""
        rows = []
        for entry in self._registry:
            tiers = sorted({t for sizes in entry.sizes.values() for t in sizes})
            for task in entry.tasks:
                prices = {t: self.price(entry, task, t).total for t in tiers if t in self._plans.prices.resolution_multiplier}
                if Task(task).is_text:
                    prices = {"per message": self.price(entry, task, "message").total}
                text = ", ".join(f"{t}: {p}" for t, p in prices.items())
                rows.append([entry.name, Task(task).value, text or "-", self.status(entry)["note"] if entry.is_remote else ""])
        return rows

    @staticmethod
    def affordable(account: Account, quote: Quote) -> bool:
        return account.unlimited or account.balance >= quote.total


def task_of(value: Task | str) -> Task:
    """A task by its id, or InvalidRequest listing the ids."""
    try:
        return Task(value)
    except ValueError:
        raise InvalidRequest(f"task {value!r} is not one of {', '.join(t.value for t in Task)}.") from None


def aspect_value(name: str) -> float:
    """'16:9' -> 1.777..."""
    w, _, h = name.partition(":")
    return int(w) / int(h)
