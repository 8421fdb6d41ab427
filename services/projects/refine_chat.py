"""The refine chat on a card: before a generation it asks clarifying questions with clickable suggestions, after one
it applies one change at a time, and each answer carries the full prompt it proposes (the UI expands it and offers
New Version with prompt = the draft as typed, refined = the proposal). With a language model that runs for real, each
answer is a paid chat turn through the one runner at a low temperature; without one, the offline refiner
(refiner.py) answers, free and deterministic, and says so. The chat is kept on the card (project_cards.refine), the
newest messages only; members read it, and an archived project's chat is read-only."""
from __future__ import annotations

import re
import secrets
import time
from typing import Any

import sqlalchemy as sa

from pipelines.types import SEED_LIMIT, GenerationRequest, StepCallback, Task

from ..accounts.identity import Account
from ..accounts.tables import project_cards, project_versions
from ..runs.runner import PaidRun, PromptCheck, Stage
from ..safety.output import SafetyBlocked
from ..safety.policy import Surface
from .access import ProjectError, card_row, project_row, writable
from .cards import DRAFT_MAX
from .refiner import Change, OfflineRefiner

# A refined prompt is an image prompt: the image surface's rules apply to what the visitor sends and to the answers.
SURFACE = Surface.IMAGE
_THINKING = re.compile(r"<think>.*?</think>", re.S | re.I)
_LEAD = re.compile(r"^(?:here is |here's )?(?:the )?(?:revised |refined |new |updated )?(?:image )?prompt\s*:\s*", re.I)


def cleaned_reply(reply: str) -> str:
    """A model's answer as a prompt: no reasoning block, code fence, label or quotes; one line; within a prompt's limit."""
    text = _THINKING.sub("", reply or "").strip()
    text = re.sub(r"^```\w*\s*|\s*```$", "", text).strip()
    text = _LEAD.sub("", " ".join(text.split())).strip().strip("\"'`“”‘’ ").strip()
    if len(text) > DRAFT_MAX:
        cut = text[:DRAFT_MAX]
        text = cut[:cut.rfind(",")] if "," in cut else cut
    return text.strip(" ,")


class Refining:
    refiner: OfflineRefiner  # set by Projects (presets/refiner.toml)

    # -- which refiner answers ---------------------------------------------------------------------------------
    def refine_model(self):
        """The first chat model that runs for real (neither the tiny offline preview nor a remote without its key);
        None: the offline refiner answers."""
        for entry in self.catalogue.chat_entries():
            if not self.catalogue.is_preview(entry) and self.catalogue.status(entry)["runnable"]:
                return entry
        return None

    def _refiner_info(self) -> dict[str, Any]:
        entry = self.refine_model()
        if entry is None:
            return {"name": self.refiner.label, "model": None, "offline": True, "price": 0, "text": "free"}
        quote = self.catalogue.price(entry, Task.CHAT, "message")
        return {"name": entry.name, "model": entry.id, "offline": False, "price": quote.total, "text": quote.text()}

    def refine_quote(self, account: Account, card_id: str) -> dict[str, Any]:
        """What one answer of the refine chat costs (shown before asking): a chat message at the model's price, or
        free with the offline refiner."""
        with self.db.engine.connect() as conn:
            card_row(conn, account, card_id)
        return self._refiner_info()

    # -- reading ----------------------------------------------------------------------------------------------
    def refine_state(self, account: Account, card_id: str) -> dict[str, Any]:
        """The card's refine chat: its messages (each answer with the full prompt it proposes), the prompt the next
        refinement starts from, the clarifying questions that prompt leaves open, the phase (before / after the
        card's first version), the refiner and its price, and the New Version offer for the latest proposal."""
        with self.db.engine.connect() as conn:
            row = card_row(conn, account, card_id)
            project = project_row(conn, account, row.project_id)
            base = self._refine_base(conn, row)
            versions = conn.execute(sa.select(sa.func.count()).select_from(project_versions)
                                    .where(project_versions.c.card_id == row.id)).scalar()
        messages = list(row.refine or [])
        proposal = _proposal(messages)
        return {"card_id": row.id, "messages": messages, "base": base, "proposal": proposal,
                "phase": "after" if versions else "before", "questions": self.refiner.questions(base),
                "refiner": self._refiner_info(), "read_only": project.archived_at is not None,
                "offer": {"prompt": row.draft, "refined": proposal} if proposal else None}

    def _refine_base(self, conn: sa.Connection, row) -> str:
        """What the next refinement changes: the chat's latest proposal, else the prompt the latest version of the
        shown direction ran with, else the draft."""
        proposal = _proposal(list(row.refine or []))
        if proposal:
            return proposal
        latest = conn.execute(sa.select(project_versions.c.prompt, project_versions.c.refined)
                              .where(project_versions.c.card_id == row.id, project_versions.c.direction_id == row.direction_id)
                              .order_by(project_versions.c.number.desc()).limit(1)).first()
        if latest is not None and (latest.refined or latest.prompt):
            return latest.refined or latest.prompt
        return row.draft or ""

    # -- asking -----------------------------------------------------------------------------------------------
    def refine_suggest(self, account: Account, card_id: str, picked: list[str] | str, prompt: str | None = None,
                       idempotency_key: str | None = None, on_step: StepCallback | None = None) -> dict[str, Any]:
        """Before a generation: work the clicked suggestions (or typed answers to the questions) into the prompt.
        `prompt`: the text to refine (default: see refine_state's base). Returns the state with the proposal."""
        limits = self.refiner.presets
        picks = [re.sub(r"\s+", " ", p).strip() for p in ([picked] if isinstance(picked, str) else list(picked or []))]
        picks = list(dict.fromkeys(p for p in picks if p))
        if not picks:
            raise ProjectError("Pick a suggestion (or type an answer) first.")
        if len(picks) > limits.picks_max:
            raise ProjectError(f"Pick at most {limits.picks_max} suggestions at once.")
        if any(len(p) > limits.phrase_chars for p in picks):
            raise ProjectError(f"A suggestion is at most {limits.phrase_chars} characters.")
        said = "Add: " + "; ".join(picks)
        base = self._refine_start(account, card_id, prompt, said)
        entry = self.refine_model()
        if entry is None:
            return self._offline(account, card_id, "suggest", said, self.refiner.apply_suggestions(base, picks))
        ask = limits.model.suggest.format(prompt=base or "(empty)", picked="; ".join(picks))
        return self._through_model(account, card_id, entry, "suggest", said, base, ask, idempotency_key, on_step)

    def refine_change(self, account: Account, card_id: str, instruction: str, prompt: str | None = None,
                      idempotency_key: str | None = None, on_step: StepCallback | None = None) -> dict[str, Any]:
        """After a generation: one change to the prompt ("closer", "remove the hat", "switch to profile angle")."""
        limits = self.refiner.presets
        instruction = re.sub(r"\s+", " ", instruction or "").strip()
        if not instruction:
            raise ProjectError("Say what to change, one thing at a time (e.g. “closer” or “remove the hat”).")
        if len(instruction) > limits.instruction_chars:
            raise ProjectError(f"Ask for one change at a time, in at most {limits.instruction_chars} characters.")
        base = self._refine_start(account, card_id, prompt, instruction)
        entry = self.refine_model()
        if entry is None:
            return self._offline(account, card_id, "change", instruction, self.refiner.apply_change(base, instruction))
        ask = limits.model.change.format(prompt=base or "(empty)", instruction=instruction)
        return self._through_model(account, card_id, entry, "change", instruction, base, ask, idempotency_key, on_step)

    def refine_clear(self, account: Account, card_id: str) -> dict[str, Any]:
        """Start the card's refine chat again (the versions keep the prompts they ran with)."""
        with self.db.begin() as conn:
            row = card_row(conn, account, card_id)
            writable(project_row(conn, account, row.project_id))
            conn.execute(project_cards.update().where(project_cards.c.id == row.id).values(refine=[]))
        return self.refine_state(account, card_id)

    # -- helpers ----------------------------------------------------------------------------------------------
    def _refine_start(self, account: Account, card_id: str, prompt: str | None, said: str) -> str:
        """Membership, a writable project, and the prompt policy on what the visitor sent, before anything runs or is
        stored: a refused text changes nothing. Returns the prompt to refine."""
        with self.db.engine.connect() as conn:
            row = card_row(conn, account, card_id)
            writable(project_row(conn, account, row.project_id))
            base = self._checked_draft(prompt) if prompt is not None else self._refine_base(conn, row)
        self.runner.policy.check(said, account, SURFACE)
        self.runner.policy.check(base, account, SURFACE)
        return base

    def _offline(self, account: Account, card_id: str, kind: str, said: str, change: Change) -> dict[str, Any]:
        proposal = None
        if change.changed:
            proposal = self._checked_draft(change.prompt)  # a prompt's limit
            self.runner.policy.check(proposal, account, SURFACE)
        label = self.refiner.label
        answer = f"{change.said} ({label}, free)"
        self._refine_append(account, card_id, [
            self._message("user", kind, said, by=account.id),
            self._message("assistant", kind, answer, prompt=proposal, refiner=label, offline=True, changed=change.changed)])
        return dict(self.refine_state(account, card_id), said=answer, changed=change.changed, charged=0, request_id=None)

    def _through_model(self, account: Account, card_id: str, entry, kind: str, said: str, base: str, ask: str,
                       idempotency_key: str | None, on_step: StepCallback | None) -> dict[str, Any]:
        """One paid chat turn: the system prompt asks for the revised prompt only, one change, at a low temperature."""
        settings = self.refiner.presets.model
        assert entry.chat is not None
        request = GenerationRequest(prompt=ask, messages=(("system", settings.system), ("user", ask)), steps=1, guidance=0.0,
                                    max_new_tokens=min(settings.max_new_tokens, entry.chat.max_new_tokens),
                                    temperature=settings.temperature, seed=secrets.randbelow(SEED_LIMIT))
        run = PaidRun(stages=(Stage("refine", entry, Task.CHAT, request, tier="message"),), surface=SURFACE,
                      replay={"project_card": card_id, "refine": kind, "said": said, "base": base, "model": entry.id},
                      prompts=(PromptCheck(said), PromptCheck(base)), record={"project_card_id": card_id, "refine": kind})
        try:
            output = self.runner.run(account, run, idempotency_key, on_step)
        except SafetyBlocked as exc:
            answer = f"{entry.name}'s answer was withheld ({exc.reason}) and refunded; nothing changed."
            self._refine_append(account, card_id, [
                self._message("user", kind, said, by=account.id),
                self._message("assistant", kind, answer, refiner=entry.name, offline=False, changed=False)])
            return dict(self.refine_state(account, card_id), said=answer, changed=False, charged=0, request_id=None)
        proposal = cleaned_reply(str(output.parameters.get("reply") or ""))
        changed = bool(proposal) and proposal != base
        cost = f"{output.charged} credit{'' if output.charged == 1 else 's'}"
        answer = (f"{entry.name} revised the prompt ({cost})." if changed else
                  f"{entry.name} {'kept the prompt as it was' if proposal else 'returned no prompt'} ({cost}); nothing changed.")
        with self.db.engine.connect() as conn:
            stored = any(m.get("generation_id") == output.request_id for m in card_row(conn, account, card_id).refine or [])
        if not stored:  # a replayed idempotency key answers again without storing twice
            self._refine_append(account, card_id, [
                self._message("user", kind, said, by=account.id),
                self._message("assistant", kind, answer, prompt=proposal if changed else None, refiner=entry.name,
                              offline=False, changed=changed, charged=output.charged, generation_id=output.request_id)])
        return dict(self.refine_state(account, card_id), said=answer, changed=changed, charged=output.charged,
                    request_id=output.request_id)

    def _message(self, role: str, kind: str, content: str, **fields: Any) -> dict[str, Any]:
        return {"role": role, "kind": kind, "content": content[:self.refiner.presets.message_chars], "at": time.time(), **fields}

    def _refine_append(self, account: Account, card_id: str, messages: list[dict[str, Any]]) -> None:
        """Add to the card's chat, keeping the newest messages; the row is locked so two members' turns both land."""
        with self.db.begin() as conn:
            row = card_row(conn, account, card_id)
            current = conn.execute(sa.select(project_cards.c.refine).where(project_cards.c.id == row.id).with_for_update()).scalar()
            kept = [*(current or []), *messages][-self.refiner.presets.max_messages:]
            conn.execute(project_cards.update().where(project_cards.c.id == row.id).values(refine=kept))


def _proposal(messages: list[dict[str, Any]]) -> str | None:
    """The newest full prompt an answer proposed."""
    return next((m["prompt"] for m in reversed(messages) if m.get("role") == "assistant" and m.get("prompt")), None)
