"""Rules for the parameters every request shares, each defined once: the seed range, batch sizes, steps, guidance,
image-to-image strength. Surfaces build their requests with these; the runner checks every stage with them again;
the UI takes its component limits from the same constants."""
from __future__ import annotations

import math
import secrets

from pipelines.registry import GUIDANCE_MAX, STEPS_MAX
from pipelines.types import SEED_LIMIT

from ..errors import InvalidRequest

MAX_COUNT = 8  # images per request (a Text-mode batch)
RANDOM_SEED = -1  # what the UI and the API send for "pick a random seed"


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
