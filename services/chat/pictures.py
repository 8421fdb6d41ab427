"""Pictures asked for in a chat: a scene composed from the conversation, made of the character with the face and
style it keeps everywhere else.

A figure-backed character's picture is Remix on the figure's canonical image with its style register, the figure
lent to the chat under the character's key (never named to a visitor who is not its owner, ../creation/lent.py); a
character without a figure is an edit of its main image by an edit model. Either way the run is Remix's, through
the one runner, at the price `quote` shows, and the prompt it used passes the prompt policy like any other."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from PIL import Image

from pipelines.types import StepCallback, Task

from ..accounts.identity import Account
from ..accounts.plans import Quote
from ..catalogue import Catalogue
from ..creation.characters import Characters
from ..creation.characters.lending import Lender
from ..creation.lent import Lent, LentFigure, key_of
from ..creation.remix import ReferenceImages
from ..creation.text import ImageOutput
from ..media.storage import OutputStore
from ..safety.policy import Surface
from .store import ChatError

ASKS = re.compile(
    r"\b(send|show|give|share|take|snap|draw|paint|make)\b[^.?!\n]{0,40}?\b(pictures?|pics?|photos?|photographs?|"
    r"images?|selfies?|snapshots?|portraits?)\b|\bselfie\b", re.I)
SCENE_MAX = 400  # characters of the composed scene
RATIO = "3:4"  # a portrait: the character in their scene


def wants_picture(text: str) -> bool:
    """Whether a message asks the character for a picture ("send me a picture of you at the beach", "selfie?")."""
    return bool(ASKS.search(text or ""))


def _first_sentences(text: str, limit: int) -> str:
    text = re.sub(r"\*([^*]+)\*", r"\1,", text or "")  # an action between asterisks is part of the scene
    text = re.sub(r"\s+", " ", re.sub(r"\([^)]*\)|\*", " ", text)).strip()
    out = ""
    for sentence in re.split(r"(?<=[.!?])\s+", text):
        if len(out) + len(sentence) + 1 > limit:
            break
        out = f"{out} {sentence}".strip()
    return out or text[:limit]


def compose_scene(name: str, profile: dict[str, Any], recent: list[tuple[str, str]], asked: str) -> str:
    """The offline composer: what the visitor asked to see (the request words dropped), else what the character's
    last line says is happening, with the scenario's first sentence; the character's name first."""
    wish = re.sub(r"\b(?:please|of yourself|yourself|of you)\b", " ", ASKS.sub(" ", asked or ""), flags=re.I).strip()
    while True:  # the filler the request words leave in front ("me a ... of you", "can you ...")
        shorter = re.sub(r"^\W*(?:me|us|a|an|of|can|could|would|will|you|now)\b\W*", "", wish, flags=re.I)
        if shorter == wish:
            break
        wish = shorter
    wish = re.sub(r"\s+", " ", wish).strip(" ,.?!")
    last = next((text for role, text in reversed(recent) if role == "assistant" and not text.startswith("(sends a picture")), "")
    scenario = re.split(r"(?<=[.!?])\s+", _first_sentences(profile.get("fields", {}).get("scenario", ""), 150))[0]
    parts = [name, wish if len(wish) >= 3 else _first_sentences(last, 200), scenario]
    return ", ".join(p for p in parts if p)[:SCENE_MAX]


class Pictures:
    def __init__(self, catalogue: Catalogue, characters: Characters, remix: ReferenceImages, store: OutputStore):
        self.catalogue = catalogue
        self.characters = characters
        self.remix = remix
        self.store = store

    def relative(self, path: Path) -> str:
        return self.store.relative(path)

    def _figure_of(self, account: Account, character_id: str) -> tuple[str, str] | None:
        """(figure id, its owner) of a character the visitor may open; None when it is not built on a live figure."""
        with self.characters.db.engine.connect() as conn:
            row = self.characters._readable(conn, account, character_id)
        return (row.figure_id, row.account_id) if row.figure_id else None

    def _edit_model(self) -> str:
        entries = self.catalogue.entries(Task.EDIT, local=True) or self.catalogue.entries(Task.EDIT)
        if not entries:
            raise ChatError("No edit model is installed here, so a character without a figure cannot send pictures.")
        return entries[0].id

    def quote(self, account: Account, character) -> Quote:
        """What one picture of this character costs (shown before the click)."""
        if self._figure_of(account, character.id):
            entry = self.characters._figure_model("")
            task = Task.REFERENCE if entry.face_preservation == "reference" else Task.TEXT_TO_IMAGE
            return self.catalogue.quote(entry.id, task, "1:1", "1K", 1)
        return self.catalogue.quote(self._edit_model(), Task.EDIT, "1:1", "1K", 1)

    def make(self, account: Account, character, recent: list[tuple[str, str]], asked: str, surface: Surface, *, seed: int,
             idempotency_key: str | None, on_step: StepCallback | None, record: dict[str, Any]) -> tuple[ImageOutput, str]:
        scene = compose_scene(character.name, character.profile, recent, asked)
        figure = self._figure_of(account, character.id)
        image_surface = Surface.IMAGE if surface is Surface.CHAT else Surface.CHARACTER
        if figure:
            figure_id, owner = figure
            try:
                canonical = self.characters.figures.reference(Lender(owner), figure_id, purpose="canonical")
            except Exception:  # noqa: BLE001 - the figure was deleted or lost its canonical take: said in the visitor's words
                raise ChatError(f"{character.name}'s face is not available for pictures right now.") from None
            key = key_of(character.id)
            lent = Lent({key: LentFigure(character.id, advanced=canonical, canonical=canonical)})
            output = self.remix.figure_remix(account, prompt=scene, model=self.characters._figure_model("").id, figure_id=key,
                                             lent=lent, aspect_ratio="1:1", seed=seed, keep_style=True,
                                             idempotency_key=idempotency_key, on_step=on_step, surface=image_surface)
            return output, scene
        if character.image is None:
            raise ChatError(f"{character.name} has no face to keep yet: no figure and no main image. Nothing was charged.")
        with Image.open(character.image) as opened:
            source = opened.convert("RGB")
        output = self.remix.edit_picture(account, source, instruction=f"Show this person: {scene}", model=self._edit_model(),
                                         context={"chat_picture": {"character_id": character.id, **record}}, seed=seed,
                                         idempotency_key=idempotency_key, on_step=on_step)
        return output, scene
