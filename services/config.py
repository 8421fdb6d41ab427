"""Application settings from the command line and the environment."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.registry import DEFAULT_REGISTRY
from pipelines.runtime import RuntimeSettings
from pipelines.serve.backend import RaySettings
from pipelines.serve.wire import DEFAULT_NAMESPACE

from .accounts.identity import check_admin_secret
from .accounts.instances import check_heartbeat
from .accounts.plans import DEFAULT_PLANS
from .runs.slots import SlotLimits
from .safety.policy import DEFAULT_SAFETY

ENV_STRINGS = {
    "database_url": ("PLAYGROUND_DATABASE_URL", "DATABASE_URL"),
    "secret": ("PLAYGROUND_SECRET",),
    "admin_secret": ("PLAYGROUND_ADMIN_SECRET",),
    "device": ("PLAYGROUND_DEVICE",),
    "dtype": ("PLAYGROUND_DTYPE",),
    "safety_backend": ("PLAYGROUND_SAFETY",),
    "face_pack": ("PLAYGROUND_FACE_PACK",),
    "trusted_proxies": ("PLAYGROUND_TRUSTED_PROXIES",),
    "backend": ("PLAYGROUND_BACKEND",),
    "ray_address": ("PLAYGROUND_RAY_ADDRESS",),
    "ray_namespace": ("PLAYGROUND_RAY_NAMESPACE",),
}
ENV_NUMBERS = {
    "cache_budget_gb": ("PLAYGROUND_CACHE_GB", float),
    "grants_per_ip": ("PLAYGROUND_GRANTS_PER_IP", int),
    "generation_timeout_s": ("PLAYGROUND_TIMEOUT_S", float),
    "proxy_hops": ("PLAYGROUND_PROXY_HOPS", int),
    "heartbeat_s": ("PLAYGROUND_HEARTBEAT_S", float),
    "instance_stale_s": ("PLAYGROUND_INSTANCE_STALE_S", float),
    "model_slots": ("PLAYGROUND_MODEL_SLOTS", int),
    "local_slots": ("PLAYGROUND_LOCAL_SLOTS", int),
    "remote_slots": ("PLAYGROUND_REMOTE_SLOTS", int),
    "visitor_local_slots": ("PLAYGROUND_VISITOR_LOCAL_SLOTS", int),
    "visitor_remote_slots": ("PLAYGROUND_VISITOR_REMOTE_SLOTS", int),
    "local_queue": ("PLAYGROUND_LOCAL_QUEUE", int),
    "remote_queue": ("PLAYGROUND_REMOTE_QUEUE", int),
}


def default_data_dir() -> Path:
    # Hugging Face Spaces mount persistent storage at /data.
    env = os.environ.get("PLAYGROUND_DATA_DIR")
    if env:
        return Path(env)
    return Path("/data") if Path("/data").is_dir() and os.access("/data", os.W_OK) else Path("data")


def _flag(name: str) -> bool | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class AppSettings:
    data_dir: Path = field(default_factory=default_data_dir)
    registry_path: Path = DEFAULT_REGISTRY
    preview: str = "auto"  # auto | force | forbid
    allow_downloads: bool | None = None
    device: str | None = None
    dtype: str | None = None
    cache_budget_gb: float | None = None
    database_url: str | None = None  # default: a SQLite file in the data dir
    secret: str | None = None  # signs visitor tokens; default: a random one kept in the database
    admin_secret: str | None = None  # enables QA/admin sessions
    grants_per_ip: int | None = None  # default: presets/plans.toml
    generation_timeout_s: float = 900.0
    # Several instances on one database (services/accounts/instances.py): each beats every `heartbeat_s` and sweeps
    # then; one silent for `instance_stale_s` is dead and its open reservations are refunded by the others.
    heartbeat_s: float = 30.0
    instance_stale_s: float = 180.0
    proxy_hops: int = 0  # reverse proxies in front of the app that append to X-Forwarded-For
    trusted_proxies: tuple[str, ...] = ()  # their addresses or networks; when set, only they may send the header
    plans_path: Path = DEFAULT_PLANS
    safety_path: Path = DEFAULT_SAFETY
    safety_backend: str | None = None  # auto | nudenet | classifier | none (default: safety.toml)
    face_pack: Path | None = None  # an insightface model pack folder; identity features are off without one
    # Run slots (services/runs/slots.py): local pipeline runs and provider requests are limited separately, and one
    # visitor holds at most their share of each.
    local_slots: int = 1  # per device (this process's GPU, or the CPU)
    model_slots: int = 1  # of those, runs of one model at once
    remote_slots: int = 8
    visitor_local_slots: int = 1
    visitor_remote_slots: int = 2
    # Runs of each kind admitted at once, running or waiting for a slot; one more is refused as busy (nothing charged).
    local_queue: int | None = None  # default: 16, or twice local_slots when that is more
    remote_queue: int | None = None  # default: 16, or twice remote_slots when that is more
    # Where local models run (pipelines/serve): "local" in this process, or "ray" on the Ray Serve applications that
    # `python -m pipelines.serve` deployed on the cluster at ray_address (None: auto) under ray_namespace.
    backend: str = "local"
    ray_address: str | None = None
    ray_namespace: str = DEFAULT_NAMESPACE

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        object.__setattr__(self, "plans_path", Path(self.plans_path))
        object.__setattr__(self, "safety_path", Path(self.safety_path))
        if isinstance(self.trusted_proxies, str):
            object.__setattr__(self, "trusted_proxies", tuple(p.strip() for p in self.trusted_proxies.split(",") if p.strip()))
        if self.face_pack is not None:
            object.__setattr__(self, "face_pack", Path(self.face_pack))
        check_admin_secret(self.admin_secret or None)
        self.slot_limits  # refuses a limit below 1 at start-up
        self.runtime_settings()  # refuses an unknown backend at start-up
        check_heartbeat(self.heartbeat_s, self.instance_stale_s)

    @classmethod
    def from_env(cls, **overrides) -> "AppSettings":
        values: dict = {}
        if os.environ.get("PLAYGROUND_PREVIEW"):
            values["preview"] = os.environ["PLAYGROUND_PREVIEW"]
        if _flag("PLAYGROUND_ALLOW_DOWNLOADS") is not None:
            values["allow_downloads"] = _flag("PLAYGROUND_ALLOW_DOWNLOADS")
        for key, names in ENV_STRINGS.items():
            found = next((os.environ[n] for n in names if os.environ.get(n)), None)
            if found:
                values[key] = found
        for key, (name, kind) in ENV_NUMBERS.items():
            if os.environ.get(name):
                values[key] = kind(os.environ[name])
        if "proxy_hops" not in values and os.environ.get("SPACE_ID"):
            values["proxy_hops"] = 1  # Hugging Face Spaces serve apps behind one proxy
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def slot_limits(self) -> SlotLimits:
        return SlotLimits(self.local_slots, self.remote_slots, self.visitor_local_slots, self.visitor_remote_slots,
                          model=self.model_slots, local_queue=self.local_queue, remote_queue=self.remote_queue)

    @property
    def event_concurrency(self) -> int:
        """How many calls of one endpoint gradio runs at once: both queues (slots.py), so the slots decide who waits and
        a call of one kind never waits in gradio's queue behind calls of the other kind that wait for their slots."""
        limits = self.slot_limits
        return limits.queue("local") + limits.queue("remote")

    @property
    def outputs_dir(self) -> Path:
        return self.data_dir / "outputs"

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'playground.db').resolve()}"

    @property
    def oauth_enabled(self) -> bool:
        # Spaces with `hf_oauth: true` in the README front matter set these.
        return bool(os.environ.get("OAUTH_CLIENT_ID") and os.environ.get("SPACE_ID"))

    @property
    def tiny_root(self) -> Path:
        return Path(os.environ.get("PLAYGROUND_TINY_DIR") or self.data_dir / "tiny-models")

    def runtime_settings(self) -> RuntimeSettings:
        budget = int(self.cache_budget_gb * 2**30) if self.cache_budget_gb else None
        return RuntimeSettings(
            tiny_root=self.tiny_root,
            preview=self.preview,  # type: ignore[arg-type]
            allow_downloads=self.allow_downloads,
            device=self.device,
            dtype=self.dtype,
            cache_budget_bytes=budget,
            backend=self.backend,  # type: ignore[arg-type]
            ray=RaySettings(address=self.ray_address, namespace=self.ray_namespace) if self.backend == "ray" else None,
        )
