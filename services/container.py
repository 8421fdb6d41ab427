"""Wires the services together from settings; nothing is loaded until a request needs it.

Start-up order: open the database and apply migrations, register this process, refund reservations
left by dead processes, then keep a heartbeat (which also sweeps reservations of instances that die
while this one runs).
"""
from __future__ import annotations

import logging
from typing import Any
from dataclasses import dataclass, field

from pipelines.registry import Registry, RegistryError, load_registry
from pipelines.runtime import PipelineRuntime
from pipelines.types import Task

from .accounts.db import Database
from .accounts.history import History
from .accounts.identity import Identity, server_secret
from .accounts.instances import Instances
from .accounts.jobs import Jobs
from .accounts.ledger import Ledger
from .accounts.network import ProxyTrust
from .accounts.plans import Plans, PlansError, load_plans
from .catalogue import Catalogue
from .config import AppSettings
from .creation.characters import Albums, Characters, load_character_limits
from .creation.compare import CompareService
from .creation.figure_presets import FigurePresets, load_figure_presets
from .creation.figures import Figures
from .creation.identity import IdentityMonitor
from .creation.image_presets import ImagePresets, load_image_presets
from .creation.remix import ReferenceImages
from .creation.text import TextImages
from .creation.reference_sheets import ReferenceSheets
from .creation.video import VideoPresets, VideoService, load_video_presets
from .faces.engine import DlibFaceEngine, FaceEngine, default_engine
from .media.storage import OutputStore
from .research.arena import Arena
from .research.grid_run import Grids
from .research.prompt_sets import load_prompt_sets
from .runs.background import Background
from .runs.slots import Slots
from .chat.pictures import Pictures
from .projects import Projects, load_project_settings
from .errors import InvalidRequest
from .chat.service import Chats
from .chat.store import ChatStore
from .runs.runner import Runner
from .safety.output import SafetyChecker, build_checker
from .safety.policy import PromptPolicy, SafetyFile, load_safety_file

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
    network: ProxyTrust
    instances: Instances
    jobs: Jobs
    history: History
    catalogue: Catalogue
    policy: PromptPolicy
    runner: Runner
    text: TextImages
    recovered: list[str]
    safety_file: SafetyFile
    safety: SafetyChecker
    figure_presets: FigurePresets
    figures: Figures
    faces: FaceEngine | DlibFaceEngine | None
    video_presets: VideoPresets
    video: VideoService
    image_presets: ImagePresets
    remix: ReferenceImages
    compare: CompareService
    characters: Characters
    albums: Albums
    sheets: ReferenceSheets
    background: Background  # long requests as jobs to poll (video over MCP, grids)
    monitor: Any = None  # the identity monitor's reads: a figure's outputs by SimRef, edit chains (creation/identity.py)
    grids: Any = None  # research grids (services/research/grid_run.py), built on the services themselves
    arena: Any = None  # research arenas (services/research/arena.py)
    prompt_sets: dict = field(default_factory=dict)  # presets/prompt_sets/, validated on load
    chats: Any = None  # conversations with characters (services/chat)
    projects: Any = None  # projects: cards, versions, refs, scenes, the feed (services/projects)

    def cancel(self, account) -> int:
        """Stop the account's running generations at their next step; each is refunded. Returns how many."""
        return self.runner.cancel(account)

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
    sheet_model = plans.reference_sheets.model
    if sheet_model not in registry.ids() or Task.REFERENCE not in registry.get(sheet_model).tasks:
        raise PlansError(f"plans.toml [reference_sheets] model {sheet_model!r} is not a registry model that takes a reference")
    unpriced_models = [e.id for e in registry if e.id not in plans.prices.models]
    if unpriced_models:
        raise PlansError(f"plans.toml [prices.models] has no price for {unpriced_models}")
    for entry in registry:
        stray = sorted(set(plans.prices.models[entry.id]) - {"output"} - {t.value for t in entry.tasks})
        if stray:
            raise PlansError(f"plans.toml prices {entry.id!r} for tasks it does not offer: {stray}")
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
    plans: Plans | None = None,
) -> Services:
    registry = registry or load_registry(settings.registry_path)
    runtime = runtime or PipelineRuntime(registry, settings.runtime_settings())
    plans = plans or load_plans(settings.plans_path)
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
    instances = Instances(db, settings.heartbeat_s, settings.instance_stale_s)
    instances.register()
    jobs = Jobs(db, ledger, store, safety, instances, timeout_s=settings.generation_timeout_s)
    recovered = jobs.recover()
    instances.forget()
    if heartbeat:
        instances.start_heartbeat(on_beat=jobs.recover)
    log.info("database %s ready (schema v%d); refunded %d interrupted request(s)", db.display_url, db.schema_version(), len(recovered))
    history = History(db, jobs, store)
    policy = PromptPolicy.from_file(safety_file)
    catalogue = Catalogue(registry, runtime, plans)
    runner = Runner(catalogue, runtime, plans, jobs, policy, store, Slots(settings.slot_limits))
    text = TextImages(catalogue, runner, safety_file.uploads, store)
    log.info("output safety check: %s", safety.name)
    figure_presets = load_figure_presets()
    figure_presets.check_models(set(registry.ids()))
    faces = default_engine(settings.face_pack)  # ArcFace where a pack is configured, else dlib (requirements.txt)
    log.info("face engine: %s", faces.name if faces else "none (identity features off)")
    figures = Figures(db, text, figure_presets, store, faces)
    video_presets = load_video_presets()
    video_presets.check(registry)
    video = VideoService(catalogue, runner, figures, history, video_presets)
    remix = ReferenceImages(catalogue, text, runner, figures, history, faces)
    character_limits = load_character_limits()  # an archetype's voice and traits seed a personality: it must fit
    figure_presets.check_personality(character_limits.spec("personality").max, character_limits.personality.generic)
    characters = Characters(db, figures, store, policy, character_limits, safety, safety_file.uploads, text, remix)
    services = Services(
        settings, registry, runtime, store, db, plans, ledger, identity, ProxyTrust(settings.proxy_hops, settings.trusted_proxies), instances, jobs, history, catalogue, policy, runner,
        text, recovered, safety_file, safety, figure_presets, figures, faces, video_presets, video, load_image_presets(),
        remix, CompareService(catalogue, text, runner, identity, figures, faces), characters, Albums(db, ledger, characters, plans.albums),
        ReferenceSheets(catalogue, plans, text, runner, figures, history), Background(history.by_key),
    )
    services.monitor = IdentityMonitor(db, store, figures, history, faces)
    services.grids = Grids(services)
    services.arena = Arena(services)
    services.prompt_sets = load_prompt_sets()
    for model in character_limits.chat_models:  # every chat model a character may name runs through a registry entry
        try:
            catalogue.chat_entry(model)
        except InvalidRequest:
            raise RegistryError(f"presets/characters.toml chat_models: {model!r} is no chat model in the registry "
                                "(its source repo or remote_model)") from None
    project_settings = load_project_settings()
    project_settings.check(registry)
    services.projects = Projects(db, store, project_settings, catalogue=catalogue, runner=runner, text=text, figures=figures,
                                 uploads=safety_file.uploads, safety=safety, remix=remix)
    services.chats = Chats(ChatStore(db), catalogue, runner, characters, Pictures(catalogue, characters, remix, store))
    return services
