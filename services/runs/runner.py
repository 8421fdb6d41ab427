"""The one path every paid request takes.

A surface (Text mode, figure takes, Remix, Edit, Group, Figure to Video, Image to Video, Compare, ...) describes
its request as a `PaidRun` and hands it to `Runner.run`. Nothing else reserves credits, runs a pipeline, checks
outputs, stores them or captures:

    policy      the account's plan features, then the prompt policy on every prompt for the run's surface
    validate    every stage: the model offers the task and the size; seed, batch, steps, guidance, strength in range
    quote       each stage at its tier, summed (with a breakdown when there are several)
    admit       a slot of the run's pool (local pipelines or remote providers) within the visitor's share
    reserve     the jobs transaction: idempotency key, reservation and record in one database transaction
    run         each stage, once its slots are free (its device and model, or a provider slot), through the pipeline
                runtime, one progress bar over all of them; a stage may take the previous stage's first output as its
                reference (a video's start frame)
    check       the output safety check (inside the jobs transaction)
    store       PNG / MP4 with their metadata, content-addressed, then the record
    capture     or refund in full on any failure after the reservation (and per blocked output)
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

from pipelines.registry import GUIDANCE_MAX, ModelEntry
from pipelines.runtime import PipelineRuntime
from pipelines.types import GenerationCancelled, GenerationRequest, GenerationResult, StepCallback, Task

from ..accounts.identity import Account
from ..accounts.jobs import JobResult, Jobs
from ..accounts.ledger import InsufficientCredits
from ..accounts.plans import Plans, Quote
from ..catalogue import Catalogue
from ..errors import Cancelled, InvalidRequest, model_refusals
from ..media.png import png_bytes
from ..media.storage import OutputStore
from ..safety.output import SafetyBlocked
from ..safety.policy import PromptPolicy, PromptRefused, PromptStyle, Surface, require
from .params import MAX_COUNT, checked_count, checked_seed, checked_steps, checked_strength
from .slots import Slots, Ticket


RunOutput = JobResult  # what a paid run returns: request id, files, seeds, parameters, charge, replay flag


@dataclass(frozen=True)
class PromptCheck:
    """A text the prompt policy checks on the run's surface before anything is reserved."""

    text: str
    style: PromptStyle | str = PromptStyle.NATURAL
    negative: str = ""


@dataclass(frozen=True)
class Stage:
    """One pipeline call of a paid run."""

    name: str  # recorded with the stage's parameters (e.g. "start_frame", "animate")
    entry: ModelEntry
    task: Task
    request: GenerationRequest
    tier: str  # the resolution tier this stage is priced at
    figures: int = 1  # group shots are priced per figure
    chain: bool = False  # take the previous stage's first output as this stage's (only) reference image
    keep: bool = False  # store this stage's first output as an intermediate file (recorded with the stage)
    label: str = ""  # how the price breakdown names the stage (default: its name)
    chain_all: bool = False  # take every output of the previous stage as this stage's inputs (a 4K upscale)
    priced: bool = True  # False: paid by an earlier stage's quote (the upscale of a 4K request is in its 4K price)
    check_size: bool = True  # False: an inner stage whose size is the request's, not one its own model lists (upscale)

    @property
    def planned_steps(self) -> int:
        return self.request.steps * self.request.count


@dataclass(frozen=True)
class PaidRun:
    """What a surface asks for: the stages, what to check first, and what to record."""

    stages: tuple[Stage, ...]  # the last stage's outputs are the request's outputs
    surface: Surface  # where the prompts are used: decides the SFW rules and whether flagged outputs may be kept
    replay: Mapping[str, Any]  # the settings a replay of the idempotency key must match; recorded as the request
    prompts: tuple[PromptCheck, ...] = ()
    requires: tuple[str, ...] = ()  # plan features the account must have (e.g. "image_to_video")
    record: Mapping[str, Any] = field(default_factory=dict)  # added to every output's metadata
    inputs: tuple[tuple[bytes, str], ...] = ()  # input files to keep (bytes, suffix), stored once the run is reserved
    annotate: Callable[[GenerationResult], None] | None = None  # after the last stage (e.g. identity scores)
    record_stages: bool = False  # record each stage's parameters under "stages" even for a single stage
    price: Quote | None = None  # a surface's own price from the plans (a reference sheet); else the stages' quotes

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    @property
    def planned_steps(self) -> int:
        return sum(stage.planned_steps for stage in self.stages)


class Runner:
    def __init__(self, catalogue: Catalogue, runtime: PipelineRuntime, plans: Plans, jobs: Jobs, policy: PromptPolicy, store: OutputStore,
                 slots: Slots | None = None):
        self.slots = slots or Slots()
        self.catalogue = catalogue
        self.runtime = runtime
        self.plans = plans
        self.jobs = jobs
        self.policy = policy
        self.store = store

    # -- before any credit moves -------------------------------------------------------------------------
    def prepare(self, account: Account, run: PaidRun) -> Quote:
        """Policy, validation and the quote: everything that can refuse a run without charging. Returns the quote."""
        if not run.stages:
            raise InvalidRequest("Nothing to run.")
        self.check_features(account, run.requires)
        for prompt in run.prompts:
            self.policy.check(prompt.text or "", account, run.surface, prompt.style, prompt.negative or "")
        for index, stage in enumerate(run.stages):
            self.validate(stage, first=index == 0)
        return self.quote(run)

    @staticmethod
    def check_features(account: Account, features: tuple[str, ...]) -> None:
        """The plan gate (e.g. Image to Video is for members), whatever the UI shows; a surface may call it early."""
        for feature in features:
            require(account, feature)

    def validate(self, stage: Stage, first: bool = False) -> None:
        """A stage's request against its model: task, size, and every shared parameter's range."""
        entry, request = stage.entry, stage.request
        self.catalogue.require(entry.id, stage.task)
        with model_refusals():
            self.runtime.check_options(entry, stage.task, request)  # a field the family cannot use is refused now
        if stage.task.is_text:
            self._validate_chat(stage)
        elif stage.check_size and (request.width, request.height) not in self.catalogue.sizes_offered(entry):
            raise InvalidRequest(f"{entry.name} does not offer {request.width}x{request.height}; pick an aspect ratio and resolution it lists.")
        if not request.prompt.strip():
            raise InvalidRequest("Write a prompt first: describe what the image should show.")
        checked_count(request.count, MAX_COUNT)
        checked_seed(request.seed)
        checked_steps(request.steps, 0)
        if not (math.isfinite(request.guidance) and 0.0 <= request.guidance <= GUIDANCE_MAX):
            raise InvalidRequest(f"Guidance must be between 0 and {GUIDANCE_MAX:g}, not {request.guidance}.")
        if request.strength is not None:
            checked_strength(request.strength, math.nan)
        if (stage.chain or stage.chain_all) and first:
            raise InvalidRequest(f"Stage {stage.name!r} takes the previous stage's output, and there is none.")

    @staticmethod
    def _validate_chat(stage: Stage) -> None:
        """A chat turn: a conversation to answer, a reply cap within the model's own."""
        request, settings = stage.request, stage.entry.chat
        if not request.messages or request.messages[-1][0] != "user":
            raise InvalidRequest("Write a message first: the conversation must end with yours.")
        if settings is not None and request.max_new_tokens is not None and not 1 <= request.max_new_tokens <= settings.max_new_tokens:
            raise InvalidRequest(f"A reply from {stage.entry.name} is at most {settings.max_new_tokens} tokens.")
        if request.temperature is not None and not (math.isfinite(request.temperature) and 0.0 <= request.temperature <= 2.0):
            raise InvalidRequest("The temperature must be between 0 and 2.")

    def check_reply(self, account: Account, run: PaidRun, result: GenerationResult) -> None:
        """The output check of a text: each reply passes the prompt policy of the run's surface, else it is withheld
        (SafetyBlocked: the run ends as blocked and is refunded in full)."""
        for text in result.texts:
            try:
                self.policy.check_text(text, account, run.surface)
            except PromptRefused as exc:
                raise SafetyBlocked(f"the reply broke the rule {exc.rule!r}") from None

    def quote(self, run: PaidRun) -> Quote:
        if run.price is not None:
            return run.price
        priced = [stage for stage in run.stages if stage.priced]
        quotes = [self.plans.quote(stage.entry, stage.task, stage.tier, stage.request.count, stage.figures) for stage in priced]
        if len(quotes) == 1:
            return quotes[0]
        return Quote.combined(quotes, [stage.label or stage.name.replace("_", " ") for stage in priced])

    def cancel(self, account: Account) -> int:
        """The Stop button: the account's running generations end at their next step and are refunded."""
        return self.jobs.cancel(account.id)

    def stopped_since(self, account: Account, since: float) -> bool:
        """Whether the account pressed Stop after `since` (time.monotonic()): work still waiting for its slot ends."""
        return self.jobs.stops.asked_since(account.id, since)

    # -- the paid run ---------------------------------------------------------------------------------------
    def run(self, account: Account, run: PaidRun, idempotency_key: str | None = None, on_step: StepCallback | None = None) -> RunOutput:
        """Run a description as one paid request (see the module docstring). Raises a UserError for anything the
        visitor can change; whatever fails after the reservation is refunded in full."""
        quote = self.prepare(account, run)
        replay = dict(run.replay)
        keep_flagged = account.adult_confirmed and not run.surface.sfw_only
        # Provider calls and local pipelines have separate slots: a slow provider never holds up a local run.
        kind = "remote" if all(stage.entry.is_remote for stage in run.stages) else "local"

        with self.slots.admitted(account.id, kind) as ticket:  # the visitor's share: refused before any credit moves
            def work(cancel) -> GenerationResult:
                result = self._stages(run, cancel, on_step, ticket)  # each stage waits for its slots (Stop ends a wait)
                self.check_reply(account, run, result)  # text outputs (chat replies); images are checked by the jobs
                return result

            try:
                with model_refusals():
                    return self.jobs.run(
                        account, quote=quote, request=replay, work=work, idempotency_key=idempotency_key, allow_flagged=keep_flagged,
                    )
            except GenerationCancelled as exc:
                raise Cancelled() from exc
            except InsufficientCredits as exc:
                raise InsufficientCredits(exc.price, exc.balance, self.cheaper(run, exc.balance)) from None

    def cheaper(self, run: PaidRun, balance: int) -> str:
        """What would fit on this run's surface, in the visitor's words: fewer outputs (takes), a lower tier, or a
        cheaper model for the same task that the balance covers."""
        stage = run.final
        ways = []
        if stage.request.count > 1 and not stage.task.is_text:
            ways.append("fewer takes" if run.surface is Surface.FIGURE else f"fewer {'videos' if stage.task.is_video else 'images'}")
        if stage.tier not in ("1K", "480p", "message"):
            ways.append("a lower resolution")
        current = self.catalogue.unit_price(stage.entry, stage.task)
        options = sorted((self.catalogue.unit_price(e, stage.task), e.name) for e in self.catalogue.entries(stage.task, local=True)
                         if e.id != stage.entry.id and self.catalogue.unit_price(e, stage.task) < current)
        fits = [(p, name) for p, name in options if p * max(1, stage.figures) <= balance]
        if fits:
            ways.append(f"a cheaper model such as {fits[-1][1]} ({fits[-1][0]} credit{'s' if fits[-1][0] != 1 else ''})")
        if not ways:
            return "Nothing on this surface fits your balance now; members get more credits"
        return "Try " + ", or ".join(ways)

    def _stages(self, run: PaidRun, cancel, on_step: StepCallback | None, ticket: Ticket) -> GenerationResult:
        for data, suffix in run.inputs:  # inputs the record refers to (e.g. the cleaned start image)
            self.store.put(data, suffix)
        total = run.planned_steps
        done_before = 0
        previous: GenerationResult | None = None
        records: list[dict[str, Any]] = []
        result: GenerationResult | None = None
        for stage in run.stages:
            request = stage.request
            if stage.chain:
                assert previous is not None  # validate() refuses a chained first stage
                request = replace(request, reference_images=(previous.images[0],))
            if stage.chain_all:
                assert previous is not None
                request = replace(request, reference_images=tuple(previous.images), count=len(previous.images))
            offset, later = done_before, total - done_before - stage.planned_steps

            def progress(done: int, steps: int, offset: int = offset, later: int = later) -> None:
                if on_step is not None:
                    on_step(offset + done, offset + steps + later)

            # the stage's slots: a provider slot, or one of this process's device and one of the model (slots.py)
            with ticket.held(cancel, model=stage.entry.id, device=self.runtime.slot_device(stage.entry),
                             remote=stage.entry.is_remote):
                result = self.runtime.run(stage.entry, stage.task, request, on_step=progress, cancel=cancel)
            record = {"stage": stage.name, **{k: v for k, v in result.parameters.items() if k != "stages"}}
            if result.texts and stage is not run.final:  # an inner text stage (a chat turn's judge): its answer is kept
                record["reply"] = result.texts[0]
            if stage.keep and result.images:
                kept = self.store.put(png_bytes(result.images[0], result.parameters, request.seed), ".png")
                record["file"] = self.store.relative(kept)
            records.append(record)
            done_before += stage.planned_steps
            previous = result
        assert result is not None
        if len(run.stages) > 1 or run.record_stages:
            result.parameters["stages"] = records
        result.parameters.update(run.record)
        if run.annotate is not None:
            run.annotate(result)
        return result
