"""API-only models through a local fake provider on 127.0.0.1 (tests/fake_provider.py), on the one paid path: every
remote task returns a stored PNG/MP4 of the requested size naming provider and model; an error, a timeout and a
malformed answer refund exactly and leave no file; a 429 then success charges once. No connection leaves 127.0.0.1
(the session-wide guard in conftest.py refuses any other address)."""
from __future__ import annotations

import io
import json
import socket
import threading

import pytest
from PIL import Image

from .fake_provider import FakeProvider
from pipelines.registry import ModelEntry, Registry, load_registry
from pipelines.remote import RemoteBackend, RemoteSettings
from pipelines.types import GenerationRequest, Task
from services.errors import Cancelled, UserError
from services.media.mp4 import probe_mp4, read_mp4_metadata
from services.media.png import read_png_metadata
from services.runs.runner import PaidRun, Stage
from services.safety.policy import Surface

SHIPPED = load_registry()

# Entries built here so that each InferenceClient call (image_to_image, image_to_video, text_to_video) runs too;
# the shipped registry reaches InferenceClient through Hunyuan Image 3 (text_to_image, fal-ai).
CLIENT_ENTRIES = [
    {"id": "client-edit", "tasks": ["edit"], "remote_model": "test-org/edit-model", "sizes": "api_image"},
    {"id": "client-i2v", "tasks": ["image-to-video"], "remote_model": "test-org/i2v-model", "sizes": "api_video"},
    {"id": "client-t2v", "tasks": ["text-to-video"], "remote_model": "test-org/t2v-model", "sizes": "api_video"},
]
MAPPING = {
    "tencent/HunyuanImage-3.0": ("text-to-image", "fal-ai/hunyuan-image/v3/text-to-image"),
    "test-org/edit-model": ("image-to-image", "fal-ai/test/edit"),
    "test-org/i2v-model": ("image-to-video", "fal-ai/test/image-to-video"),
    "test-org/t2v-model": ("text-to-video", "fal-ai/test/text-to-video"),
}


def client_entry(spec: dict) -> ModelEntry:
    sizes = SHIPPED.get("flux.2-pro" if spec["sizes"] == "api_image" else "kling-2.6-pro").sizes
    video = spec["sizes"] == "api_video"
    return ModelEntry.model_validate({
        "id": spec["id"], "name": f"Test {spec['id']}", "family": "test", "backend": "remote", "provider": "fal-ai",
        "remote_model": spec["remote_model"], "tasks": spec["tasks"], "sizes": {r: dict(t) for r, t in sizes.items()},
        "defaults": {"steps": 1, "guidance": 0.0, **({"num_frames": 121, "fps": 24} if video else {})},
        "licence": {"name": "test"},
    })


REGISTRY = Registry([*SHIPPED, *(client_entry(spec) for spec in CLIENT_ENTRIES)])
CASES = [(e.id, t) for e in REGISTRY if e.is_remote for t in e.tasks if not t.is_text]  # chat: test_remote_chat.py


@pytest.fixture(scope="module")
def fake():
    server = FakeProvider(MAPPING)
    yield server
    server.close()


@pytest.fixture
def db_url(tmp_path):  # the ledger's exactly-once rules are tested on both databases elsewhere
    return f"sqlite:///{tmp_path / 'playground.db'}"


def settings_for(fake: FakeProvider, **overrides) -> RemoteSettings:
    # The fake serves on 127.0.0.1, which a remote call reaches only when the deployer allow-lists it.
    options = dict(hf_token="hf_deployer_token", router_url=fake.url, hub_url=fake.url, timeout_s=10, backoff_s=0.01,
                   allow_hosts=(fake.url,),
                   base_urls={"fal": f"{fake.url}/direct-fal", "gemini": f"{fake.url}/gemini/v1beta", "wavespeed-api": fake.url},
                   keys={"fal": "fal-deployer-key", "gemini": "gemini-deployer-key", "wavespeed-api": "ws-deployer-key"})
    options.update(overrides)
    return RemoteSettings(**options)


@pytest.fixture
def services(make_services, preview_runtime, fake, monkeypatch):
    import huggingface_hub.constants

    # The suite runs with HF_HUB_OFFLINE=1 (no downloads); the provider mapping lookup goes to the fake hub.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(preview_runtime, "remote", RemoteBackend(settings_for(fake)))
    monkeypatch.setattr(preview_runtime, "registry", REGISTRY)
    built = make_services()
    from services.accounts.plans import load_plans

    plans = load_plans().with_prices({spec["id"]: 7 for spec in CLIENT_ENTRIES})
    built.plans = plans
    built.runner.plans = plans
    built.catalogue._plans = plans
    built.catalogue._registry = REGISTRY
    fake.reset()
    return built


def rich_account(services):
    account = services.identity.start(None, ip="10.0.0.5").account
    with services.db.begin() as conn:
        services.ledger.adjust(conn, account.id, 1000, "test", "credits for remote runs")
    return account


def stage_for(entry: ModelEntry, task: Task, ratio: str = "16:9") -> Stage:
    tier = next(iter(entry.sizes[ratio]))
    width, height = entry.sizes[ratio][tier]
    start = Image.new("RGB", (width, height), (90, 60, 30))
    request = GenerationRequest(
        prompt="a lighthouse keeper waves from the gallery", width=width, height=height, steps=entry.defaults.steps,
        guidance=entry.defaults.guidance, seed=5, num_frames=entry.defaults.num_frames if task.is_video else None,
        fps=entry.defaults.fps if task.is_video else None,
        reference_images=(start,) if task.takes_images else (),
        script="Hello, I keep the light." if "script" in entry.takes else None,
        voice="Aria" if "voice" in entry.takes else None,
    )
    return Stage("generate", entry, task, request, tier)


def paid(services, account, model: str, task: str):
    entry = REGISTRY.get(model)
    stage = stage_for(entry, Task(task))
    run = PaidRun(stages=(stage,), surface=Surface.IMAGE, replay={"model": model, "task": task})
    return stage, services.runner.run(account, run)


def balance(services, account) -> int:
    return services.ledger.balance(account.id)


def stored_files(services) -> list:
    return sorted(p for p in services.store.root.rglob("*") if p.is_file())


@pytest.mark.parametrize("model,task", CASES)
def test_each_remote_task_stores_the_requested_size_naming_provider_and_model(services, fake, model, task):
    account = rich_account(services)
    before = balance(services, account)
    stage, output = paid(services, account, model, task)
    entry = REGISTRY.get(model)
    quote = services.plans.quote(entry, Task(task), stage.tier, 1)
    assert output.charged == quote.total and balance(services, account) == before - quote.total
    [path] = output.files
    if Task(task).is_video:
        info = probe_mp4(path)  # FFmpeg reads it back
        assert (info.width, info.height) == (stage.request.width, stage.request.height) and info.frames > 0
    else:
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size == (stage.request.width, stage.request.height)
        record = read_png_metadata(path.read_bytes())["record"]
        assert record["provider"] == entry.provider and record["remote_model"] == entry.remote_model_for(Task(task))
    params = output.parameters
    assert params["provider"] == entry.provider and params["remote_model"] == entry.remote_model_for(Task(task))
    assert params["model"] == model and params["preview"] is False
    # The deployer's key went to the provider; nothing left 127.0.0.1 (the guard would have refused it).
    sent = [r for r in fake.requests if r["method"] == "POST"]
    assert sent, "the provider got no request"
    headers = {k.lower(): v for k, v in sent[0]["headers"].items()}
    expected = {"fal-ai": "Bearer hf_deployer_token", "fal": "Key fal-deployer-key", "wavespeed-api": "Bearer ws-deployer-key"}
    if entry.provider == "gemini":
        assert headers["x-goog-api-key"] == "gemini-deployer-key"
    else:
        assert headers["authorization"] == expected[entry.provider]
    if "script" in entry.takes:
        assert sent[0]["json"]["text_input"] == "Hello, I keep the light." and sent[0]["json"]["voice"] == "Aria"


FAILURES = [
    ("error", "refused the request (HTTP 422", "will not help"),
    ("timeout", "did not finish within", "try again later"),
    ("malformed", "without a usable output", "try again"),
]


@pytest.mark.parametrize("model,task", [("flux.2-pro", "text-to-image"), ("hunyuan-image-3", "text-to-image"),
                                        ("nano-banana-2-edit", "edit"), ("kling-2.6-pro", "image-to-video"),
                                        ("client-i2v", "image-to-video"), ("hunyuan-image-3-instruct", "text-to-image")])
@pytest.mark.parametrize("mode,message,advice", FAILURES)
def test_failures_refund_exactly_and_leave_no_file(services, fake, preview_runtime, monkeypatch, model, task, mode, message, advice):
    monkeypatch.setattr(preview_runtime, "remote", RemoteBackend(settings_for(fake, timeout_s=1.5, request_timeout_s=1.0)))
    account = rich_account(services)
    before = balance(services, account)
    files_before = stored_files(services)
    fake.reset(mode)
    with pytest.raises(UserError) as refused:
        paid(services, account, model, task)
    text = str(refused.value)
    label = preview_runtime.remote.label(REGISTRY.get(model))
    assert message in text and advice in text and label in text and "refunded" in text
    assert balance(services, account) == before == services.ledger.total(account.id)
    assert stored_files(services) == files_before
    kinds = [e["kind"] for e in services.ledger.entries(account.id)][:2]
    assert kinds == ["refund", "reserve"]  # newest first: reserved, then refunded in full


@pytest.mark.parametrize("model,task", [("flux.2-pro", "edit"), ("hunyuan-image-3", "text-to-image"),
                                        ("nano-banana-2", "text-to-image")])
def test_429_then_success_charges_once(services, fake, model, task):
    account = rich_account(services)
    before = balance(services, account)
    fake.reset("429-then-ok")
    stage, output = paid(services, account, model, task)
    quote = services.plans.quote(REGISTRY.get(model), Task(task), stage.tier, 1)
    assert output.charged == quote.total and balance(services, account) == before - quote.total
    assert output.parameters["attempts"] == 2
    assert [e["kind"] for e in services.ledger.entries(account.id)].count("reserve") == 1
    submits = [r for r in fake.requests if r["method"] == "POST"]
    assert len(submits) == 2


def test_stop_ends_a_queued_job_refunds_and_cancels_it_at_the_provider(services, fake, preview_runtime, monkeypatch):
    monkeypatch.setattr(preview_runtime, "remote", RemoteBackend(settings_for(fake, timeout_s=30)))
    account = rich_account(services)
    before = balance(services, account)
    fake.reset("timeout")  # the job never finishes by itself
    timer = threading.Timer(0.6, lambda: services.runner.cancel(account))
    timer.start()
    with pytest.raises(Cancelled):
        paid(services, account, "kling-2.6-pro", "text-to-video")
    timer.join()
    assert balance(services, account) == before
    assert len(fake.cancelled) == 1  # fal's cancel_url got the PUT


def test_without_a_key_the_model_is_listed_but_refused_before_any_charge(services, preview_runtime, monkeypatch):
    monkeypatch.setattr(preview_runtime, "remote", RemoteBackend(RemoteSettings(keys={}, hf_token=None)))
    monkeypatch.delenv("FAL_KEY", raising=False)
    account = rich_account(services)
    before = balance(services, account)
    status = services.catalogue.status(REGISTRY.get("flux.2-pro"))
    assert status["runnable"] is False and "FAL_KEY" in status["note"]
    with pytest.raises(UserError, match="no key for it"):
        paid(services, account, "flux.2-pro", "text-to-image")
    assert balance(services, account) == before


def test_the_guard_refuses_any_address_but_loopback(only_loopback):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(ConnectionRefusedError, match="127.0.0.1"):
            sock.connect(("10.255.255.1", 80))
    finally:
        sock.close()
    only_loopback.remove("('10.255.255.1', 80)")


def test_app_start_up_opens_no_outside_connection(tmp_path, tiny_root, only_loopback, monkeypatch):
    """The start-up path with the real remote settings (no keys, default provider URLs): services, the registry's
    provider checks and the whole UI are built, and nothing dials out (every app launch of the suite runs under the
    same guard too)."""
    import app as app_module
    from services.config import AppSettings

    for name in ("FAL_KEY", "GEMINI_API_KEY", "WAVESPEED_API_KEY", "HF_TOKEN", "PLAYGROUND_HF_TOKEN", "PLAYGROUND_HF_ROUTER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PLAYGROUND_TINY_DIR", str(tiny_root))
    before = list(only_loopback)
    demo, _, app_services = app_module.create(AppSettings.from_env(data_dir=tmp_path / "data", preview="force", device="cpu"))
    try:
        models = {m["id"]: m for m in app_services.catalogue.models()}
        assert models["flux.2-pro"]["weights"] == "remote" and models["flux.2-pro"]["runnable"] is False
        assert demo is not None
    finally:
        app_services.close()
    assert only_loopback == before


def test_video_with_voice_keeps_the_providers_file(services, fake):
    account = rich_account(services)
    _, output = paid(services, account, "kling-2.6-pro-voice", "image-to-video")
    sent = [r for r in fake.requests if r["method"] == "POST"][0]["json"]
    assert sent["generate_audio"] is True and sent["start_image_url"].startswith("data:image/png;base64,")
    # the provider's streams as it made them (a soundtrack would survive), not a re-encode: remuxed only to add the
    # settings tags (services/media/mp4.py)
    stored = packets(output.files[0].read_bytes())
    served = [packets(data) for data, kind in fake.files.values() if kind == "video/mp4"]
    assert stored and stored in served
    assert read_mp4_metadata(output.files[0])["record"]["model"] == "kling-2.6-pro-voice"


def packets(data: bytes) -> list[tuple[int, bytes]] | None:
    """A video's packets (stream, bytes) as PyAV demuxes them; None for a file that is not a video (the fake serves
    malformed ones to other tests)."""
    import av

    try:
        with av.open(io.BytesIO(data)) as container:
            return [(p.stream.index, bytes(p)) for p in container.demux() if p.size]
    except av.error.FFmpegError:
        return None


def test_decode_image_resizes_a_rounded_provider_size():
    from pipelines.remote.backend import decode_image

    buffer = io.BytesIO()
    Image.new("RGB", (1016, 1024), "red").save(buffer, format="PNG")
    assert decode_image(buffer.getvalue(), 1024, 1024).size == (1024, 1024)


def test_talking_avatar_speaks_a_checked_script_in_a_preset_voice(services, fake):
    from services.accounts.identity import HFUser
    from services.creation.text import TextToImageParams
    from services.creation.video import VideoError
    from services.safety.policy import PromptRefused

    member = services.identity.start(None, ip="10.3.1.5", hf_user=HFUser("91", "m")).account
    with services.db.begin() as conn:
        services.ledger.adjust(conn, member.id, 1000, "test", "credits for remote runs")
    image = services.text.text_to_image(member, TextToImageParams(prompt="a portrait", model="sdxl-base", steps=2, aspect_ratio="1:1"))
    before = balance(services, member)
    with pytest.raises(VideoError, match="speaks a script"):
        services.video.image_to_video(member, image.request_id, 0, "smile-nod", model="avatar-voice", aspect_ratio="1:1")
    with pytest.raises(VideoError, match="Voice 'Nobody'"):
        services.video.image_to_video(member, image.request_id, 0, "smile-nod", model="avatar-voice", script="Hi.", voice="Nobody")
    with pytest.raises(VideoError, match="does not speak a script"):
        services.video.image_to_video(member, image.request_id, 0, "smile-nod", model="kling-2.6-pro", script="Hi.")
    with pytest.raises(PromptRefused):  # the SFW policy reads the script like a video prompt
        services.video.image_to_video(member, image.request_id, 0, "smile-nod", model="avatar-voice", script="take off your clothes, fully nude")
    assert balance(services, member) == before and not [r for r in fake.requests if r["method"] == "POST"]
    output = services.video.image_to_video(member, image.request_id, 0, "smile-nod", model="avatar-voice", aspect_ratio="1:1",
                                           script="Welcome to the lighthouse.", voice="George")
    assert output.charged == 135 and balance(services, member) == before - 135
    sent = [r for r in fake.requests if r["method"] == "POST"][0]
    assert sent["path"] == "/direct-fal/fal-ai/ai-avatar/single-text"
    assert (sent["json"]["text_input"], sent["json"]["voice"]) == ("Welcome to the lighthouse.", "George")
    assert output.parameters["stages"][0]["script"] == "Welcome to the lighthouse."
    assert probe_mp4(output.video).width == 960
