"""Style lock: a figure's style register (its prompt fragments and negative prompt, presets/figures.toml [styles])
applied by default to every later generation of that figure, so its images never drift between registers. Each
surface says how: a scene prompt gets the fragments appended, an instruction (Edit) or a motion prompt (video)
gets "keep the ... style" with them. Overriding is a visible choice; the output's metadata records which."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .figure_presets import StyleRegister


@dataclass(frozen=True)
class StyleLock:
    style: str
    register: StyleRegister
    locked: bool  # False: the visitor chose to override the figure's style

    def prompt(self, text: str) -> str:
        """A scene prompt carrying the register's fragments (once)."""
        text = (text or "").strip()
        if not self.locked or self.register.positive.lower() in text.lower():
            return text
        return f"{text}, {self.register.positive}" if text else self.register.positive

    def instruction(self, text: str) -> str:
        """An edit instruction or a motion prompt asked to keep the register."""
        text = (text or "").strip()
        if not self.locked:
            return text
        return f"{text}; keep the {self.register.label.lower()} style: {self.register.positive}"

    def negative(self, text: str) -> str:
        text = (text or "").strip()
        if not self.locked or not self.register.negative or self.register.negative in text:
            return text
        return ", ".join(p for p in (text, self.register.negative) if p)

    def record(self) -> dict[str, Any]:
        """What the output's metadata says about the register used."""
        out: dict[str, Any] = {"style": self.style, "label": self.register.label, "locked": self.locked}
        if self.locked:
            out.update(fragments=self.register.positive, negative=self.register.negative)
        return out


def lock_for(style: str | None, styles: dict[str, StyleRegister], keep_style: bool) -> StyleLock | None:
    """The figure's lock, or None when the figure has no register (e.g. a face photo instead of a figure)."""
    if not style or style not in styles:
        return None
    return StyleLock(style, styles[style], bool(keep_style))
