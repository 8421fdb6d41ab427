"""The offline prompt refiner: presets/refiner.toml as a validated model, and `OfflineRefiner`, a pure, deterministic
reading of it. Before a card's first version it asks about the aspects the prompt does not cover yet (with clickable
suggestions) and works picked suggestions in; after one it applies one change at a time ("closer", "remove the hat",
"switch to profile angle"), or says what it understands. The refine chat (refine_chat.py) runs a language model
instead where one is available; this is what runs without one, and it says so."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..presets_io import PRESETS_DIR, load_validated

DEFAULT_FILE = PRESETS_DIR / "refiner.toml"
ASPECTS = ("subject", "setting", "lighting", "camera", "style")


class RefinerFileError(ValueError):
    """presets/refiner.toml is malformed; the message names the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _no_commas(values: tuple[str, ...] | dict[str, str], what: str):
    for text in values.values() if isinstance(values, dict) else values:
        if "," in text or not text.strip():
            raise ValueError(f"{what}: {text!r} must be one phrase (not empty, no commas)")
    return values


class Aspect(_Strict):
    id: Literal["subject", "setting", "lighting", "camera", "style"]
    label: str = Field(min_length=1, max_length=40)
    question: str = Field(min_length=1, max_length=120)
    place: Literal["start", "subject", "end"]
    covers: tuple[str, ...] = Field(min_length=1)
    suggestions: tuple[str, ...] = Field(min_length=4, max_length=8)

    @field_validator("suggestions")
    @classmethod
    def _phrases(cls, value):
        return _no_commas(value, "a suggestion")


class ReplaceVerb(_Strict):
    verb: str = Field(min_length=1)
    joiner: str = Field(min_length=1)


class Changes(_Strict):
    courtesy: tuple[str, ...] = ()
    closing: tuple[str, ...] = ()
    remove: tuple[str, ...] = Field(min_length=1)
    add: tuple[str, ...] = Field(min_length=1)
    replace: tuple[ReplaceVerb, ...] = Field(min_length=1)
    articles: tuple[str, ...] = ()
    connectors: tuple[str, ...] = Field(min_length=1)
    add_joiner: str = ""
    separators: tuple[str, ...] = ()


class Swap(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    aliases: tuple[str, ...] = Field(min_length=1)
    terms: tuple[str, ...] = Field(min_length=1)
    commands: dict[str, str] = Field(min_length=1)
    examples: tuple[str, ...] = ()

    @field_validator("commands")
    @classmethod
    def _phrases(cls, value):
        return _no_commas(value, "a command's phrase")

    @model_validator(mode="after")
    def _examples(self) -> "Swap":
        unknown = [e for e in self.examples if not any(_has(e, c) for c in self.commands)]
        if unknown:
            raise ValueError(f"examples: {unknown[0]!r} uses none of this swap's commands")
        return self

    @property
    def all_terms(self) -> tuple[str, ...]:
        """What already says this thing: the listed terms and every phrase a command puts in (so changes chain)."""
        return tuple(dict.fromkeys((*self.terms, *self.commands.values())))


class ModelPrompts(_Strict):
    temperature: float = Field(ge=0.0, le=1.0)
    max_new_tokens: int = Field(ge=16, le=2000)
    system: str = Field(min_length=1)
    suggest: str = Field(min_length=1)
    change: str = Field(min_length=1)

    @model_validator(mode="after")
    def _slots(self) -> "ModelPrompts":
        for name, slots in (("suggest", ("{prompt}", "{picked}")), ("change", ("{prompt}", "{instruction}"))):
            if not all(s in getattr(self, name) for s in slots):
                raise ValueError(f"{name}: must contain {' and '.join(slots)}")
        return self


class RefinerPresets(_Strict):
    offline_label: str = Field(min_length=1)
    max_messages: int = Field(ge=2, le=500)
    message_chars: int = Field(ge=80, le=4000)
    instruction_chars: int = Field(ge=20, le=2000)
    phrase_chars: int = Field(ge=20, le=400)
    picks_max: int = Field(ge=1, le=20)
    model: ModelPrompts
    aspects: tuple[Aspect, ...]
    changes: Changes
    swaps: tuple[Swap, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _complete(self) -> "RefinerPresets":
        ids = [a.id for a in self.aspects]
        if sorted(ids) != sorted(ASPECTS):
            raise ValueError(f"aspects: exactly one each of {', '.join(ASPECTS)} (found {', '.join(ids) or 'none'})")
        too_long = [s for a in self.aspects for s in a.suggestions if len(s) > self.phrase_chars]
        if too_long:
            raise ValueError(f"aspects: suggestion {too_long[0]!r} is longer than phrase_chars ({self.phrase_chars})")
        return self


def load_refiner_presets(path: Path = DEFAULT_FILE) -> RefinerPresets:
    return load_validated(path, RefinerPresets, RefinerFileError)


@dataclass(frozen=True)
class Change:
    """What a refinement did: the proposed prompt, what the refiner says about it, and whether anything changed."""

    prompt: str
    said: str
    changed: bool


# -- text helpers: a prompt is comma clauses; matching is whole words, case-insensitive, a plural allowed -----------
def _pattern(phrase: str, plural: bool = True) -> re.Pattern:
    body = r"\s+".join(re.escape(w) for w in phrase.split())
    return re.compile(r"(?<!\w)" + body + (r"(?:e?s)?" if plural else "") + r"(?!\w)", re.IGNORECASE)


def _has(text: str, phrase: str) -> bool:
    return bool(phrase.strip()) and _pattern(phrase).search(text) is not None


def _clauses(prompt: str) -> list[str]:
    return [c.strip() for c in (prompt or "").split(",") if c.strip()]


def _join(clauses: list[str]) -> str:
    return re.sub(r"\s+", " ", ", ".join(c.strip() for c in clauses if c.strip())).strip(" ,")


def _quote(items: list[str]) -> str:
    quoted = [f"“{i}”" for i in items]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


class OfflineRefiner:
    def __init__(self, presets: RefinerPresets | None = None):
        self.presets = presets or load_refiner_presets()
        c = self.presets.changes
        self._connector = re.compile(r"\s+(?=(?:" + "|".join(re.escape(w) for w in sorted(c.connectors, key=len, reverse=True))
                                     + r")\s)", re.IGNORECASE)
        self._commands = sorted(((phrase, swap, new) for swap in self.presets.swaps for phrase, new in swap.commands.items()),
                                key=lambda t: -len(t[0]))

    @property
    def label(self) -> str:
        return self.presets.offline_label

    # -- before a generation: clarifying questions and suggestions ---------------------------------------------
    def covered(self, prompt: str, aspect: Aspect) -> bool:
        return any(_has(prompt, w) for w in (*aspect.covers, *aspect.suggestions))

    def questions(self, prompt: str) -> list[dict]:
        """The aspects the prompt does not cover yet, each with its question and suggestions, in presets order."""
        return [{"aspect": a.id, "label": a.label, "question": a.question, "suggestions": list(a.suggestions)}
                for a in self.presets.aspects if not self.covered(prompt, a)]

    def _aspect_of(self, phrase: str) -> Aspect | None:
        exact = next((a for a in self.presets.aspects if phrase.lower() in (s.lower() for s in a.suggestions)), None)
        return exact or next((a for a in self.presets.aspects if self.covered(phrase, a)), None)

    def apply_suggestions(self, prompt: str, picked: list[str]) -> Change:
        """The picked phrases (suggestions, or a typed answer) worked into the prompt: a subject leads, a setting joins
        the subject's clause, the rest are clauses at the end; one already in the prompt is not added twice."""
        clauses, added = _clauses(prompt), []
        for phrase in (re.sub(r"\s+", " ", p).strip(" ,") for p in picked):
            if not phrase or _has(_join(clauses), phrase):
                continue
            aspect = self._aspect_of(phrase)
            place = aspect.place if aspect else "end"
            if place == "start" and clauses:
                joins = bool(self._connector.match(" " + clauses[0]))  # "in a forest, ..." reads on from a subject
                clauses = [f"{phrase} {clauses[0]}", *clauses[1:]] if joins else [phrase, *clauses]
            elif place == "subject" and clauses:
                joins = bool(self._connector.match(" " + phrase))
                clauses = [f"{clauses[0]} {phrase}", *clauses[1:]] if joins else [clauses[0], phrase, *clauses[1:]]
            else:
                clauses.append(phrase)
            added.append(phrase)
        if not added:
            return Change(_join(_clauses(prompt)), "Those are already in the prompt; nothing changed.", False)
        return Change(_join(clauses), f"Added {_quote(added)}.", True)

    # -- after a generation: one change at a time ----------------------------------------------------------------
    def understands(self) -> str:
        examples = "; ".join(f"{', '.join(s.examples or list(s.commands)[:3])} ({s.id})" for s in self.presets.swaps)
        return (f"I can only make one change at a time, of these kinds: {examples}; “remove the X”; “add X”; "
                "“replace X with Y”. Nothing changed.")

    def apply_change(self, prompt: str, instruction: str) -> Change:
        """One change to the prompt. Several joined ("closer and remove the hat"): the first, and the rest asked for
        next. One it does not understand changes nothing and says what it understands."""
        prompt = _join(_clauses(prompt))
        text = self._plain(instruction)
        separators = "|".join(re.escape(s) for s in self.presets.changes.separators)
        parts = [p for p in re.split(separators, text, flags=re.I) if p.strip()] if separators else [text]
        understood = [p for p in parts if self._parse(prompt, self._plain(p))]
        if len(parts) > 1 and len(understood) > 1:
            change = self._apply(prompt, self._parse(prompt, self._plain(understood[0])))
            rest = ", ".join(p.strip() for p in understood[1:])
            return Change(change.prompt, f"{change.said} One change at a time: send “{rest}” next.", change.changed)
        op = self._parse(prompt, text)
        if op is None:
            return Change(prompt, f"The {self.label} did not understand “{instruction.strip()}”. {self.understands()}", False)
        return self._apply(prompt, op)

    def _plain(self, instruction: str) -> str:
        text = re.sub(r"\s+", " ", instruction or "").strip().strip(".!?").strip()
        courtesy = sorted(self.presets.changes.courtesy, key=len, reverse=True)
        closing = sorted(self.presets.changes.closing, key=len, reverse=True)
        while True:
            trimmed = next((text[len(c):].lstrip(" ,") for c in courtesy if re.match(re.escape(c) + r"\b", text, re.I)), text)
            trimmed = next((trimmed[:-len(c)].rstrip(" ,") for c in closing if re.search(r"\b" + re.escape(c) + "$", trimmed, re.I)),
                           trimmed)
            if trimmed == text:
                return text
            text = trimmed

    def _bare(self, noun: str) -> str:
        words = noun.strip().strip(".!?,").split()
        while words and words[0].lower() in self.presets.changes.articles:
            words = words[1:]
        return " ".join(words)

    def _command(self, text: str, swap: Swap | None = None, whole: bool = False) -> tuple[Swap, str, str] | None:
        for phrase, group, new in self._commands:
            if swap is not None and group.id != swap.id:
                continue
            if (text.lower() == phrase.lower()) if whole else _has(text, phrase):
                return group, phrase, new
        return None

    def _parse(self, prompt: str, text: str) -> tuple | None:
        c = self.presets.changes
        for verb in sorted(c.remove, key=len, reverse=True):
            m = re.fullmatch(re.escape(verb) + r"\s+(.+)", text, re.I)
            if m and self._bare(m.group(1)):
                return ("remove", self._bare(m.group(1)))
        for verb in sorted(c.add, key=len, reverse=True):
            m = re.fullmatch(re.escape(verb) + r"\s+(.+)", text, re.I)
            if m:
                found = self._command(self._bare(m.group(1)), whole=True)
                return ("swap", found[0], found[2]) if found else ("add", m.group(1).strip())
        for rv in c.replace:
            m = re.fullmatch(re.escape(rv.verb) + r"\s+(.+?)\s+" + re.escape(rv.joiner) + r"\s+(.+)", text, re.I)
            if not m:
                continue
            old, new = self._bare(m.group(1)), self._bare(m.group(2))
            swap = next((s for s in self.presets.swaps if old.lower() in (a.lower() for a in s.aliases)), None)
            if swap is not None and new:
                found = self._command(new, swap)
                return ("swap", swap, found[2] if found else new)
            if old and new and _has(prompt, old):
                return ("replace", old, new)
        found = self._command(text)
        return ("swap", found[0], found[2]) if found else None

    def _apply(self, prompt: str, op: tuple) -> Change:
        kind = op[0]
        if kind == "remove":
            return self._remove(prompt, op[1])
        if kind == "add":
            return self._add(prompt, op[1])
        if kind == "replace":
            new = _pattern(op[1]).sub(op[2], prompt)
            return Change(_join(_clauses(new)), f"Replaced “{op[1]}” with “{op[2]}”.", new != prompt)
        return self._swap(prompt, op[1], op[2])

    def _remove(self, prompt: str, noun: str) -> Change:
        """Take out the phrase that mentions the noun (see presets/refiner.toml [changes] connectors), nothing else."""
        if not _has(prompt, noun):
            return Change(prompt, f"There is no “{noun}” in the prompt; nothing changed.", False)
        kept, removed = [], []
        for clause in _clauses(prompt):
            if not _has(clause, noun):
                kept.append(clause)
                continue
            spans = self._connector.split(clause)
            if _has(spans[0], noun):
                removed.append(clause)  # the clause is about it: all of it goes
                continue
            out = [spans[0]]
            for i in range(1, len(spans)):
                span = spans[i]
                if _has(span, noun):
                    removed.append(span)
                    following = spans[i + 1] if i + 1 < len(spans) else ""
                    lead = span.split()[0]
                    if following.lower().startswith("and ") and lead.lower() != "and":  # "with a hat and a scarf"
                        spans[i + 1] = lead + following[3:]
                    continue
                out.append(span)
            kept.append(" ".join(out))
        if not kept:
            return Change(prompt, f"Removing “{noun}” would leave no prompt; nothing changed.", False)
        return Change(_join(kept), f"Removed {_quote(removed)}.", True)

    def _add(self, prompt: str, detail: str) -> Change:
        detail = re.sub(r"\s+", " ", detail).strip(" ,")
        if _has(prompt, detail):
            return Change(prompt, f"The prompt already has “{detail}”; nothing changed.", False)
        joiner = self.presets.changes.add_joiner
        if joiner and not self._connector.match(" " + detail):
            detail = f"{joiner} {detail}"
        clauses = _clauses(prompt)
        at = 1 if clauses else 0
        while at < len(clauses) and self._connector.match(" " + clauses[at]):
            at += 1  # after the subject's other details
        clauses.insert(at, detail)
        return Change(_join(clauses), f"Added “{detail}”.", True)

    def _swap(self, prompt: str, swap: Swap, new: str) -> Change:
        clauses = _clauses(prompt)
        terms = sorted(swap.all_terms, key=len, reverse=True)
        hits = [(i, m) for i, clause in enumerate(clauses) for m in [self._first_term(clause, terms)] if m]
        if not hits:
            clauses.append(new)
            return Change(_join(clauses), f"{swap.id.capitalize()}: added “{new}”.", True)
        first, match = hits[0]
        old = match.group(0)
        if old.lower() == new.lower() and len(hits) == 1:
            return Change(prompt, f"The prompt already says “{new}”; nothing changed.", False)
        clauses[first] = clauses[first][:match.start()] + new + clauses[first][match.end():]
        for i, m in hits[1:]:  # another clause that only said the old thing goes with it
            if m.group(0).strip().lower() == clauses[i].strip().lower():
                clauses[i] = ""
        return Change(_join(clauses), f"{swap.id.capitalize()}: “{old}” → “{new}”.", True)

    @staticmethod
    def _first_term(clause: str, terms: list[str]) -> re.Match | None:
        found = [m for t in terms if (m := _pattern(t, plural=False).search(clause))]
        return min(found, key=lambda m: (m.start(), -len(m.group(0)))) if found else None
