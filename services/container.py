"""Wires the services together from settings; nothing is loaded until a request needs it."""
from __future__ import annotations

from dataclasses import dataclass

from pipelines.registry import Registry, load_registry
from pipelines.runtime import PipelineRuntime

from .config import AppSettings
from .generation import GenerationService
from .storage import OutputStore


@dataclass
class Services:
    settings: AppSettings
    registry: Registry
    runtime: PipelineRuntime
    store: OutputStore
    generation: GenerationService


def build_services(settings: AppSettings, registry: Registry | None = None, runtime: PipelineRuntime | None = None) -> Services:
    registry = registry or load_registry(settings.registry_path)
    runtime = runtime or PipelineRuntime(registry, settings.runtime_settings())
    store = OutputStore(settings.outputs_dir)
    return Services(settings, registry, runtime, store, GenerationService(registry, runtime, store))
