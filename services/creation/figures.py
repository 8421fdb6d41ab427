"""Figures: Quick and Custom creation, takes, the pinned canonical reference, and the figure library.

A figure is saved from the takes of one or more generations; one take is canonical. The canonical image
(and its face embedding, when a face-analysis pack is configured) is the identity that Remix, edits, group
images and video reuse by default (`reference`).
"""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from pipelines.lora import load_lora_library
from pipelines.types import StepCallback

from ..errors import UserError
from ..accounts.db import Database, row_dict
from ..faces.engine import FaceEngine
from .style_lock import StyleLock, lock_for
from .figure_presets import FigurePresets
from .text import ImageOutput, TextImages, TextToImageParams
from ..accounts.identity import Account
from ..runs.params import MAX_TAKES
from ..safety.policy import Surface
from ..media.storage import OutputStore
from ..accounts.tables import figure_takes, figures, generation_files, generations

MAX_NAME = 60
CUSTOM_FIELDS = {"appearance": 1200, "outfit": 400}


class FigureError(UserError, ValueError):
    """A figure request that cannot be done as asked; the message says what to change."""


@dataclass(frozen=True)
class Takes:
    """The takes of one Generate click, before they are saved as a figure."""

    output: ImageOutput
    prompt: str
    negative_prompt: str
    spec: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.output.info(), prompt=self.prompt, negative_prompt=self.negative_prompt, spec=self.spec)


@dataclass
class Figure:
    id: str
    name: str
    kind: str
    spec: dict[str, Any]
    prompt: str
    negative_prompt: str
    style: str
    model: str
    settings: dict[str, Any]
    canonical_take: str | None  # the canonical take's public id
    takes: list[dict[str, Any]] = field(default_factory=list)
    has_embedding: bool = False
    embedding_model: str | None = None
    identity_note: str = ""
    created_at: float = 0.0

    @property
    def canonical(self) -> dict[str, Any] | None:
        return next((t for t in self.takes if t["id"] == self.canonical_take), None)

    @property
    def canonical_path(self) -> Path | None:
        take = self.canonical
        return Path(take["file"]) if take else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "spec": self.spec,
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "style": self.style,
            "model": self.model,
            "settings": self.settings,
            "canonical_take": self.canonical_take,
            "canonical_image": str(self.canonical_path) if self.canonical_path else None,
            "takes": self.takes,
            "identity": {"embedding": self.has_embedding, "model": self.embedding_model, "note": self.identity_note},
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class Reference:
    """What identity-preserving features use by default: the canonical image and its face embedding."""

    figure_id: str
    image: Path
    embedding: list[float] | None
    style: str | None = None  # the figure's style register (presets/figures.toml [styles]); the style lock applies it
    source: str = "canonical"  # "sheet" when `image` is the figure's picked Advanced reference
    loras: tuple[dict[str, Any], ...] = ()  # pinned LoRA library entries: {"id", "weight"}


class Figures:
    def __init__(self, db: Database, text: TextImages, presets: FigurePresets, store: OutputStore, faces: FaceEngine | None):
        self.db = db
        self.text = text
        self.presets = presets
        self.store = store
        self.faces = faces

    def default_model(self, style: str) -> str:
        """The model Quick and Custom start on for a style register: of the register's local models, the cheapest
        whose licence allows commercial use (declaration order breaks ties); the register's first when none does."""
        catalogue = self.text.catalogue
        register = self.presets.styles[style] if style in self.presets.styles else next(iter(self.presets.styles.values()))
        usable = []
        for order, model_id in enumerate(register.models):
            try:
                entry = catalogue.get(model_id)
            except Exception:  # noqa: BLE001 - a register may name a model this registry lacks
                continue
            if not entry.is_remote and not entry.licence.non_commercial:
                usable.append((catalogue.unit_price(entry, "text-to-image"), order, model_id))
        return min(usable)[2] if usable else register.models[0]

    # -- takes -----------------------------------------------------------------------------------------
    def quick_takes(
        self,
        account: Account,
        choices: dict[str, str],
        *,
        prompt: str | None = None,
        model: str | None = None,
        takes: int = 4,
        seed: int | None = None,
        aspect_ratio: str = "3:4",
        resolution: str = "1K",
        steps: int | None = None,
        guidance: float | None = None,
        idempotency_key: str | None = None,
        on_step: StepCallback | None = None,
    ) -> Takes:
        """Compose the prompt from picker choices (or use the edited prompt from the review step) and
        generate 1-4 takes on the style register's preferred model unless another is picked."""
        archetype = choices.get("archetype") or "custom"
        if archetype not in self.presets.archetypes:
            raise FigureError(f"archetype: {archetype!r} is not one of {list(self.presets.archetypes)}")
        full = {**self.presets.defaults_for(archetype), **{k: v for k, v in choices.items() if v}}
        try:
            composed = self.presets.compose(full)
        except ValueError as exc:
            raise FigureError(str(exc)) from exc
        text = (prompt or "").strip() or composed.prompt
        spec = {"choices": full, "composed": composed.prompt, "edited": text != composed.prompt}
        return self._takes(
            account, "quick", full["style"], text, composed.negative, model or self.default_model(full["style"]), spec,
            takes, seed, aspect_ratio, resolution, steps, guidance, idempotency_key, on_step,
        )

    def custom_takes(
        self,
        account: Account,
        *,
        appearance: str,
        outfit: str = "",
        style: str = "photoreal",
        negative_prompt: str = "",
        model: str | None = None,
        takes: int = 4,
        seed: int | None = None,
        aspect_ratio: str = "3:4",
        resolution: str = "1K",
        steps: int | None = None,
        guidance: float | None = None,
        idempotency_key: str | None = None,
        on_step: StepCallback | None = None,
    ) -> Takes:
        appearance, outfit = (appearance or "").strip(), (outfit or "").strip()
        if not appearance:
            raise FigureError("Describe the figure's appearance first (face, hair, eyes, build...).")
        for name, value in (("appearance", appearance), ("outfit", outfit)):
            if len(value) > CUSTOM_FIELDS[name]:
                raise FigureError(f"The {name} is {len(value)} characters; keep it to {CUSTOM_FIELDS[name]}.")
        if style not in self.presets.styles:
            raise FigureError(f"style: {style!r} is not one of {list(self.presets.styles)}")
        register = self.presets.styles[style]
        parts = ["portrait of an adult", appearance, f"wearing {outfit}" if outfit else "", register.positive]
        text = ", ".join(p for p in parts if p)
        negative = ", ".join(p for p in ((negative_prompt or "").strip(), register.negative) if p)
        spec = {"appearance": appearance, "outfit": outfit, "style": style, "negative_prompt": (negative_prompt or "").strip()}
        return self._takes(
            account, "custom", style, text, negative, model or self.default_model(style), spec,
            takes, seed, aspect_ratio, resolution, steps, guidance, idempotency_key, on_step,
        )

    def _takes(self, account, kind, style, prompt, negative, model, spec, takes, seed, aspect_ratio, resolution, steps, guidance, key, on_step) -> Takes:
        takes = int(takes)
        if not 1 <= takes <= MAX_TAKES:
            raise FigureError(f"Takes must be between 1 and {MAX_TAKES}, not {takes}.")
        params = TextToImageParams(
            prompt=prompt, model=model, negative_prompt=negative, aspect_ratio=aspect_ratio, resolution=resolution,
            count=takes, seed=seed, steps=steps, guidance=guidance,
        )
        context = {"figure": {"kind": kind, "style": style, **spec}}
        output = self.text.text_to_image(account, params, key, on_step, surface=Surface.FIGURE, context=context)
        return Takes(output, prompt, negative, {"kind": kind, "style": style, **spec})

    # -- saving ----------------------------------------------------------------------------------------
    def save(self, account: Account, name: str, request_ids: list[str], canonical_request: str, canonical_index: int) -> Figure:
        """Save takes as a figure; `request_ids` are the Generate clicks whose takes to keep (the last one's
        settings describe the figure); the canonical take is (canonical_request, canonical_index)."""
        name = (name or "").strip()
        if not name:
            raise FigureError("Give the figure a name before saving.")
        if len(name) > MAX_NAME:
            raise FigureError(f"The name is {len(name)} characters; keep it to {MAX_NAME}.")
        request_ids = list(dict.fromkeys([*request_ids, canonical_request]))
        with self.db.engine.connect() as conn:
            rows = {
                r.id: r
                for r in conn.execute(
                    sa.select(generations).where(generations.c.id.in_(request_ids), generations.c.account_id == account.id)
                )
            }
            missing = [r for r in request_ids if r not in rows or rows[r].status != "done" or "figure" not in (rows[r].request or {}).get("context", {})]
            if missing:
                raise FigureError(f"These are not finished figure takes of yours: {missing}. Generate takes first.")
            files = conn.execute(
                sa.select(generation_files).where(generation_files.c.generation_id.in_(request_ids)).order_by(generation_files.c.generation_id, generation_files.c.idx)
            ).all()
        by_request = {r: [f for f in files if f.generation_id == r] for r in request_ids}
        if not 0 <= int(canonical_index) < len(by_request[canonical_request]):
            raise FigureError(f"Pick the canonical take: that click has {len(by_request[canonical_request])} take(s).")
        main = rows[canonical_request]
        context = main.request["context"]["figure"]
        canonical_file = by_request[canonical_request][int(canonical_index)]
        embedding, embedding_model, note = self._embed(self.store.path(canonical_file.path))
        figure_id = secrets.token_hex(8)
        now = time.time()
        settings = {k: main.request.get(k) for k in ("aspect_ratio", "resolution", "steps", "guidance")}
        with self.db.begin() as conn:
            conn.execute(
                figures.insert().values(
                    id=figure_id, account_id=account.id, name=name, kind=context["kind"],
                    spec={k: v for k, v in context.items() if k not in ("kind",)}, prompt=main.request["prompt"],
                    negative_prompt=main.request.get("negative_prompt") or "", style=context["style"], model=main.model,
                    settings=settings, embedding=embedding, embedding_model=embedding_model, identity_note=note,
                    created_at=now, updated_at=now,
                )
            )
            canonical_id = None
            for request_id in request_ids:
                for f in by_request[request_id]:
                    take_id = conn.execute(
                        figure_takes.insert().values(
                            public_id=secrets.token_hex(8), figure_id=figure_id, generation_id=request_id, idx=f.idx, path=f.path, seed=f.seed, created_at=now
                        )
                    ).inserted_primary_key[0]
                    if request_id == canonical_request and f.idx == int(canonical_index):
                        canonical_id = take_id
            conn.execute(sa.update(figures).where(figures.c.id == figure_id).values(canonical_take=canonical_id))
        return self.get(account, figure_id)

    def _embed(self, image_path: Path) -> tuple[list[float] | None, str | None, str]:
        if self.faces is None:
            return None, None, "Identity features are off: no face engine is installed (requirements.txt brings dlib; PLAYGROUND_FACE_PACK adds ArcFace)."
        embedding = self.faces.embed_path(image_path)
        if embedding is None:
            return None, self.faces.name, "No face found in the canonical image: identity score and face adapters will not use it."
        return embedding, self.faces.name, ""

    # -- library ---------------------------------------------------------------------------------------
    def _load(self, conn: sa.Connection, row) -> Figure:
        takes = [
            {"id": t.public_id, "request_id": t.generation_id, "index": t.idx, "seed": t.seed, "file": str(self.store.path(t.path)),
             "_row": t.id}
            for t in conn.execute(sa.select(figure_takes).where(figure_takes.c.figure_id == row.id).order_by(figure_takes.c.id))
        ]
        canonical = next((t["id"] for t in takes if t["_row"] == row.canonical_take), None)
        for t in takes:
            del t["_row"]
        return Figure(
            row.id, row.name, row.kind, dict(row.spec), row.prompt, row.negative_prompt, row.style, row.model,
            dict(row.settings), canonical, takes, row.embedding is not None, row.embedding_model,
            row.identity_note, row.created_at,
        )

    def _row(self, conn: sa.Connection, account: Account, figure_id: str):
        row = conn.execute(
            sa.select(figures).where(figures.c.id == str(figure_id), figures.c.account_id == account.id, figures.c.deleted_at.is_(None))
        ).first()
        if row is None:
            raise FigureError(f"No figure {figure_id!r} among yours.")
        return row

    def get(self, account: Account, figure_id: str) -> Figure:
        with self.db.engine.connect() as conn:
            return self._load(conn, self._row(conn, account, figure_id))

    def list(self, account: Account, search: str = "") -> list[Figure]:
        query = sa.select(figures).where(figures.c.account_id == account.id, figures.c.deleted_at.is_(None))
        search = (search or "").strip()
        if search:
            like = f"%{search.lower()}%"
            query = query.where(sa.or_(sa.func.lower(figures.c.name).like(like), sa.func.lower(figures.c.prompt).like(like)))
        with self.db.engine.connect() as conn:
            return [self._load(conn, r) for r in conn.execute(query.order_by(figures.c.created_at.desc()))]

    def set_canonical(self, account: Account, figure_id: str, take_id: str) -> Figure:
        """Make another take canonical, by the take's public id (see `Figure.takes`)."""
        with self.db.engine.connect() as conn:
            self._row(conn, account, figure_id)
            take = conn.execute(
                sa.select(figure_takes).where(figure_takes.c.public_id == str(take_id), figure_takes.c.figure_id == figure_id)
            ).first()
        if take is None:
            raise FigureError(f"Take {take_id} is not one of this figure's takes.")
        embedding, embedding_model, note = self._embed(self.store.path(take.path))
        with self.db.begin() as conn:
            conn.execute(
                sa.update(figures)
                .where(figures.c.id == figure_id)
                .values(canonical_take=take.id, embedding=embedding, embedding_model=embedding_model, identity_note=note, updated_at=time.time())
            )
        return self.get(account, figure_id)

    def duplicate(self, account: Account, figure_id: str, name: str | None = None) -> Figure:
        with self.db.begin() as conn:
            row = row_dict(self._row(conn, account, figure_id))
            old_canonical = row["canonical_take"]
            new_id = secrets.token_hex(8)
            now = time.time()
            base_name = (name or "").strip() or f"{row['name']} (copy)"
            row.update(id=new_id, name=base_name[:MAX_NAME], created_at=now, updated_at=now, canonical_take=None)
            conn.execute(figures.insert().values(**row))
            canonical = None
            for t in conn.execute(sa.select(figure_takes).where(figure_takes.c.figure_id == figure_id).order_by(figure_takes.c.id)).all():
                new_take = conn.execute(
                    figure_takes.insert().values(public_id=secrets.token_hex(8), figure_id=new_id, generation_id=t.generation_id, idx=t.idx,
                                                 path=t.path, seed=t.seed, created_at=now)
                ).inserted_primary_key[0]
                if t.id == old_canonical:
                    canonical = new_take
            conn.execute(sa.update(figures).where(figures.c.id == new_id).values(canonical_take=canonical))
        return self.get(account, new_id)

    def delete(self, account: Account, figure_id: str, confirm: bool) -> None:
        if not confirm:
            raise FigureError("Deleting a figure needs confirmation (tick “Yes, delete”).")
        with self.db.begin() as conn:
            self._row(conn, account, figure_id)
            conn.execute(sa.update(figures).where(figures.c.id == figure_id).values(deleted_at=time.time()))

    def reference(self, account: Account, figure_id: str, purpose: str = "canonical") -> Reference:
        """The image and embedding identity-preserving features use: the canonical image, or for Advanced, Group and
        video (`purpose="advanced"`) the figure's picked reference sheet when it has one."""
        figure = self.get(account, figure_id)
        if figure.canonical_path is None:
            raise FigureError("This figure has no canonical take; pick one in All Figures.")
        with self.db.engine.connect() as conn:
            row = conn.execute(sa.select(figures.c.embedding, figures.c.reference_sheet).where(figures.c.id == figure.id)).first()
        embedding, sheet = row.embedding, row.reference_sheet
        loras = tuple(figure.settings.get("loras") or ())
        if purpose == "advanced" and sheet:
            return Reference(figure.id, self.store.path(sheet["path"]), embedding, figure.style, source="sheet", loras=loras)
        return Reference(figure.id, figure.canonical_path, embedding, figure.style, loras=loras)

    def pin_loras(self, account: Account, figure_id: str, loras: list[dict[str, Any]]) -> Figure:
        """Pin LoRA library entries (presets/loras.toml) to a figure, each with a weight; [] unpins them all. Remix and
        Advanced apply them on models of the LoRA's family."""
        library = load_lora_library()
        if len(loras) > library.max_per_figure:
            raise FigureError(f"A figure pins up to {library.max_per_figure} LoRAs, not {len(loras)}.")
        pinned = []
        for item in loras:
            lora_id = str((item or {}).get("id", ""))
            try:
                spec = library.get(lora_id)
            except KeyError:
                raise FigureError(f"LoRA {lora_id!r} is not in the library; pick one of {', '.join(e.id for e in library.loras)}.") from None
            weight = float(item.get("weight", spec.weight))
            if not 0.0 <= weight <= 2.0:
                raise FigureError(f"A LoRA weight is between 0 and 2, not {weight}.")
            pinned.append({"id": spec.id, "weight": weight})
        if len({p["id"] for p in pinned}) != len(pinned):
            raise FigureError("Pin each LoRA once.")
        with self.db.begin() as conn:
            row = self._row(conn, account, figure_id)
            settings = dict(row.settings or {}, loras=pinned)
            conn.execute(sa.update(figures).where(figures.c.id == figure_id).values(settings=settings, updated_at=time.time()))
        return self.get(account, figure_id)

    def style_lock(self, ref: Reference, keep_style: bool = True) -> StyleLock | None:
        """The figure's style register, applied unless the visitor overrides it (None: no register)."""
        return lock_for(ref.style, self.presets.styles, keep_style)
