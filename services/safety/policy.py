"""Prompt policy (presets/safety.toml): length per prompt style, members-only adult vocabulary, SFW-only
surfaces, adult figures, and vocabulary that is never allowed. A refusal names its rule in plain words
and happens before any credit is reserved."""
from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import regex
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
    CHAT = "chat"  # a chat with a character that allows 18+: adult content for members who confirmed their age
    CHAT_SFW = "chat-sfw"  # a chat with any other character (and every guest's chat): SFW

    @property
    def sfw_only(self) -> bool:
        return self in (Surface.FIGURE, Surface.CHARACTER, Surface.EDIT, Surface.VIDEO, Surface.CHAT_SFW)


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
    per_network_files_per_hour: int = Field(gt=0)
    per_network_bytes_per_hour: int = Field(gt=0)
    keep_minutes: int = Field(gt=0)


class SafetyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt: PromptSection
    output: dict
    uploads: UploadLimits


def load_safety_file(path: Path = DEFAULT_SAFETY) -> SafetyFile:
    return load_validated(path, SafetyFile, PolicyError)


# -- matching on a normalised form ---------------------------------------------------------------------------------
# Before vocabulary matching, text is reduced so that look-alike spellings meet the words they imitate:
# 1. Unicode NFKC (fullwidth, ligatures, mathematical letters -> plain letters),
# 2. every default-ignorable and format code point removed (soft hyphen, zero-width characters, the combining
#    grapheme joiner, variation selectors, tag characters...), per the Unicode property `Default_Ignorable_Code_Point`
#    and the general category Cf (the `regex` module's Unicode tables),
# 3. case folded and combining marks dropped (NFD, then no Mn),
# 4. for vocabulary: the confusable skeleton: a character confusable with a plain Latin letter or digit becomes it,
#    from Unicode's confusables data (the confusable_homoglyphs package's copy of confusables.txt; UTS #39).
# Ages ("16yo") are read from the form before step 4, where digits are still digits.
_IGNORABLE = regex.compile(r"[\p{Default_Ignorable_Code_Point}\p{Cf}]")


@functools.lru_cache(maxsize=1)
def _skeleton_map() -> dict[str, str]:
    """Single characters -> the plain ASCII letter or digit they are confusable with (from Unicode's data)."""
    import json
    from importlib import resources

    data = json.loads(resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text(encoding="utf-8"))
    mapping: dict[str, str] = {}
    for char, homoglyphs in data.items():
        if len(char) != 1 or char.isascii():
            continue
        plain = [h["c"] for h in homoglyphs if len(h["c"]) == 1 and h["c"].isascii() and h["c"].isalnum()]
        if plain:
            # prefer a lowercase letter, then any letter, then a digit (text is case-folded before mapping)
            plain.sort(key=lambda c: (not c.islower(), not c.isalpha(), c))
            mapping[char] = plain[0].lower()
    return mapping


def normalised(text: str, skeleton: bool = True) -> tuple[str, list[int]]:
    """(the matching form of text, for each of its characters the index of the character of `text` it came from)."""
    table = _skeleton_map() if skeleton else {}
    out: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        for c in unicodedata.normalize("NFKC", char):
            if _IGNORABLE.match(c):
                continue
            for d in unicodedata.normalize("NFD", c.casefold()):
                if unicodedata.category(d) == "Mn" or _IGNORABLE.match(d):
                    continue
                d = table.get(d, d)
                out.append(d)
                origin.append(index)
    return "".join(out), origin


def _pattern(words: list[str]) -> re.Pattern:
    # Whole words/phrases on the skeleton; a phrase's spaces also match hyphens and repeated whitespace.
    forms = {normalised(w)[0] for w in words}
    alternatives = sorted({re.escape(w).replace(r"\ ", r"[\s\-_]+") for w in forms}, key=len, reverse=True)
    return re.compile(r"(?<![a-z0-9])(?:" + "|".join(alternatives) + r")(?![a-z0-9])")


AGE = re.compile(r"(?<![0-9])(\d{1,2})\s*(?:-\s*)?(?:yo|y/o|y\.o\.?|yrs?\b|years?(?:[\s\-]+old)?|year-old)(?![a-z])")


@dataclass(frozen=True)
class Matched:
    """A match on the normalised form, quoted as the user wrote it."""

    quote: str


def _search(pattern: re.Pattern, text: str, form: tuple[str, list[int]]) -> Matched | None:
    found = pattern.search(form[0])
    if not found:
        return None
    origin = form[1]
    return Matched(text[origin[found.start()] : origin[found.end() - 1] + 1])


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
        """The words (as written) that make the text about someone under 18, if any."""
        found = _search(self.minor, text, normalised(text))
        if found:
            return found.quote
        plain, origin = normalised(text, skeleton=False)  # digits stay digits
        for match in AGE.finditer(plain):
            if int(match.group(1)) < 18:
                return text[origin[match.start()] : origin[match.end() - 1] + 1]
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
        form = normalised(text)
        found = _search(self.non_consensual, text, form)
        if found:
            raise PromptRefused("non_consensual", f"Non-consensual content is never allowed (found “{found.quote}”).")
        adult = _search(self.adult, text, form)
        minor = self.mentions_minor(text)
        if adult and minor:
            raise PromptRefused("minors", "Sexual content involving minors is never allowed. Every character here is an adult.")
        if minor and surface in (Surface.FIGURE, Surface.CHARACTER):
            raise PromptRefused("adult_figures", f"Figures are adults: describe an adult (found “{minor}”).")
        if adult and surface.sfw_only:
            raise PromptRefused("sfw_surface", f"This is an SFW-only feature; remove “{adult.quote}”.")
        if adult and not account.can("adult_prompts"):
            raise PromptRefused(
                "members_only", f"18+ prompts are for members; remove “{adult.quote}”, or sign in with Hugging Face."
            )
        if adult and not account.adult_confirmed:
            raise PromptRefused(
                "age_confirmation",
                f"18+ prompts need your confirmation that you are 18 or older: confirm it in the Credits tab (or call "
                f"/confirm_age), or remove “{adult.quote}”.",
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
