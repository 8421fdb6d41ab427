"""The app's side of the ray backend: a local entry's request goes to its Serve deployment through a streaming handle.

Progress streams back as events to the caller's on_step; Stop and the app's deadline (the `cancel` Event) cancel the
handle call, and the replica sets its own Event so the step callback stops at the next step; a replica that dies
mid-request raises ReplicaLost. The app decides what any of it costs: nothing here touches credits."""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from ..errors import ReplicaLost, ServeUnavailable
from ..registry import ModelEntry
from ..types import GenerationCancelled, GenerationRequest, GenerationResult, StepCallback, Task
from .wire import DEFAULT_NAMESPACE, ERROR, RESULT, STEP, TEXT, application_name, outbound, raise_error, unpack_result

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RaySettings:
    """How the app reaches the cluster (PLAYGROUND_RAY_ADDRESS, PLAYGROUND_RAY_NAMESPACE)."""

    address: str | None = None  # None: "auto" (the cluster this node belongs to), or e.g. "ray://head:10001"
    namespace: str = DEFAULT_NAMESPACE  # the Ray namespace, and the prefix of the Serve applications' names
    status_ttl_s: float = 30.0  # how long a deployment's answer to "how would this entry run" is reused
    call_timeout_s: float = 10.0  # status, chat windows and token counts (a generation is bounded by the app's deadline)


class ServeBackend:
    """Runs local entries on the Serve applications that `python -m pipelines.serve` deployed from the same registry."""

    def __init__(self, settings: RaySettings):
        self.settings = settings
        self._lock = threading.Lock()
        self._handles: dict[str, Any] = {}
        self._status: dict[str, tuple[float, dict[str, Any]]] = {}

    # -- connecting ---------------------------------------------------------------------------------------
    def _connect(self) -> None:
        import ray

        if ray.is_initialized():  # a test's local cluster, or a driver that connected itself
            return
        address = self.settings.address or "auto"
        log.info("connecting to the Ray cluster at %s (namespace %s)", address, self.settings.namespace)
        ray.init(address=address, namespace=self.settings.namespace, log_to_driver=False, logging_level=logging.WARNING)

    def _handle(self, entry: ModelEntry) -> Any:
        name = application_name(self.settings.namespace, entry.serve_group)
        with self._lock:
            handle = self._handles.get(name)
            if handle is not None:
                return handle
            try:
                self._connect()
                from ray import serve

                handle = serve.get_app_handle(name)
            except Exception as exc:
                raise ServeUnavailable(
                    f"{entry.name} runs on the Ray Serve application {name!r}, which cannot be reached ({type(exc).__name__}: "
                    f"{exc}). Nothing was charged. Operators: start it with `python -m pipelines.serve --address auto "
                    f"--models {entry.id}`."
                ) from exc
            self._handles[name] = handle
            return handle

    # -- running ------------------------------------------------------------------------------------------
    def run(self, entry: ModelEntry, task: Task, request: GenerationRequest, on_step: StepCallback,
            cancel: threading.Event | None) -> GenerationResult:
        """One request on the entry's deployment: events in, a GenerationResult out (or the replica's error raised
        here: GenerationCancelled, the same refusal, ReplicaLost, ReplicaFailed)."""
        import ray.exceptions

        if cancel is not None and cancel.is_set():
            raise GenerationCancelled("cancelled")
        sent, wants_text = outbound(request)
        handle = self._handle(entry).options(stream=True, method_name="generate", multiplexed_model_id=entry.id)
        response = handle.remote(task.value, sent, wants_text)
        finished = threading.Event()
        if cancel is not None:
            threading.Thread(target=_cancel_when_set, args=(response, cancel, finished), daemon=True,
                             name=f"serve-cancel-{entry.id}").start()
        result: GenerationResult | None = None
        try:
            for event in response:
                kind = event[0]
                if kind == STEP:
                    on_step(event[1], event[2])
                elif kind == TEXT and request.stream is not None:
                    request.stream(event[1])
                elif kind == RESULT:
                    result = unpack_result(event[1])
                elif kind == ERROR:
                    raise_error(event[1], event[2])
        except ray.exceptions.RayActorError as exc:  # the replica died (killed, its node lost) mid-request
            if cancel is not None and cancel.is_set():
                raise GenerationCancelled("cancelled") from exc
            self._forget(entry)
            raise ReplicaLost(f"The server running {entry.name} stopped before this request finished. Nothing was "
                              "charged; try again in a moment.") from exc
        except (GenerationCancelled, ReplicaLost):
            raise
        except (Exception, asyncio.CancelledError) as exc:
            # a cancelled handle call raises RequestCancelledError or TaskCancelledError once the replica has it, and
            # a futures or asyncio CancelledError while it waits for one
            if cancel is not None and cancel.is_set():
                raise GenerationCancelled("cancelled") from exc
            raise
        finally:
            finished.set()
            if result is None and not response.cancelled():
                response.cancel()  # the caller gave up (its own on_step raised): the replica stops at its next step
        if result is None:
            if cancel is not None and cancel.is_set():
                raise GenerationCancelled("cancelled")
            raise ReplicaLost(f"The server running {entry.name} ended this request without a result. Nothing was charged; "
                              "try again.")
        return result

    def _forget(self, entry: ModelEntry) -> None:
        with self._lock:
            self._status.pop(entry.serve_group, None)

    # -- what the app asks without generating ----------------------------------------------------------------
    def _call(self, entry: ModelEntry, method: str, *args: Any, multiplexed: bool = False) -> Any:
        options: dict[str, Any] = {"method_name": method}
        if multiplexed:
            options["multiplexed_model_id"] = entry.id
        response = self._handle(entry).options(**options).remote(*args)
        try:
            return response.result(timeout_s=self.settings.call_timeout_s)
        except BaseException:
            response.cancel()  # a deployment still starting: do not leave the question queued behind it
            raise

    def status(self, entry: ModelEntry) -> dict[str, Any]:
        """How the entry would run on its deployment (asked once per group and reused for status_ttl_s); unreachable
        deployments answer as not runnable, naming why."""
        group = entry.serve_group
        with self._lock:
            cached = self._status.get(group)
        if cached is None or time.monotonic() - cached[0] > self.settings.status_ttl_s:
            try:
                answer = self._call(entry, "status")
            except Exception as exc:
                cause = exc.__cause__ if isinstance(exc, ServeUnavailable) and exc.__cause__ else exc
                name = application_name(self.settings.namespace, group)
                answer = {"error": f"runs on the Ray Serve application {name!r}, unreachable now ({type(cause).__name__}: {cause})"}
            cached = (time.monotonic(), answer)
            with self._lock:
                self._status[group] = cached
        answer = cached[1]
        if entry.id not in answer:
            note = answer.get("error") or f"not served by the Ray Serve application of group {group!r}"
            return {"runnable": False, "preview": False, "weights": "unavailable", "note": note}
        return dict(answer[entry.id], backend="ray")

    def chat_window(self, entry: ModelEntry) -> int:
        return int(self._call(entry, "chat_window", entry.id))

    def count_tokens(self, entry: ModelEntry, texts: list[str]) -> list[int]:
        return list(self._call(entry, "count_tokens", list(texts), multiplexed=True))


def _cancel_when_set(response: Any, cancel: threading.Event, finished: threading.Event) -> None:
    """Stop and the deadline set `cancel` in the app: cancel the handle call, which cancels the replica's request."""
    while not finished.is_set():
        if cancel.wait(0.05):
            if not finished.is_set():
                log.info("cancelling a Ray Serve request")
                response.cancel()
            return
