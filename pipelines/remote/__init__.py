"""API-only models: hosted providers reached through InferenceClient or the vendors in presets/providers.toml."""
from .backend import RemoteBackend, RemoteSettings
from .calls import RemoteFailed

__all__ = ["RemoteBackend", "RemoteFailed", "RemoteSettings"]
