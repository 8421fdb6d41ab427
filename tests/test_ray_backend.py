"""The ray backend (issue 32): a tiny model generates through a Ray Serve deployment via the one runner, with the local
backend's pixels and progress to 100 % (and its group's second model multiplexed on the same replica); Stop ends a Ray
run within two steps and refunds; a replica killed mid-request refunds it in full and the next request runs on a new
replica; a replica shutting down finishes its request first.

One local Ray (2 CPUs, no dashboard, its own RAY_TMPDIR) and one Serve application deployed by `python -m
pipelines.serve` for the whole module, shut down at its end. Every wait is bounded."""
from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from services.config import AppSettings
from services.container import build_services
from services.creation.text import TextToImageParams
from services.errors import Cancelled, ModelRefused

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                                reason="ray is not installed: pip install -r requirements-ray.txt")

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "playground-test"
MODEL = "sdxl-base"
NEIGHBOUR = "playground-v2.5"  # the same serve group (presets/models.toml): multiplexed on MODEL's replica
RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # the node is 127.0.0.1, not found by a route towards a public address
    "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),  # replicas import pipelines
}


@pytest.fixture(scope="module")
def serve_app(tmp_path_factory, registry, preview_runtime, tiny_root, only_loopback):
    """A local Ray with the Serve application of MODEL's group on the tiny preview (the tiny models built once, here),
    one model loaded per replica at a time."""
    for model in (MODEL, NEIGHBOUR):
        preview_runtime.ensure_tiny(registry.get(model))
    temp = tmp_path_factory.mktemp("ray")
    refused_before = len(only_loopback)
    saved = {name: os.environ.get(name) for name in (*RAY_ENV, "RAY_TMPDIR")}
    os.environ.update(RAY_ENV, RAY_TMPDIR=str(temp))  # before ray is imported: it reads some of these once
    import ray
    from ray import serve

    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", namespace=NAMESPACE,
             logging_level=logging.WARNING, log_to_driver=False)
    try:
        # the documented command, as an operator runs it on a node of the cluster (it finds it through RAY_TMPDIR)
        deploy = [sys.executable, "-m", "pipelines.serve", "--address", "auto", "--namespace", NAMESPACE, "--models", MODEL,
                  "--preview", "force", "--tiny-dir", str(tiny_root), "--device", "cpu", "--num-gpus", "0", "--num-cpus", "0.5",
                  "--max-models-per-replica", "1", "--wait-s", "60"]
        done = subprocess.run(deploy, cwd=ROOT, capture_output=True, text=True, timeout=120)
        name = f"{NAMESPACE}.{registry.get(MODEL).serve_group}"
        assert done.returncode == 0 and f"{name}: RUNNING" in done.stdout, done.stdout + done.stderr[-3000:]
        yield name
        assert len(only_loopback) == refused_before, only_loopback  # Ray and the handles stayed on 127.0.0.1
    finally:
        serve.shutdown()
        ray.shutdown()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _services(folder: Path, registry, **settings):
    """The app's services as tests/conftest.py's make_services builds them, on their own SQLite file (the backend does
    not touch the database: the PostgreSQL variants of the credits tests cover that)."""
    runtime = settings.pop("runtime", None)
    options = dict(data_dir=folder / "data", database_url=f"sqlite:///{folder / 'playground.db'}", preview="force", device="cpu")
    return build_services(AppSettings(**options, **settings), registry=registry, runtime=runtime, heartbeat=False)


@pytest.fixture
def ray_services(serve_app, tmp_path, registry):
    """The app's services with PLAYGROUND_BACKEND=ray: the runtime built from the settings, as the container does."""
    services = _services(tmp_path / "ray", registry, backend="ray", ray_namespace=NAMESPACE, generation_timeout_s=60)
    assert services.runtime.serve is not None
    yield services
    services.db.dispose()


def _call(app_name: str, method: str):
    from ray import serve

    return serve.get_app_handle(app_name).options(method_name=method).remote().result(timeout_s=30)


def _settled(app_name: str, timeout_s: float = 20) -> dict:
    """The replica's counters once nothing runs on it (a cancelled run ends at its next step)."""
    deadline = time.monotonic() + timeout_s
    while True:
        stats = _call(app_name, "stats")
        if stats["running"] == 0 or time.monotonic() > deadline:
            return stats
        time.sleep(0.05)


def _replicas(app_name: str) -> list[str]:
    import ray

    return sorted(actor["name"] for actor in ray.util.list_named_actors(all_namespaces=True)
                  if actor["name"].startswith("SERVE_REPLICA::") and app_name in actor["name"])


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_a_tiny_model_generates_through_serve_with_the_local_pixels(ray_services, serve_app, tmp_path, registry, preview_runtime):
    params = TextToImageParams("a lighthouse at dusk", MODEL, steps=2, seed=1234)
    local = _services(tmp_path / "local", registry, runtime=preview_runtime)  # the local backend, as make_services
    assert local.runtime.serve is None
    here = local.text.text_to_image(local.identity.start(None, ip="10.32.0.1").account, params)
    local.db.dispose()

    account = ray_services.identity.start(None, ip="10.32.0.2").account
    progress: list[tuple[int, int]] = []
    started = time.monotonic()
    there = ray_services.text.text_to_image(account, params, on_step=lambda done, total: progress.append((done, total)))
    elapsed = time.monotonic() - started

    assert progress and progress[-1] == (2, 2), progress  # 100 %, streamed from the replica step by step
    assert [done for done, _ in progress] == [1, 2]
    assert np.array_equal(_pixels(here.files[0]), _pixels(there.files[0]))  # same seed, same pixels
    assert there.parameters["preview"] and there.parameters["model"] == MODEL
    assert there.charged == here.charged > 0
    assert ray_services.ledger.balance(account.id) == 50 - there.charged == ray_services.ledger.total(account.id)
    assert elapsed < 30, elapsed

    # the group's other model runs on the same replica, which lets go of MODEL's pipeline first (one at a time)
    (replica,) = _replicas(serve_app)
    other = ray_services.text.text_to_image(account, TextToImageParams("a lighthouse at dusk", NEIGHBOUR, steps=2, seed=1234))
    assert other.parameters["model"] == NEIGHBOUR and _replicas(serve_app) == [replica]
    stats = _call(serve_app, "stats")
    assert stats["models"] == [MODEL, NEIGHBOUR] and stats["finished"] == 2 and stats["loaded"] == 1, stats
    assert ray_services.catalogue.status(registry.get(NEIGHBOUR))["preview"] is True  # asked of the replica


def test_stop_ends_a_ray_run_within_two_steps_and_refunds(ray_services, serve_app):
    account = ray_services.identity.start(None, ip="10.32.0.3").account
    seen: list[int] = []
    asked: list[int] = []

    def on_step(done: int, total: int) -> None:
        seen.append(done)
        if not asked:  # Stop from another request once the first step arrives
            asked.append(done)
            stopper = threading.Thread(target=ray_services.cancel, args=(account,))
            stopper.start()
            stopper.join(10)

    before = _call(serve_app, "stats")["cancelled"]
    started = time.monotonic()
    with pytest.raises(Cancelled, match="Generation cancelled; nothing was charged"):
        ray_services.text.text_to_image(account, TextToImageParams("a long night", MODEL, steps=100, seed=5), on_step=on_step)
    assert time.monotonic() - started < 30
    assert len(seen) <= 3, seen  # the app stopped listening at once
    stats = _settled(serve_app)
    assert stats["running"] == 0 and stats["cancelled"] == before + 1, stats
    last = stats["last"]
    assert last["outcome"] == "cancelled" and last["steps"] < 100, last
    assert last["steps"] <= last["cancelled_at_step"] + 1, last  # the replica's loop stopped at its next step
    assert last["steps"] <= asked[0] + 2, (last, asked)  # within two steps of the Stop
    assert ray_services.ledger.balance(account.id) == 50 == ray_services.ledger.total(account.id)
    (record,) = ray_services.history.list(account.id, include_failed=True)
    assert record.status == "cancelled"


def test_a_replica_killed_mid_request_refunds_and_the_next_runs_on_a_new_replica(ray_services, serve_app):
    import ray

    account = ray_services.identity.start(None, ip="10.32.0.4").account
    (replica,) = _replicas(serve_app)
    killed: list[int] = []

    def on_step(done: int, total: int) -> None:
        if not killed:
            killed.append(done)
            ray.kill(ray.get_actor(replica, namespace="serve"), no_restart=True)

    with pytest.raises(ModelRefused, match="stopped before this request finished. Nothing was charged"):
        ray_services.text.text_to_image(account, TextToImageParams("a storm", MODEL, steps=100, seed=9), on_step=on_step)
    assert killed
    assert ray_services.ledger.balance(account.id) == 50 == ray_services.ledger.total(account.id)
    (record,) = ray_services.history.list(account.id, include_failed=True)
    assert record.status == "failed"

    started = time.monotonic()
    out = ray_services.text.text_to_image(account, TextToImageParams("after the storm", MODEL, steps=2, seed=10))
    assert out.files and out.charged > 0
    assert time.monotonic() - started < 45  # Serve started a replacement replica; the request waited for it
    assert _replicas(serve_app) and replica not in _replicas(serve_app)
    assert ray_services.ledger.balance(account.id) == 50 - out.charged == ray_services.ledger.total(account.id)


def test_a_replica_shutting_down_finishes_its_request_first(ray_services, serve_app):
    """Deleting the application (as a scale-down or a redeploy stops a replica) mid-request: the replica stops taking
    requests but finishes the one in flight (graceful_shutdown_timeout_s), which is delivered and charged. Last: it
    leaves no application behind."""
    from ray import serve

    account = ray_services.identity.start(None, ip="10.32.0.5").account
    progress: list[tuple[int, int]] = []
    deleting: list[threading.Thread] = []

    def on_step(done: int, total: int) -> None:
        progress.append((done, total))
        if not deleting:
            deleting.append(threading.Thread(target=serve.delete, args=(serve_app,), daemon=True))
            deleting[0].start()

    out = ray_services.text.text_to_image(account, TextToImageParams("a quiet harbour", MODEL, steps=200, seed=3), on_step=on_step)
    assert progress[-1] == (200, 200) and out.files, progress[-3:]
    assert ray_services.ledger.balance(account.id) == 50 - out.charged
    deleting[0].join(60)
    assert not deleting[0].is_alive() and serve_app not in serve.status().applications
