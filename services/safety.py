"""The safety step of every request: a checker gives each output a verdict before anything is stored.

This module defines the interface the request flow calls. The default checker records outputs as
"unchecked"; the image classifier and prompt policy plug in here (issue: Safety and input hygiene).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from PIL import Image


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    label: str  # unchecked | safe | blocked
    reason: str = ""


class SafetyChecker(Protocol):
    name: str

    def check_image(self, image: Image.Image) -> Verdict: ...


class Unchecked:
    """No classifier configured: every output passes and is recorded as unchecked."""

    name = "none"

    def check_image(self, image: Image.Image) -> Verdict:
        return Verdict(True, "unchecked")


class SafetyBlocked(Exception):
    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(f"The result was blocked by the safety check ({reason}). Nothing was charged; change the prompt and try again.")
