"""Rules for request parameters, each defined once.

Two layers use them:
- the API boundary: `ARGUMENTS` declares, per parameter name, the type and range every public endpoint accepts;
  `check_argument` enforces it before any work (the UI's wrapper calls it for every argument of every endpoint), and
  the UI takes its component limits (sliders, number boxes) from the same rules;
- the requests: `checked_*` resolve "default" sentinels (seed -1, steps 0, guidance -1) and check ranges when a
  surface builds its request; the runner checks every stage again.
"""
from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from typing import Any

from pipelines.registry import GUIDANCE_MAX, STEPS_MAX
from pipelines.types import SEED_LIMIT

from ..errors import InvalidRequest

MAX_COUNT = 8  # images per request (a Text-mode batch)
MAX_TAKES = 4  # takes per figure Generate click
RANDOM_SEED = -1  # what the UI and the API send for "pick a random seed"
MAX_KEY_CHARS = 128  # idempotency keys
MAX_TEXT = 20_000  # any free-text argument (prompts have their own, lower limits in presets/safety.toml)
MAX_ITEMS = 50  # any list or mapping argument
INDEX_MAX = 10_000  # image positions within one request or gallery
RECORD_FIELDS = 10  # fields of one object in a list of objects (e.g. {"id", "weight"})


@dataclass(frozen=True)
class Rule:
    """What one API argument may be: its kind, its range (numbers) or length (text: characters; lists: items)."""

    kind: str  # "int" | "float" | "str" | "bool" | "list" | "dict" | "file"
    low: float | None = None
    high: float | None = None
    max_len: int | None = None
    hint: str = ""  # what special values mean, e.g. "-1 = random"

    def describe(self) -> str:
        if self.kind in ("int", "float") and self.low is not None:
            word = "an integer" if self.kind == "int" else "a number"
            low = f"{self.low:g}" if self.kind == "float" else str(int(self.low))
            high = f"{self.high:g}" if self.kind == "float" else str(int(self.high))
            return f"{word} from {low} to {high}" + (f" ({self.hint})" if self.hint else "")
        if self.kind == "str":
            return f"text of at most {self.max_len:,} characters" + (f" ({self.hint})" if self.hint else "")
        if self.kind == "list":
            return f"a list of at most {self.max_len} text items"
        if self.kind == "dict":
            return f"an object of at most {self.max_len} text fields"
        if self.kind == "records":
            return f"a list of at most {self.max_len} objects of text or number fields"
        return {"bool": "true or false", "file": "an uploaded file"}.get(self.kind, self.kind)


def _int(low: int, high: int, hint: str = "") -> Rule:
    return Rule("int", low, high, hint=hint)


def _float(low: float, high: float, hint: str = "") -> Rule:
    return Rule("float", low, high, hint=hint)


# Per parameter name, for every public endpoint (an argument not listed here follows its annotation's default rule).
ARGUMENTS: dict[str, Rule] = {
    "seed": _int(RANDOM_SEED, SEED_LIMIT - 1, "-1 = random"),
    "count": _int(1, MAX_COUNT),
    "takes": _int(1, MAX_TAKES),
    "steps": _int(0, STEPS_MAX, "0 = the model's default"),
    "guidance": _float(-1.0, GUIDANCE_MAX, "-1 = the model's default"),
    "strength": _float(-1.0, 1.0, "-1 = the model's default"),
    "likeness": _float(0.0, 1.0),
    "figures": _int(1, 3),
    "index": _int(0, INDEX_MAX),
    "canonical_index": _int(0, INDEX_MAX),
    "position": _int(-1, INDEX_MAX, "-1 = the figure's canonical image"),
    "limit": _int(1, 1000),
    "token": Rule("str", max_len=300),
    "admin_key": Rule("str", max_len=300),
    "idempotency_key": Rule("str", max_len=MAX_KEY_CHARS),
    "model": Rule("str", max_len=100),
    "face_path": Rule("str", max_len=100),
    **{ident: Rule("str", max_len=100) for ident in ("request_id", "figure_id", "character_id", "take_id", "report_id")},
    "models": Rule("list", max_len=8),
    "figure_ids": Rule("list", max_len=8),
    "prompts": Rule("list", max_len=500),  # a grid's own prompts (plans.toml [research] caps how many run)
    **{ident: Rule("str", max_len=100) for ident in ("grid_id", "battle_id", "job_id", "prompt_set")},
    **{ident: Rule("str", max_len=100) for ident in ("conversation_id", "project_id", "card_id", "version_id", "ref_id",
                                                     "scene_id", "direction_id", "member_id")},
}
# What a missing required argument means to a visitor in the UI (API callers read the parameter's name after it).
MISSING: dict[str, str] = {
    "request_id": "Pick an image first: click one of your images",
    "figure_id": "Pick a figure first",
    "figure_ids": "Pick the figures first",
    "character_id": "Pick a character first",
    "take_id": "Pick a take first",
    "media_id": "Pick an image of the gallery first",
    "report_id": "Pick a report first",
    "prompt": "Write a prompt first",
    "model": "Pick a model first",
    "conversation_id": "Pick a conversation first (or start a new one)",
    "project_id": "Pick a project first (or create one)",
    "card_id": "Pick a card first (or create one)",
    "version_id": "Pick a version first: click one of the card's thumbnails",
    "ref_id": "Pick a ref first",
    "scene_id": "Pick a scene first",
}
DEFAULTS: dict[str, Rule] = {
    "int": _int(-(2**31), 2**31 - 1),
    "float": _float(-1e6, 1e6),
    "str": Rule("str", max_len=MAX_TEXT),
    "bool": Rule("bool"),
    "list": Rule("list", max_len=MAX_ITEMS),
    "dict": Rule("dict", max_len=MAX_ITEMS),
    "records": Rule("records", max_len=MAX_ITEMS),
    "file": Rule("file"),
}


def rule_for(name: str, kind: str) -> Rule:
    return ARGUMENTS.get(name) or DEFAULTS[kind]


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_argument(name: str, kind: str, value: Any, optional: bool = False) -> Any:
    """The argument as its declared type, or InvalidRequest naming the parameter and what it accepts."""
    rule = rule_for(name, kind)
    if value is None:
        if optional or rule.kind == "file":
            return None
        if name in MISSING:
            raise InvalidRequest(f"{MISSING[name]} (API: {name} is missing; it must be {rule.describe()}).")
        raise InvalidRequest(f"{name} is missing: it must be {rule.describe()}.")
    wrong = InvalidRequest(f"{name} must be {rule.describe()}; got {_shown(value)}.")
    if rule.kind == "bool":
        if not isinstance(value, bool):
            raise wrong
        return value
    if rule.kind in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong
        if isinstance(value, float) and not math.isfinite(value):
            raise wrong
        if rule.kind == "int":
            if isinstance(value, float):
                if not value.is_integer():
                    raise wrong
                value = int(value)
        else:
            value = float(value)
        if value < rule.low:  # type: ignore[operator]
            raise InvalidRequest(f"{name}: {_shown(value)} is less than minimum value {_bound(rule.low, rule)}; it must be {rule.describe()}.")
        if value > rule.high:  # type: ignore[operator]
            raise InvalidRequest(f"{name}: {_shown(value)} is greater than maximum value {_bound(rule.high, rule)}; it must be {rule.describe()}.")
        return value
    if rule.kind == "str":
        if not isinstance(value, str):
            raise wrong
        if len(value) > (rule.max_len or MAX_TEXT):
            raise InvalidRequest(f"{name} is {len(value):,} characters; it must be {rule.describe()}.")
        return value
    if rule.kind == "list":
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and len(v) <= MAX_TEXT for v in value):
            raise wrong
        if len(value) > (rule.max_len or MAX_ITEMS):
            raise InvalidRequest(f"{name} has {len(value)} items; it must be {rule.describe()}.")
        return list(value)
    if rule.kind == "records":
        def plain(v: Any) -> bool:
            return (isinstance(v, str) and len(v) <= MAX_TEXT) or (isinstance(v, (int, float)) and not isinstance(v, bool)
                                                                   and math.isfinite(v))
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(r, dict) and len(r) <= RECORD_FIELDS and all(isinstance(k, str) and plain(v) for k, v in r.items())
                for r in value):
            raise wrong
        if len(value) > (rule.max_len or MAX_ITEMS):
            raise InvalidRequest(f"{name} has {len(value)} items; it must be {rule.describe()}.")
        return [dict(r) for r in value]
    if rule.kind == "dict":
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) and len(v) <= MAX_TEXT for k, v in value.items()):
            raise wrong
        if len(value) > (rule.max_len or MAX_ITEMS):
            raise InvalidRequest(f"{name} has {len(value)} fields; it must be {rule.describe()}.")
        return dict(value)
    return value


def _bound(value: float | None, rule: Rule) -> str:
    return str(int(value)) if rule.kind == "int" else f"{value:g}"


def random_seed() -> int:
    return secrets.randbelow(SEED_LIMIT)


def checked_seed(seed: int | None) -> int:
    """A seed in [0, 2**32): None or negative picks a random one."""
    if seed is None or int(seed) < 0:
        return random_seed()
    if int(seed) >= SEED_LIMIT:
        raise InvalidRequest(f"Seed must be below {SEED_LIMIT} (or -1 for random).")
    return int(seed)


def checked_count(count: int, limit: int = MAX_COUNT) -> int:
    count = int(count)
    if not 1 <= count <= limit:
        raise InvalidRequest(f"Batch size must be between 1 and {limit}, not {count}.")
    return count


def checked_steps(steps: int | None, default: int) -> int:
    """Denoising steps: None or 0 takes the model's default."""
    steps = int(steps or 0) or default
    if not 1 <= steps <= STEPS_MAX:
        raise InvalidRequest(f"Steps must be between 1 and {STEPS_MAX}, not {steps}.")
    return steps


def checked_guidance(guidance: float | None, default: float) -> float:
    """Guidance: None or negative takes the model's default."""
    if guidance is None or guidance < 0:
        return float(default)
    guidance = float(guidance)
    if not math.isfinite(guidance) or guidance > GUIDANCE_MAX:
        raise InvalidRequest(f"Guidance must be between 0 and {GUIDANCE_MAX:g} (or -1 for the model's default), not {guidance}.")
    return guidance


def checked_strength(strength: float | None, default: float) -> float:
    """Image-to-image strength in (0, 1]: how far to move away from the start image; None takes the model's default."""
    if strength is None:
        return float(default)
    strength = float(strength)
    if not 0.0 < strength <= 1.0:
        raise InvalidRequest(f"Strength must be between 0 and 1, not {strength}.")
    return strength
