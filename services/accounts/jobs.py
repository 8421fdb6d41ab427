"""One paid request, start to end: idempotency -> reserve -> run -> safety -> store -> capture, or refund.

Every generation is a row in `generations` created in the same transaction as its reservation, so a
request is never charged without a record, and a record never says "done" without its files. Whatever
goes wrong after the reservation (an exception, a timeout, cancellation, a safety block, a failed write)
refunds it; reservations held by a process that died are refunded by `recover()` at the next start.
"""
from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import sqlalchemy as sa

from pipelines.types import GenerationCancelled, GenerationResult

from ..errors import InvalidRequest, UserError
from .db import Database, json_safe
from .identity import Account
from .instances import Instances
from .ledger import InsufficientCredits, Ledger
from ..media.mp4 import encode_mp4, mp4_tags, tag_mp4
from ..media.png import png_bytes
from .plans import Quote
from .stops import RemoteStops
from ..safety.output import SafetyBlocked, SafetyChecker, Verdict, check_all
from ..media.storage import OutputStore
from .tables import generation_files, generations, output_identity
from ..faces.monitor import index_rows

log = logging.getLogger(__name__)

MAX_KEY_CHARS = 128
PER_OUTPUT = {"identity_scores": "identity_score", "sim_ref": "sim_ref"}  # record's list -> each file's own entry


class IdempotencyConflict(UserError, ValueError):
    pass


class PreviousAttemptFailed(UserError, RuntimeError):
    pass


class GenerationTimedOut(UserError, RuntimeError):
    pass


@dataclass
class JobResult:
    request_id: str
    files: list[Path]
    seeds: list[int]
    parameters: dict[str, Any]
    price: int
    charged: int
    replayed: bool = False
    preview: bool = False
    safety: list[str] = field(default_factory=list)
    blocked: int = 0
    posters: list[Path] = field(default_factory=list)


Work = Callable[[threading.Event], GenerationResult]


@functools.lru_cache(maxsize=1)
def _encoders() -> concurrent.futures.ThreadPoolExecutor:
    """Threads that encode a batch's files off the request thread."""
    return concurrent.futures.ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 2), thread_name_prefix="encode")


def params_hash(task: str, model: str, request: dict[str, Any]) -> str:
    canonical = json.dumps({"task": task, "model": model, "request": request}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class Jobs:
    def __init__(
        self,
        db: Database,
        ledger: Ledger,
        store: OutputStore,
        safety: SafetyChecker,
        instances: Instances,
        timeout_s: float = 900.0,
        poll_s: float = 0.2,
    ):
        self.db = db
        self.ledger = ledger
        self.store = store
        self.safety = safety
        self.instances = instances
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self._running: dict[str, dict[str, threading.Event]] = {}  # account id -> request id -> its cancel flag
        self._running_lock = threading.Lock()
        self.stops = RemoteStops(db, instances.id)  # Stop for requests that other instances run

    def cancel(self, account_id: str) -> int:
        """Stop the account's running requests at their next denoising step (each is then refunded), here and on the
        other instances; how many."""
        self.stops.note(account_id)
        with self._running_lock:
            flags = list(self._running.get(account_id, {}).values())
        for flag in flags:
            flag.set()
        return len(flags) + self.stops.ask(account_id)

    def running(self, account_id: str) -> list[str]:
        with self._running_lock:
            return list(self._running.get(account_id, {}))

    # -- the flow --------------------------------------------------------------------------------------
    def run(
        self,
        account: Account,
        *,
        quote: Quote,
        request: dict[str, Any],
        work: Work,
        idempotency_key: str | None = None,
        timeout_s: float | None = None,
        allow_flagged: bool = False,
    ) -> JobResult:
        """Run `work` as a paid request. Flagged outputs are refunded and dropped unless `allow_flagged`
        (a member's 18+ request on a non-SFW surface), in which case they are kept as private."""
        key = (idempotency_key or "").strip() or uuid.uuid4().hex
        if len(key) > MAX_KEY_CHARS:
            raise IdempotencyConflict(f"The idempotency key is {len(key)} characters; use at most {MAX_KEY_CHARS}.")
        request, problems = json_safe(request)
        if problems:
            raise InvalidRequest(f"These settings cannot be stored ({', '.join(problems)}): send finite numbers within range.")
        digest = params_hash(quote.task, quote.model, request)
        request_id = uuid.uuid4().hex
        charge = 0 if account.unlimited else quote.total
        try:
            with self.db.begin() as conn:
                existing = self._by_key(conn, account.id, key)
                if existing is None:
                    note = f"{quote.model} {quote.task}: {quote.text()}" + (" (QA: waived)" if account.unlimited else "")
                    self.ledger.reserve(conn, account.id, charge, request_id, note)
                    conn.execute(
                        generations.insert().values(
                            id=request_id,
                            account_id=account.id,
                            idempotency_key=key,
                            params_hash=digest,
                            task=quote.task,
                            model=quote.model,
                            request=request,
                            status="running",
                            price=charge,
                            instance_id=self.instances.id,
                            created_at=time.time(),
                        )
                    )
        except sa.exc.IntegrityError:  # the same key raced in from another request: it won
            existing = self._wait_for_key(account.id, key)
        except InsufficientCredits:
            # On PostgreSQL a request with the same key (on this instance or another) may have reserved and committed
            # while this one waited on the account's row: its reservation, not a short balance, is the answer.
            with self.db.engine.connect() as conn:
                existing = self._by_key(conn, account.id, key)
            if existing is None:
                raise
        if existing is not None:
            return self._replay(existing, digest)
        return self._execute(account, request_id, charge, work, timeout_s or self.timeout_s, allow_flagged)

    def _execute(self, account: Account, request_id: str, charge: int, work: Work, timeout_s: float, allow_flagged: bool) -> JobResult:
        cancel, timed_out = threading.Event(), threading.Event()

        def expire() -> None:
            timed_out.set()
            cancel.set()

        timer = threading.Timer(timeout_s, expire)
        timer.daemon = True
        timer.start()
        with self._running_lock:
            self._running.setdefault(account.id, {})[request_id] = cancel
        self.stops.track(request_id, cancel)
        try:
            result = work(cancel)
        except SafetyBlocked as exc:  # a reply the text check withheld (services/runs/runner.py): refunded
            self._fail(account.id, request_id, charge, "blocked", exc.reason, safety="blocked")
            raise
        except GenerationCancelled as exc:
            status, message = ("timeout", f"took longer than {timeout_s:g} s") if timed_out.is_set() else ("cancelled", "cancelled")
            self._fail(account.id, request_id, charge, status, message)
            if timed_out.is_set():
                raise GenerationTimedOut(f"Generation stopped: it {message}. Nothing was charged; try fewer steps or a smaller size.") from exc
            raise
        except BaseException as exc:
            self._fail(account.id, request_id, charge, "failed", f"{type(exc).__name__}: {exc}")
            raise
        finally:
            timer.cancel()
            self.stops.untrack(request_id)
            with self._running_lock:
                self._running.get(account.id, {}).pop(request_id, None)
        try:
            return self._deliver(account, request_id, charge, result, allow_flagged)
        except SafetyBlocked as exc:
            self._fail(account.id, request_id, charge, "blocked", exc.reason, safety="blocked")
            raise
        except BaseException as exc:
            self._fail(account.id, request_id, charge, "failed", f"{type(exc).__name__}: {exc}")
            raise

    def _check(self, outputs: list) -> list[Verdict]:
        """One verdict per output, all in one batched check: images whole, videos on their first, middle and last
        frames (the worst of the three counts)."""
        samples: list = []
        spans: list[tuple[int, int]] = []
        for output in outputs:
            frames = [output[0], output[len(output) // 2], output[-1]] if isinstance(output, list) else [output]
            spans.append((len(samples), len(samples) + len(frames)))
            samples.extend(frames)
        verdicts = check_all(self.safety, samples)
        return [next((v for v in verdicts[a:b] if v.flagged), verdicts[a]) for a, b in spans]

    def _encode(self, output, parameters: dict[str, Any], seed: int) -> tuple[Path, str, Path | None]:
        parameters = self.store.public(parameters)  # the files' settings name stored files by /outputs/ URL
        if isinstance(output, list):  # a video: frames
            # a provider's own file (with its soundtrack) is kept as it came, remuxed with the settings tags; frames
            # made here are encoded with them (services/media/mp4.py: title, comment, description)
            tags = mp4_tags(parameters, seed)
            provided = getattr(output, "encoded", None)
            data = tag_mp4(provided, tags) if provided else encode_mp4(output, int(parameters.get("fps") or 16), tags)
            video = self.store.put(data, ".mp4")
            poster = self.store.put(png_bytes(output[0], parameters, seed), ".png")
            return video, "video", poster
        return self.store.put(png_bytes(output, parameters, seed), ".png"), "image", None

    def _deliver_text(self, request_id: str, charge: int, result: GenerationResult) -> JobResult:
        """A language model's reply: the runner has checked its text; the record keeps it (no files), then capture."""
        parameters, _ = json_safe(dict(result.parameters, request_id=request_id, output_check="prompt policy (text)",
                                       reply=result.texts[0]))
        with self.db.begin() as conn:
            finished = conn.execute(
                sa.update(generations)
                .where(generations.c.id == request_id, generations.c.status == "running")
                .values(status="done", parameters=parameters, seeds=list(result.seeds), charged=charge, safety="safe",
                        preview=bool(parameters.get("preview")), finished_at=time.time())
            ).rowcount
            if not finished:
                raise PreviousAttemptFailed("This request was interrupted and refunded; run it again.")
            account_id = conn.execute(sa.select(generations.c.account_id).where(generations.c.id == request_id)).scalar()
            self.ledger.capture(conn, account_id, request_id, f"captured {charge} of {charge}")
        return JobResult(request_id, [], list(result.seeds), parameters, charge, charge, preview=bool(parameters.get("preview")),
                         safety=["safe"])

    def _deliver(self, account: Account, request_id: str, charge: int, result: GenerationResult, allow_flagged: bool) -> JobResult:
        if result.texts and not (result.images or result.videos):
            return self._deliver_text(request_id, charge, result)
        outputs = list(result.videos) if result.videos else list(result.images)
        verdicts = self._check(outputs)
        kept = [(output, seed, v) for output, seed, v in zip(outputs, result.seeds, verdicts) if allow_flagged or not v.flagged]
        if not kept:
            raise SafetyBlocked(next((v.reason for v in verdicts if v.flagged), "no output"))
        # the record names the output check that passed these outputs (opennsfw, nudenet, classifier or none)
        parameters, _ = json_safe(dict(result.parameters, request_id=request_id, output_check=self.safety.name))
        # per-output lists (identity scores, SimRef): each file carries its own entry, the record the kept outputs'
        listed = {}
        for key, single in PER_OUTPUT.items():
            values = parameters.pop(key, None)
            if values:
                listed[key] = (single, [values[i] for i, v in enumerate(verdicts) if allow_flagged or not v.flagged])
        jobs = [(output, dict(parameters, **{single: values[i] for single, values in listed.values()}), seed)
                for i, (output, seed, _) in enumerate(kept)]
        if len(jobs) > 1:  # a batch: the PNGs are encoded in parallel (deflate and numpy release the GIL)
            encoded = list(_encoders().map(lambda job: self._encode(*job), jobs))
        else:
            encoded = [self._encode(*job) for job in jobs]
        for key, (_, values) in listed.items():
            parameters[key] = values
        files = [path for path, _, _ in encoded]
        blocked = len(outputs) - len(kept)
        per_output = charge // max(1, len(outputs))
        refund = per_output * blocked
        charged = charge - refund
        labels = {v.label for _, _, v in kept}
        safety = "flagged-private" if "flagged" in labels else ("blocked-some" if blocked else kept[0][2].label)
        with self.db.begin() as conn:
            finished = conn.execute(
                sa.update(generations)
                .where(generations.c.id == request_id, generations.c.status == "running")
                .values(
                    status="done",
                    parameters=parameters,
                    seeds=[seed for _, seed, _ in kept],
                    charged=charged,
                    safety=safety,
                    preview=bool(parameters.get("preview")),
                    finished_at=time.time(),
                )
            ).rowcount
            if not finished:  # recovered as interrupted meanwhile (and refunded): nothing to capture
                raise PreviousAttemptFailed("This request was interrupted and refunded; run it again.")
            conn.execute(
                generation_files.insert(),
                [
                    {
                        "generation_id": request_id, "idx": i, "path": self.store.relative(path), "media": media,
                        "seed": seed, "safety": v.label, "poster": self.store.relative(poster) if poster else None,
                    }
                    for i, ((path, media, poster), (_, seed, v)) in enumerate(zip(encoded, kept))
                ],
            )
            identity = index_rows(parameters.get("sim_ref"))  # the identity monitor's index (figure pages read it)
            if identity:
                now = time.time()
                conn.execute(output_identity.insert(), [dict(row, generation_id=request_id, account_id=account.id, created_at=now)
                                                        for row in identity])
            self.ledger.capture(conn, account.id, request_id, f"captured {charged} of {charge}")
            if refund:
                self.ledger.refund(conn, account.id, refund, request_id, f"{blocked} output(s) blocked by the safety check")
        return JobResult(
            request_id, files, [s for _, s, _ in kept], parameters, charge, charged,
            preview=bool(parameters.get("preview")), safety=[v.label for _, _, v in kept], blocked=blocked,
            posters=[poster for _, _, poster in encoded if poster],
        )

    def _fail(self, account_id: str, request_id: str, charge: int, status: str, error: str, safety: str | None = None) -> bool:
        """Mark a running request finished without output and refund it; False if it was already settled."""
        values: dict[str, Any] = {"status": status, "error": error[:2000], "finished_at": time.time()}
        if safety:
            values["safety"] = safety
        with self.db.begin() as conn:
            changed = conn.execute(
                sa.update(generations).where(generations.c.id == request_id, generations.c.status == "running").values(**values)
            ).rowcount
            if changed:
                self.ledger.refund(conn, account_id, charge, request_id, f"refund: {status} ({error[:200]})")
        return bool(changed)

    def refund_reported(self, conn: sa.Connection, account_id: str, amount: int, request_id: str, note: str) -> None:
        """Refund part of a finished request after an approved report (inside the caller's transaction)."""
        self.ledger.refund(conn, account_id, amount, request_id, note)

    # -- idempotent replays ----------------------------------------------------------------------------
    def _by_key(self, conn: sa.Connection, account_id: str, key: str):
        return conn.execute(
            sa.select(generations).where(generations.c.account_id == account_id, generations.c.idempotency_key == key)
        ).first()

    def _wait_for_key(self, account_id: str, key: str):
        deadline = time.monotonic() + self.timeout_s + 60
        while True:
            with self.db.engine.connect() as conn:
                row = self._by_key(conn, account_id, key)
            if row is not None and (row.status != "running" or time.monotonic() > deadline):
                return row
            time.sleep(self.poll_s)

    def _replay(self, row, digest: str) -> JobResult:
        if row.params_hash != digest:
            raise IdempotencyConflict(
                "This idempotency key was already used for a different request; send a new key for new settings."
            )
        if row.status == "running":
            row = self._wait_for_key(row.account_id, row.idempotency_key)
        if row.status != "done":
            raise PreviousAttemptFailed(
                f"The first request with this idempotency key ended as {row.status} ({row.error or 'no detail'}); "
                "it was refunded. Send a new key to try again."
            )
        with self.db.engine.connect() as conn:
            files = conn.execute(
                sa.select(generation_files).where(generation_files.c.generation_id == row.id).order_by(generation_files.c.idx)
            ).all()
        return JobResult(
            row.id, [self.store.path(f.path) for f in files], list(row.seeds or []), dict(row.parameters or {}),
            row.price, row.charged, replayed=True, preview=bool(row.preview), safety=[f.safety for f in files],
            posters=[self.store.path(f.poster) for f in files if f.poster],
        )

    # -- recovery --------------------------------------------------------------------------------------
    def recover(self) -> list[str]:
        """Refund every reservation held by a dead instance; returns the request ids refunded."""
        dead = self.instances.dead()
        if not dead:
            return []
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                sa.select(generations.c.id, generations.c.account_id, generations.c.price)
                .where(generations.c.status == "running", generations.c.instance_id.in_(dead))
            ).all()
        refunded = [r.id for r in rows if self._fail(r.account_id, r.id, r.price, "interrupted", "the server stopped before it finished")]
        if refunded:
            log.warning("refunded %d reservation(s) left by stopped instances", len(refunded))
        return refunded

