"""One remote call's limits: a deadline over the whole request (every byte of every answer included), bounded retries
with backoff on 429 and 5xx, and the cancel flag checked while waiting and between received chunks. Failures become
`RemoteFailed`, whose message names the provider and says whether trying again can help."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import RequestRefused
from ..types import GenerationCancelled


class RemoteFailed(RequestRefused):
    """A provider failed, timed out or answered something that is not the output; the run is refunded."""


class Busy(Exception):
    """A 429 or 5xx answer: worth another try after a wait."""

    def __init__(self, status: int, detail: str = "", retry_after: float | None = None):
        super().__init__(f"HTTP {status} {detail}".strip())
        self.status, self.detail, self.retry_after = status, detail, retry_after


class Refused(Exception):
    """Any other 4xx answer: the provider will refuse the same request again."""

    def __init__(self, status: int, detail: str = ""):
        super().__init__(f"HTTP {status} {detail}".strip())
        self.status, self.detail = status, detail


class Malformed(Exception):
    """The answer lacks the output, or the output does not decode."""


class TimedOut(Exception):
    pass


class Interrupted(Exception):
    """A streamed answer broke off after its first piece was handed on: not retried (a retry would repeat the pieces)."""


class Oversized(Exception):
    """An answer or output over this deployment's byte or pixel limits (refused before it is held or decoded)."""


class Unsafe(Exception):
    """A URL this deployment does not fetch: a private, loopback or link-local address, or the app itself (unless the
    deployer allow-listed it), or a scheme other than http(s)."""


def classify(status: int, detail: str = "", retry_after: str | None = None) -> Exception:
    if status == 429 or status >= 500:
        try:
            wait = float(retry_after) if retry_after else None
        except ValueError:
            wait = None
        return Busy(status, detail, wait)
    return Refused(status, detail)


@dataclass
class Call:
    """The limits of one request to one provider."""

    label: str  # the provider as a visitor reads it ("fal.ai")
    timeout_s: float
    retries: int
    backoff_s: float
    cancel: threading.Event | None = None
    attempts: int = 0

    def __post_init__(self) -> None:
        self.deadline = time.monotonic() + self.timeout_s

    @property
    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def check(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise GenerationCancelled("cancelled while waiting for the provider")
        if self.remaining <= 0:
            raise TimedOut()

    def sleep(self, seconds: float) -> None:
        seconds = max(0.0, min(seconds, self.remaining))
        if self.cancel is not None:
            if self.cancel.wait(seconds):
                raise GenerationCancelled("cancelled while waiting for the provider")
        else:
            time.sleep(seconds)
        self.check()

    def run(self, attempt: Callable[[], Any]) -> Any:
        """attempt() with retries on Busy; every failure as RemoteFailed (cancellation passes through)."""
        try:
            while True:
                self.check()
                self.attempts += 1
                try:
                    return attempt()
                except Busy as exc:
                    if self.attempts > self.retries:
                        raise
                    self.sleep(exc.retry_after if exc.retry_after is not None else self.backoff_s * 2 ** (self.attempts - 1))
        except GenerationCancelled:
            raise
        except Busy as exc:
            raise RemoteFailed(f"{self.label} is overloaded or failing (HTTP {exc.status}) after {self.attempts} tries. "
                               "Your credits were refunded; try again in a few minutes, or pick another model.") from exc
        except TimedOut as exc:
            raise RemoteFailed(f"{self.label} did not finish within {self.timeout_s:g} seconds. Your credits were refunded; "
                               "try again later, or pick another model.") from exc
        except Refused as exc:
            detail = f": {exc.detail[:200]}" if exc.detail else ""
            raise RemoteFailed(f"{self.label} refused the request (HTTP {exc.status}{detail}). Your credits were refunded; "
                               "trying again unchanged will not help: change the prompt or settings, or pick another model.") from exc
        except Interrupted as exc:
            raise RemoteFailed(f"{self.label} broke off in the middle of its answer ({exc}). Your credits were refunded; "
                               "try again, and pick another model if it keeps happening.") from exc
        except Malformed as exc:
            raise RemoteFailed(f"{self.label} answered without a usable output ({exc}). Your credits were refunded; "
                               "try again, and pick another model if it keeps happening.") from exc
        except Oversized as exc:
            raise RemoteFailed(f"{self.label} sent an output larger than this deployment accepts ({exc}). Your credits were "
                               "refunded; try a smaller size or a shorter reply, or pick another model.") from exc
        except Unsafe as exc:
            raise RemoteFailed(f"{self.label} pointed at an address this deployment does not fetch from ({exc}). Your credits "
                               "were refunded; pick another model, and tell the deployer if it keeps happening.") from exc

    def in_thread(self, fn: Callable[[], Any], grace_s: float = 0.5, on_tick: Callable[[], None] | None = None) -> Any:
        """fn() in a worker thread, so that the deadline and the cancel flag hold even while a call blocks. When they
        end the wait, the worker gets up to `grace_s` to finish its own clean-up (a provider-side cancel) before the
        caller goes on; an abandoned worker ends at its next received chunk or at the deadline (the HTTP layer,
        pipelines/remote/limits.py, checks this call between chunks and caps its timeouts at the deadline).
        `on_tick` runs on the waiting thread after each check and once more when fn() returned (a streamed answer
        hands its pieces on there, so that none is handed on after Stop or the deadline)."""
        box: dict[str, Any] = {}
        done = threading.Event()

        def target() -> None:
            try:
                box["value"] = fn()
            except BaseException as exc:  # handed to the waiting thread
                box["error"] = exc
            finally:
                done.set()

        threading.Thread(target=target, daemon=True, name=f"remote-{self.label}").start()
        while not done.wait(0.05):
            try:
                self.check()
                if on_tick is not None:
                    on_tick()
            except BaseException:
                done.wait(grace_s)
                raise
        if "error" in box:
            raise box["error"]
        if on_tick is not None:
            on_tick()
        return box["value"]
