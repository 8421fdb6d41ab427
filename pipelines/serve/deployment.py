"""The replica's side of the ray backend: one PipelineRuntime per replica runs the same family run functions (and the
same tiny-preview fallback) as the local backend, streams step progress, and returns outputs as PNG bytes.

A replica never sees an account, a ledger or a database: it turns a typed request into bytes. Cancellation travels as
a flag: the app cancels its handle call, Serve cancels this request's asyncio task, and the task sets the Event that
the family's step callback reads, so the denoising loop stops at its next step."""
from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any, AsyncIterator

from ray import serve

from ..errors import UnknownModel
from ..registry import ModelEntry, Registry
from ..runtime import PipelineRuntime, RuntimeSettings
from ..types import GenerationRequest, Task
from .wire import CANCELLED, ERROR, RESULT, STEP, TEXT, pack_error, pack_result

log = logging.getLogger(__name__)


class LoadedModel:
    """What serve.multiplexed keeps per model id on a replica: the entry, its pipeline loaded into the runtime's cache.
    Serve calls `__del__` when it evicts the model (the least recently used past max_models_per_replica); that lets go
    of the weights at once, so the next model of the group fits on the GPU."""

    def __init__(self, runtime: PipelineRuntime, entry: ModelEntry):
        self.runtime, self.entry = runtime, entry
        self._unloaded = False

    def __del__(self) -> None:
        if not getattr(self, "_unloaded", True):
            self._unloaded = True
            log.info("unloading %s", self.entry.id)
            self.runtime.unload(self.entry)


class ModelServer:
    """One Serve deployment per serve group (pipelines/serve/app.py gives it the group's resources and autoscaling)."""

    def __init__(self, entries: list[dict[str, Any]], runtime: dict[str, Any], models: list[str], max_models: int):
        registry = Registry([ModelEntry.model_validate(data) for data in entries])
        settings = dict(runtime, tiny_root=Path(runtime["tiny_root"]))
        self.runtime = PipelineRuntime(registry, RuntimeSettings(**settings))  # the local backend, in this replica
        self.models = tuple(models)
        self.counts = {"running": 0, "finished": 0, "cancelled": 0, "failed": 0}
        self.last: dict[str, Any] = {}  # the last request's outcome and the steps it reported

        async def load(model_id: str) -> LoadedModel:  # a function: Serve keeps its model table on it (not on a method)
            return await self._load(model_id)

        self._model = serve.multiplexed(max_num_models_per_replica=max_models)(load)
        log.info("replica ready for %s on %s (%s)", ", ".join(self.models), self.runtime.device, self.runtime.dtype)

    def _entry(self, model_id: str) -> ModelEntry:
        if model_id not in self.models:
            raise UnknownModel(f"{model_id!r} is not served by this deployment (it serves {', '.join(self.models)})")
        return self.runtime.registry.get(model_id)

    async def _load(self, model_id: str) -> LoadedModel:
        entry = self._entry(model_id)
        await asyncio.to_thread(self.runtime.pipeline, entry, entry.tasks[0])
        return LoadedModel(self.runtime, entry)

    async def generate(self, task: str, request: GenerationRequest, stream_text: bool) -> AsyncIterator[tuple]:
        """Run one request: yields STEP and TEXT events, then one RESULT or ERROR (see wire.py)."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        cancel = threading.Event()
        steps, stopped_at = [0], [None]

        def emit(*event: Any) -> None:
            loop.call_soon_threadsafe(events.put_nowait, event)

        def on_step(done: int, total: int) -> None:
            steps[0] = done
            emit(STEP, done, total)

        def work(entry: ModelEntry, request: GenerationRequest) -> None:
            try:
                emit(RESULT, pack_result(self.runtime.run_here(entry, Task(task), request, on_step, cancel)))
            except BaseException as exc:  # noqa: BLE001 - every failure becomes an ERROR event for the app
                if not isinstance(exc, (ValueError, RuntimeError)):
                    log.exception("a run failed on this replica")
                emit(*pack_error(exc))

        self.counts["running"] += 1
        outcome, worker = "failed", None
        try:
            loaded = await self._model(serve.get_multiplexed_model_id())
            if stream_text:
                request = replace(request, stream=lambda piece: emit(TEXT, piece))
            worker = asyncio.ensure_future(asyncio.to_thread(work, loaded.entry, request))
            while True:
                event = await events.get()
                if event[0] == RESULT:
                    outcome = "finished"
                elif event[0] == ERROR:
                    outcome = "cancelled" if event[1] == CANCELLED else "failed"
                yield event
                if event[0] in (RESULT, ERROR):
                    return
        except asyncio.CancelledError:  # the app cancelled its handle call: Stop, or its deadline
            outcome, stopped_at[0] = "cancelled", steps[0]
            cancel.set()
            raise
        except Exception as exc:  # the model could not be loaded (no weights, an unknown id)
            yield pack_error(exc)
        finally:
            cancel.set()  # whatever ended the request, the run stops at its next step
            if worker is not None and not worker.done():
                await asyncio.shield(worker)  # this request counts as ongoing (graceful shutdown) until its run stops
            self.counts["running"] -= 1
            self.counts[outcome] += 1
            self.last = {"outcome": outcome, "steps": steps[0], "cancelled_at_step": stopped_at[0]}

    async def status(self) -> dict[str, dict[str, Any]]:
        """How each served entry would run on this replica, without loading anything."""
        return {model_id: self.runtime.status(self._entry(model_id)) for model_id in self.models}

    async def chat_window(self, model_id: str) -> int:
        return await asyncio.to_thread(self.runtime.chat_window, self._entry(model_id))

    async def count_tokens(self, texts: list[str]) -> list[int]:
        loaded = await self._model(serve.get_multiplexed_model_id())
        return await asyncio.to_thread(self.runtime.count_tokens, loaded.entry, texts)

    async def stats(self) -> dict[str, Any]:
        """Requests running and ended on this replica, and how the last one ended (operators; the tests read it)."""
        return {**self.counts, "last": dict(self.last), "models": list(self.models), "loaded": len(self.runtime.cache.keys())}
