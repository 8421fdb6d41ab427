"""Prompt policy (presets/safety.toml): length per prompt style, members-only adult vocabulary, SFW-only
surfaces, adult figures, and vocabulary that is never allowed. A refusal names its rule in plain words
and happens before any credit is reserved."""
from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from ..errors import UserError
from ..accounts.identity import Account
from ..presets_io import PRESETS_DIR, load_validated

DEFAULT_SAFETY = PRESETS_DIR / "safety.toml"


class Surface(str, Enum):
    """Where a prompt is used; SFW-only surfaces never take adult content from anyone."""

    IMAGE = "image"  # Text mode, Remix, Compare: adult content for members only
    FIGURE = "figure"  # a figure's canonical image: SFW, adults only
    CHARACTER = "character"  # character main image: SFW
    EDIT = "edit"  # instruction edits: SFW
    VIDEO = "video"  # video prompts: members only (the `video_prompt` unlock), and SFW

    @property
    def sfw_only(self) -> bool:
        return self in (Surface.FIGURE, Surface.CHARACTER, Surface.EDIT, Surface.VIDEO)


class PromptStyle(str, Enum):
    TAGS = "tags"
    NATURAL = "natural"


class PolicyError(ValueError):
    """safety.toml is malformed."""


class PromptRefused(UserError, ValueError):
    def __init__(self, rule: str, message: str):
        self.rule = rule
        super().__init__(f"{message} (rule: {rule}; nothing was charged)")


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tags: int = Field(gt=0)
    natural: int = Field(gt=0)


class Vocabulary(BaseModel):
    model_config = ConfigDict(extra="forbid")
    adult: list[str] = Field(min_length=1)
    minor: list[str] = Field(min_length=1)
    non_consensual: list[str] = Field(min_length=1)


class PromptSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limits: Limits
    vocabulary: Vocabulary


class UploadLimits(BaseModel):
    model_config = ConfigDict(extra="forbid")
    formats: list[str] = Field(min_length=1)
    max_bytes: int = Field(gt=0)
    max_pixels: int = Field(gt=0)


class SafetyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt: PromptSection
    output: dict
    uploads: UploadLimits


def load_safety_file(path: Path = DEFAULT_SAFETY) -> SafetyFile:
    return load_validated(path, SafetyFile, PolicyError)


def _pattern(words: list[str]) -> re.Pattern:
    # Whole words/phrases; a phrase's spaces also match hyphens and repeated whitespace.
    alternatives = sorted({re.escape(w.lower()).replace(r"\ ", r"[\s\-_]+") for w in words}, key=len, reverse=True)
    return re.compile(r"(?<![a-z0-9])(?:" + "|".join(alternatives) + r")(?![a-z0-9])")


AGE = re.compile(r"(?<![0-9])(\d{1,2})\s*(?:-\s*)?(?:yo|y/o|y\.o\.?|yrs?\b|years?(?:[\s\-]+old)?|year-old)(?![a-z])")


def _normalise(text: str) -> str:
    text = text.lower()
    text = re.sub(r"[\u200b-\u200f\u2060\ufeff]", "", text)  # zero-width characters used to dodge filters
    return text


@dataclass(frozen=True)
class PromptPolicy:
    limits: Limits
    adult: re.Pattern
    minor: re.Pattern
    non_consensual: re.Pattern

    @classmethod
    def from_file(cls, data: SafetyFile) -> "PromptPolicy":
        v = data.prompt.vocabulary
        return cls(data.prompt.limits, _pattern(v.adult), _pattern(v.minor), _pattern(v.non_consensual))

    def limit(self, style: PromptStyle | str) -> int:
        return self.limits.tags if PromptStyle(style) is PromptStyle.TAGS else self.limits.natural

    def mentions_minor(self, text: str) -> str | None:
        found = self.minor.search(text)
        if found:
            return found.group(0)
        for match in AGE.finditer(text):
            if int(match.group(1)) < 18:
                return match.group(0)
        return None

    def check(self, prompt: str, account: Account, surface: Surface | str = Surface.IMAGE, style: PromptStyle | str = PromptStyle.NATURAL, negative: str = "") -> None:
        """Raise PromptRefused naming the first rule the prompt breaks."""
        surface, style = Surface(surface), PromptStyle(style)
        limit = self.limit(style)
        if len(prompt) > limit:
            kind = "Tag prompts" if style is PromptStyle.TAGS else "Prompts"
            raise PromptRefused(f"length_{style.value}", f"{kind} are limited to {limit:,} characters; this one has {len(prompt):,}. Shorten it.")
        if len(negative) > self.limits.natural:
            raise PromptRefused("length_negative", f"The negative prompt is limited to {self.limits.natural:,} characters.")
        self.check_text(prompt, account, surface)

    def check_text(self, text: str, account: Account, surface: Surface | str) -> None:
        """The vocabulary rules alone (no length rule): for text that is not a prompt, e.g. a character profile."""
        surface = Surface(surface)
        text = _normalise(text)
        found = self.non_consensual.search(text)
        if found:
            raise PromptRefused("non_consensual", f"Non-consensual content is never allowed (found “{found.group(0)}”).")
        adult = self.adult.search(text)
        minor = self.mentions_minor(text)
        if adult and minor:
            raise PromptRefused("minors", "Sexual content involving minors is never allowed. Every character here is an adult.")
        if minor and surface in (Surface.FIGURE, Surface.CHARACTER):
            raise PromptRefused("adult_figures", f"Figures are adults: describe an adult (found “{minor}”).")
        if adult and surface.sfw_only:
            raise PromptRefused("sfw_surface", f"This is an SFW-only feature; remove “{adult.group(0)}”.")
        if adult and not account.can("adult_prompts"):
            raise PromptRefused(
                "members_only", f"18+ prompts are for members; remove “{adult.group(0)}”, or sign in with Hugging Face."
            )


FEATURE_NAMES = {
    "adult_prompts": "18+ prompts",
    "image_to_video": "Image to Video",
    "video_prompt": "Prompts on video",
    "review": "Report review",
}


class FeatureLocked(UserError, PermissionError):
    def __init__(self, feature: str):
        self.feature = feature
        super().__init__(
            f"{FEATURE_NAMES.get(feature, feature)} is for members: sign in with Hugging Face to unlock it. Nothing was charged."
        )


def require(account: Account, feature: str) -> None:
    """Server-side gate for a tier feature, whatever the UI shows."""
    if not account.can(feature):
        raise FeatureLocked(feature)
