"""Shared fixtures: one tiny-model folder and one runtime per test session; no test touches the network."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("PLAYGROUND_ALLOW_DOWNLOADS", "0")

# Tiny models on a shared 2-core machine run ~10x faster on one thread than on two contending ones.
torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
ADMIN_KEY = "test-admin-key-0123456789abcdefghijklmnop"  # 32+ characters, as start-up requires


LOOPBACK = {"127.0.0.1", "::1", "localhost"}
OUTSIDE_ATTEMPTS: list[str] = []  # every connection the guard refused, for the tests that assert none happened


class OutsideConnection(ConnectionRefusedError):
    """A test tried to reach a host other than 127.0.0.1."""


@pytest.fixture(scope="session", autouse=True)
def only_loopback():
    """No test and no start-up path may open a connection outside 127.0.0.1: socket connect is patched for the
    whole session (unix sockets pass) and refuses any other address, recording it."""
    import socket

    original_connect, original_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def allowed(sock, address) -> bool:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return True
        host = address[0] if isinstance(address, tuple) else str(address)
        return host in LOOPBACK

    def connect(sock, address):
        if not allowed(sock, address):
            OUTSIDE_ATTEMPTS.append(str(address))
            raise OutsideConnection(f"tests may only connect to 127.0.0.1, not {address}")
        return original_connect(sock, address)

    def connect_ex(sock, address):
        if not allowed(sock, address):
            OUTSIDE_ATTEMPTS.append(str(address))
            return 111  # ECONNREFUSED
        return original_connect_ex(sock, address)

    socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
    try:
        yield OUTSIDE_ATTEMPTS
    finally:
        socket.socket.connect, socket.socket.connect_ex = original_connect, original_connect_ex


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    # A shared folder (PLAYGROUND_TINY_DIR) lets repeated local runs reuse built models; CI builds fresh.
    shared = os.environ.get("PLAYGROUND_TINY_DIR")
    return Path(shared) if shared else tmp_path_factory.mktemp("tiny-models")


@pytest.fixture(scope="session")
def registry():
    from pipelines.registry import load_registry

    return load_registry()


@pytest.fixture(scope="session")
def preview_runtime(registry, tiny_root):
    from pipelines.runtime import PipelineRuntime, RuntimeSettings

    return PipelineRuntime(registry, RuntimeSettings(tiny_root=tiny_root, preview="force", device="cpu"))


@pytest.fixture(scope="session")
def face_pack(tmp_path_factory):
    """A tiny insightface pack (detector + recogniser ONNX) that FaceAnalysis runs offline."""
    from pipelines.tiny.faces import build_tiny_face_pack

    return build_tiny_face_pack(tmp_path_factory.mktemp("face-pack"))


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def launch_app(data_dir: Path, tiny_root: Path, mcp_server: bool = False, **overrides):
    """Launch the real app (offline preview forced) in this process on a free port: (url, demo, services).
    `mcp_server`: also serve the public endpoints as MCP tools at /gradio_api/mcp/ (as `python app.py --mcp`)."""
    import app as app_module
    from services.config import AppSettings

    os.environ["PLAYGROUND_TINY_DIR"] = str(tiny_root)
    # Every test client comes from 127.0.0.1: allow many starting grants; QA mode on with a known key.
    options = dict(data_dir=data_dir, preview="force", device="cpu", grants_per_ip=1000, admin_secret=ADMIN_KEY)
    settings = AppSettings.from_env(**{**options, **overrides})
    demo, launch_options, services = app_module.create(settings)
    demo.queue().launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, quiet=True,
                        mcp_server=mcp_server, **launch_options)
    return demo.local_url.rstrip("/"), demo, services


def stop_app(demo, services) -> None:
    demo.close()
    services.close()


@pytest.fixture(scope="session")
def app_server(tmp_path_factory, tiny_root):
    """The real app (offline preview forced), shared by the API and browser tests."""
    url, demo, services = launch_app(tmp_path_factory.mktemp("app-data"), tiny_root)
    try:
        yield url, services
    finally:
        stop_app(demo, services)


@pytest.fixture(scope="session")
def client(app_server):
    from gradio_client import Client

    url, _ = app_server
    return Client(url, verbose=False)


@pytest.fixture
def token(client) -> str:
    """A fresh visitor session (50 credits) on the launched app."""
    return client.predict(api_name="/session_start")["token"]


# -- databases: every credits test runs on SQLite, and on PostgreSQL when a URL is given ----------------
POSTGRES_ENV = "PLAYGROUND_TEST_POSTGRES_URL"


def _reset_postgres(url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'playground.db'}"
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"set {POSTGRES_ENV} to run the PostgreSQL variant")
    _reset_postgres(url)
    return url


@pytest.fixture
def make_services(tmp_path, preview_runtime, registry, db_url):
    """Build the app's services on one data dir and database (call again to simulate a restart)."""
    from services.config import AppSettings
    from services.container import build_services

    built = []

    def make(**overrides):
        overrides.setdefault("data_dir", tmp_path / "data")
        overrides.setdefault("database_url", db_url)
        overrides.setdefault("preview", "force")
        safety = overrides.pop("safety", None)
        settings = AppSettings(**overrides)
        services = build_services(settings, registry=registry, runtime=preview_runtime, safety=safety, heartbeat=False)
        built.append(services)
        return services

    yield make
    for services in built:
        services.db.dispose()
