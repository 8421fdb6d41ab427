"""Where a character's pictures come from, and which copy of a picture a viewer gets.

The main image (avatar) and the optional cover (shown in the catalogue; the main image stands in when there is none)
come from an upload (upload hygiene, then the output check), a generation (paid through the one runner, on the SFW
character surface), the figure's canonical image, or a gallery image. A figure-backed character's generated pictures
keep the figure's face and style: they take Remix's path on the figure's canonical image with its style register
locked, and the output's metadata records both (`reference`, `style_register`), as Remix does.

The figure stays private: a generation's metadata names it (figure ids, the prompt: a PNG's text chunks, an MP4's
tags), so anyone but the owner and QA sessions gets a copy of a stored file without them (`_shown`), made once.

A mixin of `Characters` (service.py): it uses that class's stores, limits and surfaces."""
from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from PIL import Image

from pipelines.types import StepCallback, Task
from ...accounts.identity import Account
from ...accounts.plans import Quote
from ...accounts.tables import generation_files, generations
from ...media.mp4 import bare_mp4
from ...media.png import encode_png
from ...safety.output import check_all
from ...safety.policy import Surface
from ...safety.uploads import load_image
from ..figures import FigureError
from ..text import TextToImageParams
from .profile import CharacterError

SHOWN_INDEX = "shown"  # outputs/shown/<digest of a stored name>: the name of its copy without metadata
RATIOS = {"main": "3:4", "cover": "16:9"}
WHAT = {"main": "main image", "cover": "cover"}


@dataclass(frozen=True)
class AvatarChoice:
    """Where a new main image comes from: the figure's canonical image, an upload, or a generation (paid)."""

    source: str = ""  # "": the figure's image if there is a figure, else the upload if given, else generate | figure | upload | generate
    upload: str | bytes | None = None
    prompt: str = ""  # generate: "" composes one from the profile
    model: str = ""
    seed: int | None = None


@dataclass(frozen=True)
class CoverChoice:
    """The optional cover image, shown in the catalogue: an upload or a generation (paid), with the main image's rules."""

    source: str = ""  # "": none on create, unchanged on update | upload | generate | none (remove it)
    upload: str | bytes | None = None
    prompt: str = ""  # generate: "" composes a scene from the profile
    model: str = ""
    seed: int | None = None


class Avatars:
    # -- sources -------------------------------------------------------------------------------------------
    def _avatar_from_upload(self, source: str | bytes, kind: str = "main") -> dict[str, Any]:
        """Upload hygiene, then the output check; a flagged image is refused, an unchecked one is labelled."""
        picture = load_image(source, self.uploads).convert("RGB")
        verdict = check_all(self.safety, [picture])[0]
        if verdict.flagged:
            raise CharacterError(f"The {WHAT[kind]} must be SFW, and the output check flagged this one ({verdict.reason}); upload another.")
        path = self.store.put(encode_png(picture), ".png")
        return {"source": "upload", "path": self.store.relative(path), "safety": verdict.label}

    def _file(self, conn: sa.Connection, account_id: str, generation_id: str, index: int):
        """One file of one of the account's finished generations, or None."""
        return conn.execute(
            sa.select(generation_files.c.path, generation_files.c.media, generation_files.c.safety, generation_files.c.poster,
                      generations.c.task)
            .join(generations, generations.c.id == generation_files.c.generation_id)
            .where(generations.c.id == generation_id, generations.c.account_id == account_id,
                   generations.c.status == "done", generation_files.c.idx == int(index))
        ).first()

    def _avatar_from_generation(self, conn: sa.Connection, account: Account, generation_id: str, index: int, source: str,
                                kind: str = "main") -> dict[str, Any]:
        row = self._file(conn, account.id, generation_id, index)
        if row is None or row.media != "image":
            raise CharacterError("That image is not among your generated images.")
        if row.safety == "flagged":
            raise CharacterError(f"The {WHAT[kind]} must be SFW, and the output check flagged that image; pick another.")
        return {"source": source, "path": row.path, "safety": row.safety, "generation_id": generation_id, "idx": int(index)}

    def _avatar_from_figure(self, conn: sa.Connection, account: Account, figure_id: str) -> dict[str, Any]:
        figure = self.figures.get(account, figure_id)
        take = figure.canonical
        if take is None:
            raise CharacterError(f"Figure “{figure.name}” has no canonical image yet; pick one in All Figures first.")
        return self._avatar_from_generation(conn, account, take["request_id"], take["index"], "figure")

    def _cover_from(self, account: Account, choice: CoverChoice) -> dict[str, Any] | None:
        """An uploaded cover (checked now, before anything is paid); None for none or a generation (made later)."""
        if choice.source not in ("", "none", "upload", "generate"):
            raise CharacterError(f"The cover comes from upload or generate (or none), not {choice.source!r}.")
        if choice.source != "upload":
            return None
        if not choice.upload:
            raise CharacterError("Upload the cover image (PNG, JPEG or WEBP).")
        return self._avatar_from_upload(choice.upload, "cover")

    # -- generation ----------------------------------------------------------------------------------------
    def compose_avatar_prompt(self, cleaned: dict[str, Any]) -> str:
        """A main-image prompt from the profile when the user gives none: who they are, as a portrait."""
        f = cleaned["fields"]
        described = (f.get("description") or "").strip().split("\n")[0].split(". ")[0]  # the backstory's first sentence
        parts = [f"portrait of {f['name']}", cleaned["intro"], described, f.get("personality", ""), ", ".join(cleaned["tags"])]
        prompt = ". ".join(p.strip().rstrip(".") for p in parts if p and p.strip())
        return (prompt + ". Head and shoulders, soft light, detailed face.")[: self.limits.avatar_prompt_max]

    def compose_cover_prompt(self, cleaned: dict[str, Any]) -> str:
        """A cover prompt from the profile: the character in their scenario, wide."""
        f = cleaned["fields"]
        scene = (f.get("scenario") or "").strip().split("\n")[0] or cleaned["intro"]
        parts = [f"{f['name']} in their world", scene, ", ".join(cleaned["tags"])]
        prompt = ". ".join(p.strip().rstrip(".") for p in parts if p and p.strip())
        return (prompt + ". Wide establishing shot, cinematic light.")[: self.limits.avatar_prompt_max]

    def figure_models(self) -> list:
        """The models a figure-backed character's pictures are made with: those that keep the face, reference
        models first (they need no face pack)."""
        models = self.remix.remix_models()
        return sorted(models, key=lambda e: e.face_preservation != "reference")

    def _figure_model(self, model: str):
        offered = self.figure_models()
        if not model:
            return offered[0]
        for entry in offered:
            if entry.id == model:
                return entry
        raise CharacterError(f"A figure-backed character's pictures keep the figure's face: pick a model that keeps it "
                             f"({', '.join(e.id for e in offered)}), not {model!r}.")

    def _generate_picture(self, account: Account, cleaned: dict[str, Any], choice: AvatarChoice | CoverChoice,
                          figure_id: str | None, kind: str, idempotency_key: str | None,
                          on_step: StepCallback | None) -> dict[str, Any]:
        """A paid generation of the main image (kind "main") or the cover. On a figure it goes through the figure's
        canonical image and its locked style register (Remix's path), and records both."""
        compose = self.compose_avatar_prompt if kind == "main" else self.compose_cover_prompt
        prompt = (choice.prompt or "").strip() or compose(cleaned)
        if len(prompt) > self.limits.avatar_prompt_max:
            raise CharacterError(f"The {WHAT[kind]} prompt is limited to {self.limits.avatar_prompt_max:,} characters; it has {len(prompt):,}.")
        if figure_id:
            try:
                self.figures.get(account, figure_id)
            except FigureError:  # the figure was deleted: nothing left to keep (as an edit of its images)
                figure_id = None
        if figure_id:
            entry = self._figure_model(choice.model)
            try:
                output = self.remix.figure_remix(account, prompt=prompt, model=entry.id, figure_id=figure_id,
                                                 aspect_ratio=RATIOS[kind], seed=choice.seed, keep_style=True,
                                                 idempotency_key=idempotency_key, on_step=on_step, surface=Surface.CHARACTER)
            except FigureError as exc:
                raise CharacterError(str(exc)) from None
        else:
            params = TextToImageParams(prompt=prompt, model=choice.model or self.default_avatar_model(), aspect_ratio=RATIOS[kind],
                                       seed=choice.seed)
            output = self.text.text_to_image(account, params, idempotency_key, on_step, surface=Surface.CHARACTER,
                                             context={f"character_{'main_image' if kind == 'main' else 'cover'}": True})
        with self.db.engine.connect() as conn:
            chosen = self._avatar_from_generation(conn, account, output.request_id, 0, "generated", kind)
        if figure_id:  # what kept the face and the style (the output's metadata says the same)
            chosen.update(reference=output.parameters.get("reference", "canonical"),
                          style_register=output.parameters.get("style_register"))
        return chosen

    def default_avatar_model(self) -> str:
        return self.text.catalogue.entries(Task.TEXT_TO_IMAGE, local=True)[0].id

    def quote_avatar(self, model: str = "", figure_backed: bool = False, kind: str = "main") -> Quote:
        """What generating a main image (or a cover) costs (shown before the click); on a figure, Remix's price."""
        if figure_backed:
            entry = self._figure_model(model)
            task = Task.REFERENCE if entry.face_preservation == "reference" else Task.TEXT_TO_IMAGE
            return self.text.catalogue.quote(entry.id, task, RATIOS[kind], "1K", 1)
        return self.text.catalogue.quote(model or self.default_avatar_model(), Task.TEXT_TO_IMAGE, RATIOS[kind], "1K", 1)

    # -- what others see -----------------------------------------------------------------------------------
    def _shown(self, relative: str | None, insider: bool) -> Path | None:
        """The file a viewer gets: the stored one for the owner and QA sessions (`insider`); for anyone else, a copy
        without the generation's settings (a PNG's text chunks, an MP4's tags: they name the figure and the prompt),
        made once and stored like any output."""
        if not relative:
            return None
        source = self.store.path(relative)
        suffix = source.suffix.lower()
        if insider or suffix not in (".png", ".mp4") or not source.is_file():
            return source
        index = self.store.root / SHOWN_INDEX / hashlib.sha256(relative.encode("utf-8")).hexdigest()
        try:
            known = self.store.path(index.read_text(encoding="ascii").strip())
            if known.is_file():
                return known
        except (OSError, ValueError):
            pass
        if suffix == ".png":
            with Image.open(source) as opened:
                data = encode_png(opened)
        else:
            try:
                data = bare_mp4(source.read_bytes())
            except ValueError:  # FFmpeg cannot remux it: it was stored as it came, without settings tags
                return source
        bare = self.store.put(data, suffix)
        index.parent.mkdir(parents=True, exist_ok=True)
        fd, partial = tempfile.mkstemp(dir=index.parent, suffix=".part")
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(self.store.relative(bare))
        os.replace(partial, index)
        return bare
