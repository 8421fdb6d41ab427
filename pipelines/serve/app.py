"""Builds the Ray Serve applications from the registry: one per serve group (an entry alone, or the entries that name
one `serve.group`), each one ModelServer deployment with the group's resources, autoscaling and graceful shutdown.

The applications have no HTTP route: the app instances call them through deployment handles (backend.py)."""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

from ray import serve
from ray.serve import Application

from ..errors import UnknownModel
from ..registry import ModelEntry, Registry, ServeOptions
from ..runtime import RuntimeSettings
from .deployment import ModelServer
from .wire import application_name

log = logging.getLogger(__name__)

# What the command line may set for every deployment at once (e.g. --num-gpus 0 for a CPU-only cluster).
OVERRIDABLE = ("num_gpus", "num_cpus", "min_replicas", "max_replicas", "max_models_per_replica")


@dataclass(frozen=True)
class Group:
    """The entries one deployment serves, and the serve options they share."""

    name: str
    entries: tuple[ModelEntry, ...]

    @property
    def options(self) -> ServeOptions:
        return self.entries[0].serving

    @property
    def ids(self) -> list[str]:
        return [entry.id for entry in self.entries]


def groups(registry: Registry, models: list[str] | None = None) -> list[Group]:
    """The serve groups of the registry's local entries, in declaration order; with `models`, only the groups that
    serve them (a group deploys whole: its entries share replicas)."""
    found: dict[str, list[ModelEntry]] = {}
    for entry in registry:
        if not entry.is_remote:
            found.setdefault(entry.serve_group, []).append(entry)
    if models:
        wanted = set()
        for model_id in models:
            entry = registry.get(model_id)
            if entry.is_remote:
                raise UnknownModel(f"{model_id!r} is an API model: it runs at its provider, not on Ray Serve")
            wanted.add(entry.serve_group)
        found = {name: entries for name, entries in found.items() if name in wanted}
    return [Group(name, tuple(entries)) for name, entries in found.items()]


def deployment_options(options: ServeOptions) -> dict[str, Any]:
    """ServeOptions as Serve's deployment arguments (Serve ignores unknown keys silently: the registry validated ours)."""
    return {
        "ray_actor_options": {"num_gpus": options.num_gpus, "num_cpus": options.num_cpus},
        "autoscaling_config": {
            "min_replicas": options.min_replicas,
            "initial_replicas": max(1, options.min_replicas),  # a fresh deployment answers its first request warm
            "max_replicas": options.max_replicas,
            "target_ongoing_requests": options.target_ongoing_requests,
        },
        "max_ongoing_requests": options.max_ongoing_requests,
        # a replica being scaled down or replaced stops taking requests and finishes those in flight, for this long
        "graceful_shutdown_timeout_s": options.graceful_shutdown_timeout_s,
    }


def runtime_arguments(settings: RuntimeSettings) -> dict[str, Any]:
    """A replica's RuntimeSettings as plain data: always the local backend (a replica runs the entries itself)."""
    data = asdict(settings)
    data.update(tiny_root=str(settings.tiny_root), backend="local", ray=None, remote=None)
    return data


def build(group: Group, registry: Registry, runtime: RuntimeSettings, overrides: dict[str, Any] | None = None) -> Application:
    """The Serve application of one group. `overrides` sets OVERRIDABLE fields for it (validated like the registry's)."""
    options = group.options
    if overrides:
        unknown = sorted(set(overrides) - set(OVERRIDABLE))
        if unknown:
            raise ValueError(f"cannot override {unknown}; only {', '.join(OVERRIDABLE)}")
        options = ServeOptions.model_validate({**options.model_dump(), **overrides})
    deployment = serve.deployment(ModelServer).options(name=group.name, **deployment_options(options))
    local = [entry.model_dump(mode="json", exclude_unset=True) for entry in registry if not entry.is_remote]
    return deployment.bind(local, runtime_arguments(runtime), group.ids, options.max_models_per_replica)


def deploy(registry: Registry, runtime: RuntimeSettings, namespace: str, models: list[str] | None = None,
           overrides: dict[str, Any] | None = None) -> list[str]:
    """Deploy (or update in place) the applications of the chosen groups on the connected cluster, without waiting for
    their replicas (wait_until_running does); returns their names. Serve replaces an updated deployment's replicas
    gracefully (graceful_shutdown_timeout_s)."""
    from ray.serve.api import RunTarget

    serve.start(proxy_location="Disabled")  # handles only: the app instances are the HTTP front
    targets = []
    for group in groups(registry, models):
        name = application_name(namespace, group.name)
        log.info("deploying %s: %s", name, ", ".join(group.ids))
        targets.append(RunTarget(build(group, registry, runtime, overrides), name=name, route_prefix=None))
    if not targets:
        raise UnknownModel("no local models to deploy")
    serve.run_many(targets, wait_for_applications_running=False)
    return [target.name for target in targets]


def wait_until_running(names: list[str], timeout_s: float, poll_s: float = 0.5) -> dict[str, str]:
    """Each application's status once all run, or when timeout_s has passed (a replica asking for a GPU the cluster
    does not have stays starting forever); a failed deployment raises naming its message."""
    deadline = time.monotonic() + timeout_s
    while True:
        applications = serve.status().applications
        states = {name: str(getattr(applications.get(name), "status", "NOT_STARTED")) for name in names}
        failed = {name: applications[name].message for name, state in states.items() if state.endswith("DEPLOY_FAILED")}
        if failed:
            raise RuntimeError("; ".join(f"{name} failed to deploy: {message}" for name, message in failed.items()))
        if all(state.endswith("RUNNING") for state in states.values()) or time.monotonic() > deadline:
            return states
        time.sleep(poll_s)
