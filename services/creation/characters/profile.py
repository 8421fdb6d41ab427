"""A character's profile: the limits file (presets/characters.toml), the checks every save runs before anything is
written, and the writing helpers (personality suggestions, backstory guidance) that warn but never refuse.

Every limit is read from the file; messages name the field and the limit.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ...errors import UserError
from ...presets_io import PRESETS_DIR, load_validated

DEFAULT_FILE = PRESETS_DIR / "characters.toml"
# Character Card V2/V3 text fields a profile can fill (keys as the cards name them).
CARD_FIELDS = ("name", "description", "personality", "scenario", "first_mes", "mes_example", "system_prompt",
               "post_history_instructions", "creator_notes", "creator")
VISIBILITIES = ("public", "unlisted", "private")
SHOWN = ("public", "unlisted")  # visible to others: their images must be ones the output check passed
ENABLE_CHECK = ("Install the output check (pip install -r requirements.txt brings open_nsfw; PLAYGROUND_SAFETY picks another) "
                "and restart, or keep the character private.")


class CharacterError(UserError, ValueError):
    """A character request that cannot be done as asked; the message says what to change."""


class CharactersFileError(ValueError):
    pass


class FieldSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    key: Literal[CARD_FIELDS]  # type: ignore[valid-type]
    label: str
    max: int = Field(gt=0, le=20000)
    required: bool = False
    lines: int = Field(default=1, ge=1, le=20)

    @property
    def title(self) -> str:
        """The label without its explanation in brackets, for messages."""
        return self.label.split(" (")[0]


class PersonalityWords(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    traits: tuple[str, ...] = Field(min_length=5)
    quirks: tuple[str, ...] = Field(min_length=1)
    generic: tuple[str, ...]


class BackstoryGuide(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    guidance: tuple[str, ...]


class CharacterLimits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    fields: tuple[FieldSpec, ...]
    max_tags: int = Field(ge=1, le=100)
    max_tag_length: int = Field(ge=1, le=100)
    max_intro: int = Field(ge=20, le=2000)
    max_opening_messages: int = Field(ge=0, le=100)
    max_chat_models: int = Field(ge=0, le=20)
    max_persona_cards: int = Field(ge=0, le=50)
    max_persona_name: int = Field(ge=1, le=200)
    max_persona_description: int = Field(ge=1, le=20000)
    max_challenge_modes: int = Field(ge=0, le=20)
    max_challenge_text: int = Field(ge=1, le=5000)
    backstory_warn_words: int = Field(ge=10, le=10000)
    gallery_page_size: int = Field(ge=1, le=200)
    catalogue_page_size: int = Field(ge=1, le=200)
    avatar_prompt_max: int = Field(ge=1, le=10000)
    visibilities: tuple[Literal[VISIBILITIES], ...]  # type: ignore[valid-type]
    preset_tags: tuple[str, ...]
    chat_models: tuple[str, ...]
    personality: PersonalityWords
    backstory: BackstoryGuide

    @model_validator(mode="after")
    def _check(self) -> "CharacterLimits":
        keys = [f.key for f in self.fields]
        if len(set(keys)) != len(keys):
            raise ValueError(f"fields: a key appears twice ({keys})")
        for needed in ("name", "first_mes"):
            if needed not in keys or not self.spec(needed).required:
                raise ValueError(f"fields: {needed!r} must be listed and required (every card has a name and a greeting)")
        if set(self.visibilities) != set(VISIBILITIES):
            raise ValueError(f"visibilities must be exactly {list(VISIBILITIES)}")
        long = [t for t in self.preset_tags if len(t) > self.max_tag_length]
        if long:
            raise ValueError(f"preset_tags longer than max_tag_length: {long}")
        return self

    def spec(self, key: str) -> FieldSpec:
        return next(f for f in self.fields if f.key == key)


def load_character_limits(path: Path = DEFAULT_FILE) -> CharacterLimits:
    return load_validated(path, CharacterLimits, CharactersFileError)


@dataclass(frozen=True)
class Profile:
    """What a user writes. `fields` holds Character Card text fields (name and first_mes, the greeting, required)."""

    fields: dict[str, str] = field(default_factory=dict)
    intro: str = ""
    tags: tuple[str, ...] = ()
    opening_messages: tuple[str, ...] = ()  # alternate greetings: a chat picks one at random per conversation
    chat_models: tuple[str, ...] = ()
    persona_cards: tuple[dict[str, str], ...] = ()  # {"name", "description"}
    challenge_modes: tuple[dict[str, str], ...] = ()  # {"goal", "target", "hint"}

    @classmethod
    def from_stored(cls, stored: dict[str, Any]) -> "Profile":
        return cls(
            fields=dict(stored.get("fields", {})), intro=stored.get("intro", ""), tags=tuple(stored.get("tags", ())),
            opening_messages=tuple(stored.get("alternate_greetings", ())), chat_models=tuple(stored.get("chat_models", ())),
            persona_cards=tuple(stored.get("persona_cards", ())), challenge_modes=tuple(stored.get("challenge_modes", ())),
        )


def stored_profile(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored profile with every key present (rows written before a key existed read as empty)."""
    return {"fields": dict(stored.get("fields", {})), "intro": stored.get("intro", ""), "tags": list(stored.get("tags", [])),
            "alternate_greetings": list(stored.get("alternate_greetings", [])), "chat_models": list(stored.get("chat_models", [])),
            "persona_cards": list(stored.get("persona_cards", [])), "challenge_modes": list(stored.get("challenge_modes", []))}


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def clean_profile(limits: CharacterLimits, profile: Profile) -> dict[str, Any]:
    """The stored form of a profile, or CharacterError naming the field and its limit. Writes nothing."""
    known = {f.key: f for f in limits.fields}
    fields: dict[str, str] = {}
    for key, value in profile.fields.items():
        if key not in known:
            raise CharacterError(f"Unknown profile field {key!r}; the fields are {', '.join(known)}.")
        fields[key] = _text(value)
    for spec in limits.fields:
        value = fields.setdefault(spec.key, "")
        if spec.required and not value:
            raise CharacterError(f"{spec.title} is required.")
        if len(value) > spec.max:
            raise CharacterError(f"{spec.title} is limited to {spec.max:,} characters; it has {len(value):,}.")

    intro = _text(profile.intro)
    if not intro:
        raise CharacterError("Introduction is required: one or two sentences shown on the character's card.")
    if len(intro) > limits.max_intro:
        raise CharacterError(f"Introduction is limited to {limits.max_intro:,} characters; it has {len(intro):,}.")

    tags = list(dict.fromkeys(t for t in (_text(t) for t in profile.tags) if t))
    if not tags:
        raise CharacterError("Tags: at least one is required (pick a preset tag or write your own).")
    if len(tags) > limits.max_tags:
        raise CharacterError(f"Tags: at most {limits.max_tags}; there are {len(tags)}.")
    long_tags = [t for t in tags if len(t) > limits.max_tag_length]
    if long_tags:
        raise CharacterError(f"Tags are limited to {limits.max_tag_length} characters each: “{long_tags[0]}” is longer.")

    greetings = [g for g in (_text(g) for g in profile.opening_messages) if g]
    if len(greetings) > limits.max_opening_messages:
        raise CharacterError(f"Opening messages: at most {limits.max_opening_messages}; there are {len(greetings)}.")
    greeting_max = limits.spec("first_mes").max
    for n, g in enumerate(greetings, 1):
        if len(g) > greeting_max:
            raise CharacterError(f"Opening message {n} is limited to {greeting_max:,} characters; it has {len(g):,}.")

    models = list(dict.fromkeys(m for m in (_text(m) for m in profile.chat_models) if m))
    if len(models) > limits.max_chat_models:
        raise CharacterError(f"Chat models: at most {limits.max_chat_models}; there are {len(models)}.")
    unknown = [m for m in models if m not in limits.chat_models]
    if unknown:
        raise CharacterError(f"Chat models: {unknown[0]!r} is not offered; pick from {', '.join(limits.chat_models)}.")

    personas = []
    for n, card in enumerate(profile.persona_cards, 1):
        card = card if isinstance(card, dict) else {}
        name, description = _text(card.get("name")), _text(card.get("description"))
        if not name and not description:
            continue
        if not name:
            raise CharacterError(f"Persona card {n}: the name is required.")
        if len(name) > limits.max_persona_name:
            raise CharacterError(f"Persona card {n}: the name is limited to {limits.max_persona_name} characters.")
        if len(description) > limits.max_persona_description:
            raise CharacterError(f"Persona card {n}: the description is limited to {limits.max_persona_description:,} characters.")
        personas.append({"name": name, "description": description})
    if len(personas) > limits.max_persona_cards:
        raise CharacterError(f"Persona cards: at most {limits.max_persona_cards}; there are {len(personas)}.")

    challenges = []
    for n, mode in enumerate(profile.challenge_modes, 1):
        mode = mode if isinstance(mode, dict) else {}
        goal, target, hint = _text(mode.get("goal")), _text(mode.get("target")), _text(mode.get("hint"))
        if not (goal or target or hint):
            continue
        if not goal:
            raise CharacterError(f"Challenge mode {n}: the goal is required.")
        for label, value in (("goal", goal), ("target behaviour", target), ("progress hint", hint)):
            if len(value) > limits.max_challenge_text:
                raise CharacterError(f"Challenge mode {n}: the {label} is limited to {limits.max_challenge_text} characters.")
        challenges.append({"goal": goal, "target": target, "hint": hint})
    if len(challenges) > limits.max_challenge_modes:
        raise CharacterError(f"Challenge modes: none, or 1 to {limits.max_challenge_modes}; there are {len(challenges)}.")

    return {"fields": fields, "intro": intro, "tags": tags, "alternate_greetings": greetings, "chat_models": models,
            "persona_cards": personas, "challenge_modes": challenges}


def check_visibility(visibility: str) -> str:
    value = _text(visibility).lower()
    if not value:
        raise CharacterError(f"Visibility is required: {', '.join(VISIBILITIES)}.")
    if value not in VISIBILITIES:
        raise CharacterError(f"Visibility must be one of {', '.join(VISIBILITIES)}, not {visibility!r}.")
    return value


def article(word: str) -> str:
    return f"{'An' if word[:1] in 'aeiou' else 'A'} {word}"


def profile_texts(cleaned: dict[str, Any]) -> list[str]:
    """Every piece of text a stored profile holds (for the prompt policy)."""
    texts = [*cleaned["fields"].values(), cleaned["intro"], *cleaned["tags"], *cleaned["alternate_greetings"]]
    texts += [v for card in cleaned["persona_cards"] for v in card.values()]
    texts += [v for mode in cleaned["challenge_modes"] for v in mode.values()]
    return [t for t in texts if t]


# -- writing helpers -----------------------------------------------------------------------------------------
_WORD = re.compile(r"[\w'-]+")


def personality_help(limits: CharacterLimits, personality: str, seed_text: str = "",
                      traits: tuple[str, ...] = ()) -> dict[str, Any]:
    """Suggested traits (3-5 and one quirk, picked from the presets by the text so they are stable for one draft)
    and warnings on the generic positive adjectives the personality uses. `traits` (an archetype's) replaces the
    preset list as the pool the traits are picked from."""
    words = personality.lower()
    generic = [w for w in limits.personality.generic if re.search(rf"\b{re.escape(w)}\b", words)]
    warnings = []
    if generic:
        warnings.append(f"“{', '.join(generic)}” say{'s' if len(generic) == 1 else ''} little about how they act; "
                        "name a specific habit or reaction instead.")
    digest = hashlib.sha256((seed_text or personality or "character").encode("utf-8")).digest()
    taken = [t for t in (traits or limits.personality.traits) if t.lower() not in words]
    count = 3 + digest[0] % 3  # 3, 4 or 5
    picked = [taken.pop(digest[1 + i] % len(taken)) for i in range(min(count, len(taken)))]
    quirk = limits.personality.quirks[digest[10] % len(limits.personality.quirks)]
    return {"traits": picked, "quirk": quirk, "warnings": warnings}


def backstory_help(limits: CharacterLimits, backstory: str) -> dict[str, Any]:
    """The guidance questions and a warning when the backstory is past the word count a chat model reads well."""
    words = len(_WORD.findall(backstory or ""))
    warnings = []
    if words > limits.backstory_warn_words:
        warnings.append(f"The backstory has {words} words; past about {limits.backstory_warn_words} a chat model "
                        "tends to lose the important parts. Keep what shapes how they talk and act.")
    return {"guidance": list(limits.backstory.guidance), "words": words, "warnings": warnings}


# -- text forms (one line each), shared by the UI and the API -----------------------------------------------
def persona_from_text(line: str) -> dict[str, str]:
    """"Name: description" -> a persona card."""
    name, _, description = (line or "").partition(":")
    return {"name": name.strip(), "description": description.strip()}


def challenge_from_text(line: str) -> dict[str, str]:
    """"goal | target behaviour | progress hint" -> a challenge mode (the last two optional)."""
    parts = [p.strip() for p in (line or "").split("|")]
    parts += [""] * (3 - len(parts))
    return {"goal": parts[0], "target": parts[1], "hint": " | ".join(parts[2:]).strip(" |")}


def persona_text(card: dict[str, str]) -> str:
    return f"{card['name']}: {card['description']}" if card.get("description") else card["name"]


def challenge_text(mode: dict[str, str]) -> str:
    return " | ".join([mode["goal"], mode.get("target", ""), mode.get("hint", "")]).rstrip(" |")


def split_paragraphs(text: str) -> tuple[str, ...]:
    """Opening messages in one box: separated by a blank line."""
    return tuple(p.strip() for p in (text or "").replace("\r\n", "\n").split("\n\n") if p.strip())


def split_lines(text: str) -> tuple[str, ...]:
    return tuple(line.strip() for line in (text or "").replace("\r\n", "\n").split("\n") if line.strip())
