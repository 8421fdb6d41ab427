"""Scenes: a project's named pools of shots (refs, in order; a version's image becomes one through "save shot as ref").
A card set in a scene generates with the pool's shots as references, after its direction's own refs and within the
model's reference cap (generation.py)."""
from __future__ import annotations

import secrets
import time
from typing import Any

import sqlalchemy as sa

from ..accounts.identity import Account
from ..accounts.tables import project_cards, project_refs, project_scene_shots, project_scenes
from .access import ProjectError, card_row, project_row, ref_row, scene_row, writable
from .refs import ref_view

NAME_MAX = 80


def _name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > NAME_MAX:
        raise ProjectError(f"A scene's name is 1 to {NAME_MAX} characters.")
    return name


class Scenes:
    def create_scene(self, account: Account, project_id: str, name: str) -> dict[str, Any]:
        name = _name(name)
        scene_id = secrets.token_hex(8)
        with self.db.begin() as conn:
            project = project_row(conn, account, project_id)
            writable(project)
            conn.execute(project_scenes.insert().values(id=scene_id, project_id=project.id, name=name, created_at=time.time()))
        return self.scene(account, scene_id)

    def scene(self, account: Account, scene_id: str) -> dict[str, Any]:
        """A scene with its pool's shots, in order."""
        with self.db.engine.connect() as conn:
            row = scene_row(conn, account, scene_id)
            return self._scene_view(conn, row)

    @staticmethod
    def _scene_view(conn: sa.Connection, row) -> dict[str, Any]:
        shots = conn.execute(sa.select(project_refs).join(project_scene_shots, project_scene_shots.c.ref_id == project_refs.c.id)
                             .where(project_scene_shots.c.scene_id == row.id).order_by(project_scene_shots.c.position)).all()
        return {"id": row.id, "project_id": row.project_id, "name": row.name, "shots": [ref_view(s) for s in shots]}

    def scenes(self, account: Account, project_id: str) -> list[dict[str, Any]]:
        """The project's scenes (Scenes page), oldest first, each with its shots."""
        with self.db.engine.connect() as conn:
            project = project_row(conn, account, project_id)
            rows = conn.execute(sa.select(project_scenes).where(project_scenes.c.project_id == project.id)
                                .order_by(project_scenes.c.created_at, project_scenes.c.id)).all()
            return [self._scene_view(conn, r) for r in rows]

    def _pool_change(self, conn: sa.Connection, account: Account, scene_id: str, ref_id: str):
        scene = scene_row(conn, account, scene_id)
        writable(project_row(conn, account, scene.project_id))
        ref = ref_row(conn, account, ref_id)
        if ref.project_id != scene.project_id:
            raise ProjectError(f"No ref {ref_id!r} in this scene's project.")
        return scene, ref

    def add_shot(self, account: Account, scene_id: str, ref_id: str) -> dict[str, Any]:
        """Put a project ref into the scene's pool (last); a shot already there stays where it is."""
        with self.db.begin() as conn:
            scene, ref = self._pool_change(conn, account, scene_id, ref_id)
            shots = project_scene_shots.c
            if conn.execute(sa.select(shots.ref_id).where(shots.scene_id == scene.id, shots.ref_id == ref.id)).first() is None:
                last = conn.execute(sa.select(sa.func.max(shots.position)).where(shots.scene_id == scene.id)).scalar()
                conn.execute(project_scene_shots.insert().values(scene_id=scene.id, ref_id=ref.id, position=int(last or 0) + 1))
        return self.scene(account, scene_id)

    def remove_shot(self, account: Account, scene_id: str, ref_id: str) -> dict[str, Any]:
        with self.db.begin() as conn:
            scene, ref = self._pool_change(conn, account, scene_id, ref_id)
            conn.execute(project_scene_shots.delete().where(project_scene_shots.c.scene_id == scene.id,
                                                            project_scene_shots.c.ref_id == ref.id))
        return self.scene(account, scene_id)

    def set_card_scene(self, account: Account, card_id: str, scene_id: str = "") -> dict[str, Any]:
        """Generate the card in a scene's context (its pool's shots become references), or "" for none."""
        with self.db.begin() as conn:
            card = card_row(conn, account, card_id)
            writable(project_row(conn, account, card.project_id))
            chosen = None
            if scene_id:
                scene = scene_row(conn, account, scene_id)
                if scene.project_id != card.project_id:
                    raise ProjectError(f"No scene {scene_id!r} in this card's project.")
                chosen = scene.id
            conn.execute(project_cards.update().where(project_cards.c.id == card.id).values(scene_id=chosen, updated_at=time.time()))
        return self.card(account, card_id)
