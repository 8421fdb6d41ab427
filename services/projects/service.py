"""The projects service: one object over the package's parts (each a mixin over the same database and services)."""
from __future__ import annotations

from typing import Any

from ..accounts.db import Database
from ..media.storage import OutputStore
from .cards import Cards
from .feed import Feed
from .generation import Generation
from .membership import Membership
from .refine_chat import Refining
from .refiner import OfflineRefiner
from .refs import Refs
from .scenes import Scenes
from .settings import ProjectSettings


class Projects(Membership, Cards, Feed, Refs, Scenes, Generation, Refining):
    def __init__(self, db: Database, store: OutputStore, settings: ProjectSettings, *, catalogue: Any, runner: Any, text: Any,
                 figures: Any, uploads: Any, safety: Any, remix: Any = None, refiner: OfflineRefiner | None = None):
        self.db = db
        self.refiner = refiner or OfflineRefiner()  # presets/refiner.toml, validated here (start-up)
        self.store = store
        self.settings = settings
        self.catalogue = catalogue
        self.runner = runner
        self.text = text
        self.figures = figures
        self.uploads = uploads
        self.safety = safety
        self.remix = remix
