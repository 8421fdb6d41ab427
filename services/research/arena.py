"""Arenas: blind pairwise battles and append-only votes, rated with Bradley-Terry (services/research/ratings.py).

- general: two anonymous outputs of one prompt and seed from two models; "which is better?"
- likeness: two outputs of one of your figures from two (model, face path) competitors beside its canonical image;
  "which keeps the character?" Rated per "model|face path", with each competitor's mean identity score beside it.

A round draws a pair from stored grid cells with identical prompt, seed and settings (the voter's own grids, and for
the general arena the grids QA sessions ran: a pre-generated pool), else, when the voter asks for it, generates both
outputs through the runner (two paid requests at the quoted price). What the voter sees is an anonymous copy of each
output (no metadata, no model name); the models are revealed only after that voter's vote. Anti-gaming: one vote per
battle (a unique row), a battle belongs to the voter it was drawn for, a daily cap per voter, a vote after the
identities were shown is refused, and QA sessions' votes are left out of the ratings unless asked for.
"""
from __future__ import annotations

import hashlib
import io
import json
import random
import secrets
import time
from typing import Any

import sqlalchemy as sa
from PIL import Image

from pipelines.types import Task

from ..accounts.identity import Account
from ..accounts.tables import battles, grid_cells, grids, votes
from ..creation.text import TextToImageParams
from ..errors import UserError
from ..runs.params import checked_seed
from .grids import GridSpec, identity_of, identity_text, score_of
from .ratings import Battle, RatingsCache, bradley_terry

KINDS = ("general", "likeness")
OUTCOMES = {"left": "a", "right": "b", "tie": "tie", "bad": "both_bad"}
QUESTIONS = {"general": "Which image is better?", "likeness": "Which keeps the character?"}
PROVISIONAL_UNDER = 10  # a competitor with fewer votes is listed as provisional: its rating and interval say little yet


class ArenaError(UserError, ValueError):
    pass


class Arena:
    def __init__(self, services: Any):
        self.s = services
        self._caches: dict[tuple, RatingsCache] = {}

    def voter(self, account: Account) -> str:
        """The voter as stored with battles and votes: a keyed hash of the account id (never the id itself)."""
        return hashlib.sha256(f"{self.s.identity.derive('voter')}|{account.id}".encode()).hexdigest()[:32]

    # -- rounds --------------------------------------------------------------------------------------------
    def round(self, account: Account, kind: str = "general", *, figure_id: str = "", generate: bool = False,
              prompt: str = "", models: list[str] | None = None, seed: int = -1) -> dict[str, Any]:
        """A battle for this voter: from the pool when a pair is left, else (with `generate`) two new paid outputs."""
        if kind not in KINDS:
            raise ArenaError(f"The arena is general or likeness, not {kind!r}.")
        if kind == "likeness":
            if not figure_id:
                raise ArenaError("The likeness arena runs on one of your figures: pick a figure.")
            self.s.figures.get(account, figure_id)  # yours, or refused with the figures' own message
        pair = None if generate else self._from_pool(account, kind, figure_id)
        if pair is None:
            if not generate:
                quote = self.generate_quote(account, kind, models)
                raise ArenaError(f"No stored pair is left for you here. A new pair is made on two models for "
                                 f"{quote['total']} credits: press Generate a pair (or call again with generate=true).")
            pair = self._generate(account, kind, figure_id, prompt, models, seed)
        return self._store_battle(account, kind, figure_id, pair)

    def generate_quote(self, account: Account, kind: str, models: list[str] | None = None) -> dict[str, Any]:
        """What a generated pair costs: the two outputs' prices (the most expensive pair the draw could take)."""
        choices = self._competitors(kind, models)
        prices = sorted((self._price(kind, model), model) for model, _ in choices)[-2:]
        return {"total": sum(p for p, _ in prices), "models": [m for _, m in prices]}

    def _competitors(self, kind: str, models: list[str] | None) -> list[tuple[str, str]]:
        """(model, face path) pairs a generated battle may use."""
        if kind == "general":
            pool = [e.id for e in self.s.catalogue.entries(Task.TEXT_TO_IMAGE, local=True)]
            chosen = [m for m in (models or pool) if m in pool]
            if len(set(chosen)) < 2:
                raise ArenaError("Pick two different local text-to-image models.")
            return [(m, "") for m in dict.fromkeys(chosen)]
        entries = [e for e in self.s.remix.remix_models() if not models or e.id in models]
        usable = [(e.id, p) for e in entries for p in (e.offered_face_paths or ("reference",))
                  if p == "reference" or (self.s.faces is not None and getattr(self.s.faces, "arcface", False))]
        if len(usable) < 2:
            raise ArenaError("The likeness arena needs two models that keep a face; pick others.")
        return usable

    def _price(self, kind: str, model: str) -> int:
        entry = self.s.catalogue.get(model)
        task = Task.TEXT_TO_IMAGE if kind == "general" or entry.face_preservation != "reference" else Task.REFERENCE
        return self.s.catalogue.quote(model, task, "1:1", "1K").total

    def _from_pool(self, account: Account, kind: str, figure_id: str) -> dict[str, Any] | None:
        a, b = grid_cells.alias("a"), grid_cells.alias("b")
        owner = grids.c.account_id == account.id
        where = [grids.c.surface == "text-to-image", sa.or_(grids.c.qa.is_(True), owner)] if kind == "general" else \
            [grids.c.surface.in_(("remix", "advanced")), grids.c.figure_id == figure_id, owner]
        query = (sa.select(a.c.grid_id, a.c.prompt_index, a.c.seed, a.c.value, a.c.model.label("left_model"), a.c.file.label("left_file"),
                           a.c.request_id.label("left_request"), a.c.identity.label("left_identity"), b.c.model.label("right_model"),
                           b.c.file.label("right_file"), b.c.request_id.label("right_request"), b.c.identity.label("right_identity"),
                           grids.c.spec)
                 .select_from(a.join(b, sa.and_(a.c.grid_id == b.c.grid_id, a.c.prompt_index == b.c.prompt_index, a.c.seed == b.c.seed,
                                                a.c.idx < b.c.idx, a.c.status == "done", b.c.status == "done"))
                              .join(grids, grids.c.id == a.c.grid_id))
                 .where(*where, a.c.file.is_not(None), b.c.file.is_not(None))
                 .order_by(sa.func.random()).limit(50))
        voter = self.voter(account)
        with self.s.db.engine.connect() as conn:
            seen = {frozenset((r.settings["left"].get("request_id"), r.settings["right"].get("request_id"))) for r in conn.execute(
                sa.select(battles.c.settings).where(battles.c.voter == voter, battles.c.kind == kind))}
            for row in conn.execute(query):
                spec = GridSpec.from_dict(row.spec)
                left, right = self._key(kind, spec, row.left_model, row.value), self._key(kind, spec, row.right_model, row.value)
                if left == right:
                    continue
                if frozenset((row.left_request, row.right_request)) in seen:
                    continue
                return {"source": "pool", "prompt": spec.prompts[row.prompt_index], "seed": row.seed,
                        "shared": {"aspect_ratio": spec.aspect_ratio, "resolution": spec.resolution, "axis": spec.axis,
                                   "value": row.value, "grid_id": row.grid_id, "surface": spec.surface},
                        "sides": [{"key": left, "model": row.left_model, "file": row.left_file, "request_id": row.left_request,
                                   "identity": row.left_identity},
                                  {"key": right, "model": row.right_model, "file": row.right_file, "request_id": row.right_request,
                                   "identity": row.right_identity}]}
        return None

    def _key(self, kind: str, spec: GridSpec, model: str, value: str) -> str:
        if kind == "general":
            return model
        path = json.loads(value) if spec.axis == "face_path" and value else None
        entry = self.s.catalogue.get(model)
        return f"{model}|{path or (entry.offered_face_paths[0] if entry.offered_face_paths else 'reference')}"

    def _generate(self, account: Account, kind: str, figure_id: str, prompt: str, models: list[str] | None, seed: int) -> dict[str, Any]:
        choices = self._competitors(kind, models)
        picked = random.sample(choices, 2)
        seed = checked_seed(seed)
        if not prompt:
            prompt = random.choice(self.s.prompt_sets["starter"].texts) if "starter" in self.s.prompt_sets else "a portrait in soft light"
        sides = []
        for model, path in picked:
            if kind == "general":
                out = self.s.text.text_to_image(account, TextToImageParams(prompt=prompt, model=model, seed=seed),
                                                context={"arena": kind})
                key = model
            else:
                out = self.s.remix.figure_remix(account, prompt=prompt, model=model, figure_id=figure_id, seed=seed,
                                                face_path=None if path == "reference" else path)
                key = f"{model}|{path}"
            sides.append({"key": key, "model": model, "file": self.s.store.relative(out.files[0]), "request_id": out.request_id,
                          "identity": identity_of(out.parameters), "charged": out.charged})
        return {"source": "generated", "prompt": prompt, "seed": seed, "shared": {"aspect_ratio": "1:1", "resolution": "1K"},
                "sides": sides}

    def _anonymous(self, name: str) -> str:
        """A copy of a stored output without any metadata (the PNG's settings would name the model)."""
        with Image.open(self.s.store.path(name)) as image:
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, format="PNG")
        return self.s.store.relative(self.s.store.put(buffer.getvalue(), ".png"))

    def _store_battle(self, account: Account, kind: str, figure_id: str, pair: dict[str, Any]) -> dict[str, Any]:
        sides = pair["sides"]
        random.shuffle(sides)  # left / right position at random, recorded
        battle_id = "b" + secrets.token_hex(8)
        files = [self._anonymous(side["file"]) for side in sides]
        settings = {**pair["shared"], "left": sides[0], "right": sides[1]}
        with self.s.db.begin() as conn:
            conn.execute(battles.insert().values(
                id=battle_id, kind=kind, voter=self.voter(account), prompt=pair["prompt"], seed=pair["seed"], settings=settings,
                left=sides[0]["key"], right=sides[1]["key"], left_file=files[0], right_file=files[1], figure_id=figure_id or None,
                source=pair["source"], qa=account.kind == "qa", created_at=time.time()))
        shown = {"battle_id": battle_id, "kind": kind, "question": QUESTIONS[kind], "prompt": pair["prompt"], "seed": pair["seed"],
                 "left": files[0], "right": files[1], "source": pair["source"],
                 "charged": sum(int(s.get("charged") or 0) for s in sides)}
        if kind == "likeness":
            shown["canonical"] = self.s.store.relative(self.s.figures.reference(account, figure_id).image)
        return shown

    # -- votes ---------------------------------------------------------------------------------------------
    def _battle(self, account: Account, battle_id: str):
        with self.s.db.engine.connect() as conn:
            row = conn.execute(sa.select(battles).where(battles.c.id == battle_id, battles.c.voter == self.voter(account))).first()
        if row is None:
            raise ArenaError(f"No battle {battle_id!r} for you: a battle is voted on by the visitor it was drawn for.")
        return row

    def vote(self, account: Account, battle_id: str, outcome: str) -> dict[str, Any]:
        """Record the vote (append-only), then reveal the two models to this voter."""
        if outcome not in OUTCOMES:
            raise ArenaError(f"Vote left, right, tie or bad, not {outcome!r}.")
        row = self._battle(account, battle_id)
        if row.revealed_at is not None:
            raise ArenaError("The models of this battle were already shown to you, so a vote on it is not counted; "
                             "take a new round.")
        voter = self.voter(account)
        now = time.time()
        with self.s.db.begin() as conn:
            today = conn.execute(sa.select(sa.func.count()).select_from(votes)
                                 .where(votes.c.voter == voter, votes.c.created_at > now - 86400)).scalar_one()
            cap = self.s.plans.research.votes_per_day
            if today >= cap:
                raise ArenaError(f"You have cast {cap} votes in the last 24 hours, the daily limit; come back tomorrow.")
            try:
                conn.execute(votes.insert().values(battle_id=battle_id, kind=row.kind, voter=voter, outcome=outcome,
                                                   qa=account.kind == "qa", created_at=now))
            except sa.exc.IntegrityError as exc:
                raise ArenaError("You already voted on this battle; take a new round.") from exc
            conn.execute(battles.update().where(battles.c.id == battle_id).values(revealed_at=now))
        return self._revealed(row, outcome)

    def skip(self, account: Account, battle_id: str) -> dict[str, Any]:
        """Show the models without voting: the battle can no longer be voted on."""
        row = self._battle(account, battle_id)
        with self.s.db.begin() as conn:
            conn.execute(battles.update().where(battles.c.id == battle_id, battles.c.revealed_at.is_(None)).values(revealed_at=time.time()))
        return self._revealed(row, None)

    @staticmethod
    def _revealed(row, outcome: str | None) -> dict[str, Any]:
        settings = row.settings
        return {"battle_id": row.id, "outcome": outcome, "left": row.left, "right": row.right,
                "left_identity": identity_text(settings["left"].get("identity")),
                "right_identity": identity_text(settings["right"].get("identity")),
                "prompt": row.prompt, "seed": row.seed, "settings": settings}

    # -- ratings -------------------------------------------------------------------------------------------
    def leaderboard(self, kind: str = "general", include_qa: bool = False, account: Account | None = None) -> dict[str, Any]:
        """Ratings with 95% intervals per competitor; with `account`, that voter's own ratings once they voted enough."""
        if kind not in KINDS:
            raise ArenaError(f"The arena is general or likeness, not {kind!r}.")
        where = [votes.c.kind == kind]
        if not include_qa:
            where.append(votes.c.qa.is_(False))
        if account is not None:
            where.append(votes.c.voter == self.voter(account))
        with self.s.db.engine.connect() as conn:
            count, last = conn.execute(sa.select(sa.func.count(), sa.func.max(votes.c.id)).where(*where)).one()
            if account is not None and count < self.s.plans.research.personal_after:
                return {"kind": kind, "votes": count, "rows": [], "needed": self.s.plans.research.personal_after - count}

            def battles_now():
                rows = conn.execute(sa.select(battles.c.left, battles.c.right, votes.c.outcome)
                                    .select_from(votes.join(battles, battles.c.id == votes.c.battle_id)).where(*where)).all()
                return [Battle(r.left, r.right, OUTCOMES[r.outcome]) for r in rows]

            cache = self._caches.setdefault((kind, include_qa, account.id if account else None), RatingsCache(bradley_terry))
            ratings = cache.get(count, last, battles_now)
            rows = ratings.leaderboard()
            for row in rows:
                row["provisional"] = row["votes"] < PROVISIONAL_UNDER
            if kind == "likeness":
                scores = self._mean_identity(conn, where)
                for row in rows:
                    row["identity"] = scores.get(row["competitor"])
        return {"kind": kind, "votes": count, "rows": rows, "needed": 0, "include_qa": include_qa}

    @staticmethod
    def _mean_identity(conn, where) -> dict[str, float]:
        """Each likeness competitor's mean identity score over its voted battles (the automatic score beside the votes)."""
        sums: dict[str, list[float]] = {}
        for row in conn.execute(sa.select(battles.c.left, battles.c.right, battles.c.settings)
                                .select_from(votes.join(battles, battles.c.id == votes.c.battle_id)).where(*where)):
            for side, key in (("left", row.left), ("right", row.right)):
                score = score_of(row.settings[side].get("identity"))
                if score is not None:
                    sums.setdefault(key, []).append(score)
        return {k: round(sum(v) / len(v), 4) for k, v in sums.items()}
