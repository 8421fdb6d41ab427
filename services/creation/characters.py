"""Characters: a profile (Character Card fields with limits) built on a figure, a gallery of the user's images,
and an export as a Character Card V2 or V3 PNG.

The card image is the figure's canonical image unless the user picks a gallery image. Profile text is checked
by the prompt policy's vocabulary rules on the SFW character surface (characters are adults; no adult content),
and every check runs before anything is written.
"""
from __future__ import annotations

import base64
import io
import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from PIL import Image, PngImagePlugin
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..errors import UserError
from ..accounts.db import Database
from .figures import FigureError, Figures
from ..accounts.identity import Account
from ..safety.policy import PromptPolicy, Surface
from ..presets_io import PRESETS_DIR, load_validated
from ..media.storage import OutputStore
from ..accounts.tables import characters, generation_files, generations

DEFAULT_FILE = PRESETS_DIR / "characters.toml"
CARD_FIELDS = ("name", "description", "personality", "scenario", "first_mes", "mes_example", "system_prompt",
               "creator_notes", "creator")
# Output-check labels an image may carry and still be a character's (SFW) card image.
CARD_IMAGE_SAFETY = {"safe", "unchecked"}


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


class CharacterLimits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    fields: tuple[FieldSpec, ...]
    max_tags: int = Field(ge=0, le=100)
    max_tag_length: int = Field(ge=1, le=100)
    max_alternate_greetings: int = Field(ge=0, le=50)
    max_gallery: int = Field(ge=1, le=200)

    @model_validator(mode="after")
    def _check(self) -> "CharacterLimits":
        keys = [f.key for f in self.fields]
        if len(set(keys)) != len(keys):
            raise ValueError(f"fields: a key appears twice ({keys})")
        if "name" not in keys:
            raise ValueError("fields: 'name' is required (every card has a name)")
        return self

    def spec(self, key: str) -> FieldSpec:
        return next(f for f in self.fields if f.key == key)


def load_character_limits(path: Path = DEFAULT_FILE) -> CharacterLimits:
    return load_validated(path, CharacterLimits, CharactersFileError)


@dataclass
class Character:
    id: str
    figure_id: str
    name: str
    profile: dict[str, Any]
    gallery: list[dict[str, Any]]
    main: int | None
    image: Path  # the card image
    created_at: float = 0.0
    updated_at: float = 0.0
    figure_name: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "figure_id": self.figure_id, "figure_name": self.figure_name, "name": self.name,
            "profile": self.profile, "gallery": self.gallery, "main": self.main, "image": str(self.image),
            "created_at": self.created_at, "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class Profile:
    """What a user writes: the card fields, tags and alternate greetings."""

    fields: dict[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    alternate_greetings: tuple[str, ...] = ()


class Characters:
    def __init__(self, db: Database, figures: Figures, store: OutputStore, policy: PromptPolicy, limits: CharacterLimits):
        self.db = db
        self.figures = figures
        self.store = store
        self.policy = policy
        self.limits = limits

    # -- validation ------------------------------------------------------------------------------------
    def clean(self, account: Account, profile: Profile) -> dict[str, Any]:
        """The stored profile, or CharacterError naming the field and the limit."""
        fields: dict[str, str] = {}
        for key, value in profile.fields.items():
            if key not in {f.key for f in self.limits.fields}:
                raise CharacterError(f"Unknown profile field {key!r}.")
            fields[key] = (value or "").strip()
        for spec in self.limits.fields:
            value = fields.get(spec.key, "")
            if spec.required and not value:
                raise CharacterError(f"{spec.label.split(' (')[0]} is required.")
            if len(value) > spec.max:
                raise CharacterError(f"{spec.label.split(' (')[0]} is limited to {spec.max:,} characters; it has {len(value):,}.")
            fields.setdefault(spec.key, "")
        tags = [t.strip() for t in profile.tags if t and t.strip()]
        tags = list(dict.fromkeys(tags))
        if len(tags) > self.limits.max_tags:
            raise CharacterError(f"At most {self.limits.max_tags} tags; there are {len(tags)}.")
        long_tags = [t for t in tags if len(t) > self.limits.max_tag_length]
        if long_tags:
            raise CharacterError(f"Tags are limited to {self.limits.max_tag_length} characters: “{long_tags[0]}” is longer.")
        greetings = [g.strip() for g in profile.alternate_greetings if g and g.strip()]
        if len(greetings) > self.limits.max_alternate_greetings:
            raise CharacterError(f"At most {self.limits.max_alternate_greetings} alternate greetings; there are {len(greetings)}.")
        first_limit = self.limits.spec("first_mes").max if "first_mes" in fields else 4000
        for g in greetings:
            if len(g) > first_limit:
                raise CharacterError(f"Alternate greetings are limited to {first_limit:,} characters each.")
        # Characters are SFW and adults: the policy's vocabulary rules on every piece of text.
        for text in [*fields.values(), *tags, *greetings]:
            if text:
                self.policy.check_text(text, account, Surface.CHARACTER)
        return {"fields": fields, "tags": tags, "alternate_greetings": greetings}

    # -- reading ---------------------------------------------------------------------------------------
    def _row(self, conn: sa.Connection, account: Account, character_id: str):
        row = conn.execute(
            sa.select(characters).where(
                characters.c.id == character_id, characters.c.account_id == account.id, characters.c.deleted_at.is_(None)
            )
        ).first()
        if row is None:
            raise CharacterError(f"No character {character_id!r} among yours.")
        return row

    def _character(self, account: Account, row) -> Character:
        gallery = [dict(g, path=str(self.store.path(g["path"]))) for g in (row.gallery or [])]
        try:
            figure = self.figures.get(account, row.figure_id)
            figure_name, canonical = figure.name, figure.canonical_path
        except FigureError:  # the figure was deleted after: the character keeps its own images
            figure_name, canonical = "(deleted figure)", None
        if row.main is not None and 0 <= row.main < len(gallery):
            image = Path(gallery[row.main]["path"])
        elif canonical is not None:
            image = canonical
        else:
            image = Path(gallery[0]["path"]) if gallery else Path()
        return Character(row.id, row.figure_id, row.name, dict(row.profile), gallery, row.main, image,
                         row.created_at, row.updated_at, figure_name)

    def get(self, account: Account, character_id: str) -> Character:
        with self.db.engine.connect() as conn:
            row = self._row(conn, account, character_id)
        return self._character(account, row)

    def list(self, account: Account) -> list[Character]:
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                sa.select(characters)
                .where(characters.c.account_id == account.id, characters.c.deleted_at.is_(None))
                .order_by(characters.c.updated_at.desc())
            ).all()
        return [self._character(account, r) for r in rows]

    # -- writing ---------------------------------------------------------------------------------------
    def create(self, account: Account, figure_id: str, profile: Profile) -> Character:
        figure = self.figures.get(account, figure_id)  # FigureError if it is not the user's
        if figure.canonical_path is None:
            raise CharacterError(f"Figure “{figure.name}” has no canonical image yet; pick one in All Figures first.")
        cleaned = self.clean(account, profile)
        now = time.time()
        character_id = secrets.token_hex(8)
        with self.db.begin() as conn:
            conn.execute(characters.insert().values(
                id=character_id, account_id=account.id, figure_id=figure.id, name=cleaned["fields"]["name"],
                profile=cleaned, gallery=[], main=None, created_at=now, updated_at=now,
            ))
        return self.get(account, character_id)

    def update(self, account: Account, character_id: str, profile: Profile) -> Character:
        cleaned = self.clean(account, profile)
        with self.db.begin() as conn:
            self._row(conn, account, character_id)
            conn.execute(characters.update().where(characters.c.id == character_id).values(
                name=cleaned["fields"]["name"], profile=cleaned, updated_at=time.time(),
            ))
        return self.get(account, character_id)

    def delete(self, account: Account, character_id: str, confirm: bool) -> None:
        if not confirm:
            raise CharacterError("Tick “yes, delete it” to delete a character.")
        with self.db.begin() as conn:
            self._row(conn, account, character_id)
            conn.execute(characters.update().where(characters.c.id == character_id).values(deleted_at=time.time()))

    def _image_file(self, conn: sa.Connection, account: Account, request_id: str, index: int):
        row = conn.execute(
            sa.select(generation_files.c.path, generation_files.c.media, generation_files.c.safety)
            .join(generations, generations.c.id == generation_files.c.generation_id)
            .where(generations.c.id == request_id, generations.c.account_id == account.id,
                   generations.c.status == "done", generation_files.c.idx == int(index))
        ).first()
        if row is None or row.media != "image":
            raise CharacterError("That image is not in your history.")
        return row

    def add_image(self, account: Account, character_id: str, request_id: str, index: int) -> Character:
        """Add one of the user's generated images to the character's gallery."""
        with self.db.begin() as conn:
            row = self._row(conn, account, character_id)
            image = self._image_file(conn, account, request_id, index)
            gallery = list(row.gallery or [])
            if any(g["request_id"] == request_id and g["index"] == int(index) for g in gallery):
                raise CharacterError("That image is already in the gallery.")
            if len(gallery) >= self.limits.max_gallery:
                raise CharacterError(f"A gallery holds at most {self.limits.max_gallery} images; remove one first.")
            gallery.append({"request_id": request_id, "index": int(index), "path": image.path, "safety": image.safety})
            conn.execute(characters.update().where(characters.c.id == character_id).values(gallery=gallery, updated_at=time.time()))
        return self.get(account, character_id)

    def remove_image(self, account: Account, character_id: str, position: int) -> Character:
        with self.db.begin() as conn:
            row = self._row(conn, account, character_id)
            gallery = list(row.gallery or [])
            if not 0 <= int(position) < len(gallery):
                raise CharacterError(f"There is no image {int(position) + 1} in the gallery.")
            gallery.pop(int(position))
            main = row.main
            if main is not None:
                main = None if main == int(position) else (main - 1 if main > int(position) else main)
            conn.execute(characters.update().where(characters.c.id == character_id).values(
                gallery=gallery, main=main, updated_at=time.time()))
        return self.get(account, character_id)

    def set_main(self, account: Account, character_id: str, position: int | None) -> Character:
        """The card image: a gallery position, or None for the figure's canonical image. It must be SFW."""
        with self.db.begin() as conn:
            row = self._row(conn, account, character_id)
            gallery = list(row.gallery or [])
            if position is not None:
                if not 0 <= int(position) < len(gallery):
                    raise CharacterError(f"There is no image {int(position) + 1} in the gallery.")
                safety = gallery[int(position)].get("safety", "unchecked")
                if safety not in CARD_IMAGE_SAFETY:
                    raise CharacterError(
                        f"The card image must be SFW, and the output check marked that image “{safety}”; pick another."
                    )
            conn.execute(characters.update().where(characters.c.id == character_id).values(
                main=None if position is None else int(position), updated_at=time.time()))
        return self.get(account, character_id)

    # -- cards -----------------------------------------------------------------------------------------
    def card_data(self, character: Character, version: str) -> dict[str, Any]:
        p = character.profile
        f = p["fields"]
        data = {
            "name": f.get("name", character.name),
            "description": f.get("description", ""),
            "personality": f.get("personality", ""),
            "scenario": f.get("scenario", ""),
            "first_mes": f.get("first_mes", ""),
            "mes_example": f.get("mes_example", ""),
            "creator_notes": f.get("creator_notes", ""),
            "system_prompt": f.get("system_prompt", ""),
            "post_history_instructions": "",
            "alternate_greetings": list(p.get("alternate_greetings", [])),
            "tags": list(p.get("tags", [])),
            "creator": f.get("creator", ""),
            "character_version": time.strftime("%Y-%m-%d", time.gmtime(character.updated_at)),
            "extensions": {"character_playground": {"figure_id": character.figure_id, "character_id": character.id}},
        }
        if version == "v2":
            return {"spec": "chara_card_v2", "spec_version": "2.0", "data": data}
        data.update(
            assets=[{"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"}],
            nickname="",
            group_only_greetings=[],
            creation_date=int(character.created_at),
            modification_date=int(character.updated_at),
        )
        return {"spec": "chara_card_v3", "spec_version": "3.0", "data": data}

    def export_card(self, account: Account, character_id: str, version: str = "v3") -> Path:
        """A PNG of the card image carrying the card: V2 in `chara`; V3 in `ccv3` plus a V2 `chara` for older readers."""
        if version not in ("v2", "v3"):
            raise CharacterError(f"Card version must be v2 or v3, not {version!r}.")
        character = self.get(account, character_id)
        if not character.image or not character.image.is_file():
            raise CharacterError("This character has no card image; add one to its gallery.")
        info = PngImagePlugin.PngInfo()
        info.add_text("chara", _b64(self.card_data(character, "v2")))
        if version == "v3":
            info.add_text("ccv3", _b64(self.card_data(character, "v3")))
        with Image.open(character.image) as source:
            image = source.convert("RGB")  # the generation's own text chunks are not carried over
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", pnginfo=info)
        path = self.store.put(buffer.getvalue(), ".png")
        # A readable download name, in a folder named by the content (a changed card never reuses a stale file).
        named = self.store.root / "cards" / path.stem[:16] / f"{_slug(character.name)}-{version}.png"
        if not named.exists():
            named.parent.mkdir(parents=True, exist_ok=True)
            named.write_bytes(path.read_bytes())
        return named


def _b64(card: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(card, ensure_ascii=False).encode("utf-8")).decode("ascii")


def _slug(name: str) -> str:
    slug = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    return "-".join(part for part in slug.split("-") if part)[:40] or "character"


def read_card(path_or_bytes) -> dict[str, dict[str, Any]]:
    """The cards a PNG carries, by chunk: {"chara": V2 card, "ccv3": V3 card}."""
    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    with Image.open(source, formats=["PNG"]) as image:
        text = dict(getattr(image, "text", {}) or {})
    return {k: json.loads(base64.b64decode(text[k]).decode("utf-8")) for k in ("chara", "ccv3") if k in text}
