"""Wires the services together from settings; nothing is loaded until a request needs it.

Start-up order: open the database and apply migrations, register this process, refund reservations
left by dead processes, then keep a heartbeat (which also sweeps reservations of instances that die
while this one runs).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from pipelines.registry import Registry, load_registry
from pipelines.runtime import PipelineRuntime

from .config import AppSettings
from .db import Database
from .characters import Characters, load_character_limits
from .compare import CompareService
from .generation import GenerationService
from .faces import FaceEngine
from .figure_presets import FigurePresets, load_figure_presets
from .figures import Figures
from .history import History
from .image_presets import ImagePresets, load_image_presets
from .identity import Identity, server_secret
from .instances import Instances
from .jobs import Jobs
from .ledger import Ledger
from .plans import Plans, PlansError, load_plans
from .policy import PromptPolicy, SafetyFile, load_safety_file
from .remix import ReferenceImages
from .safety import SafetyChecker, build_checker
from .storage import OutputStore
from .video import VideoPresets, VideoService, load_video_presets

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: AppSettings
    registry: Registry
    runtime: PipelineRuntime
    store: OutputStore
    db: Database
    plans: Plans
    ledger: Ledger
    identity: Identity
    instances: Instances
    jobs: Jobs
    history: History
    generation: GenerationService
    recovered: list[str]
    safety_file: SafetyFile
    safety: SafetyChecker
    figure_presets: FigurePresets
    figures: Figures
    faces: FaceEngine | None
    video_presets: VideoPresets
    video: VideoService
    image_presets: ImagePresets
    remix: ReferenceImages
    compare: CompareService
    characters: Characters

    def close(self) -> None:
        """Say this instance stopped (its open reservations are refunded by the next start) and let go."""
        try:
            self.instances.stop()
        finally:
            self.db.dispose()


def check_plans(plans: Plans, registry: Registry) -> None:
    unknown = sorted(set(plans.prices.models) - set(registry.ids()))
    if unknown:
        raise PlansError(f"plans.toml prices name models not in the registry: {unknown}")
    tiers = {tier for entry in registry for sizes in entry.sizes.values() for tier in sizes}
    unpriced = sorted(tiers - set(plans.prices.resolution_multiplier))
    if unpriced:
        raise PlansError(f"plans.toml has no resolution_multiplier for the registry's tiers {unpriced}")


def build_services(
    settings: AppSettings,
    registry: Registry | None = None,
    runtime: PipelineRuntime | None = None,
    safety: SafetyChecker | None = None,
    heartbeat: bool = True,
) -> Services:
    registry = registry or load_registry(settings.registry_path)
    runtime = runtime or PipelineRuntime(registry, settings.runtime_settings())
    plans = load_plans(settings.plans_path)
    safety_file = load_safety_file(settings.safety_path)
    if safety is None:
        safety = build_checker(safety_file.output, settings.safety_backend, allow_downloads=runtime.downloads_allowed)
    check_plans(plans, registry)
    store = OutputStore(settings.outputs_dir)
    db = Database(settings.db_url)
    db.migrate()
    ledger = Ledger(db)
    identity = Identity(
        db, ledger, plans, server_secret(db, settings.secret), admin_secret=settings.admin_secret, grants_per_ip=settings.grants_per_ip
    )
    instances = Instances(db)
    instances.register()
    jobs = Jobs(db, ledger, store, safety, instances, timeout_s=settings.generation_timeout_s)
    recovered = jobs.recover()
    if heartbeat:
        instances.start_heartbeat(on_beat=jobs.recover)
    log.info("database %s ready (schema v%d); refunded %d interrupted request(s)", db.display_url, db.schema_version(), len(recovered))
    history = History(db, ledger, store)
    policy = PromptPolicy.from_file(safety_file)
    generation = GenerationService(registry, runtime, plans, jobs, policy, safety_file.uploads, store)
    log.info("output safety check: %s", safety.name)
    figure_presets = load_figure_presets()
    figure_presets.check_models(set(registry.ids()))
    faces = FaceEngine(settings.face_pack) if settings.face_pack else None
    figures = Figures(db, generation, figure_presets, store, faces)
    video_presets = load_video_presets()
    video_presets.check(registry)
    video = VideoService(registry, runtime, plans, jobs, policy, store, figures, history, video_presets)
    return Services(
        settings, registry, runtime, store, db, plans, ledger, identity, instances, jobs, history, generation, recovered,
        safety_file, safety, figure_presets, figures, faces, video_presets, video, load_image_presets(),
        ReferenceImages(generation, figures, history, faces), CompareService(registry, plans, generation, identity),
        Characters(db, figures, store, policy, load_character_limits()),
    )
