"""Remote language models through a local fake on 127.0.0.1 (tests/fake_provider.py, tests/fake_chat.py), with the real
RemoteBackend inside the PipelineRuntime: InferenceClient.chat_completion(stream=True) for Inference Providers names
(together, novita) and the OpenAI-compatible vendor in presets/providers.toml (mistral). A reply's pieces arrive in
order through request.stream and make the returned text; the deadline and Stop end a slow stream at once; a 429 is
retried before the first piece; the key reaches its own origin only; the byte cap ends an endless stream; a chunk that
is not JSON is a malformed answer; and through the Runner a stream ended by the deadline is refunded in full."""
from __future__ import annotations

import threading
import time

import pytest

from . import fake_chat
from .fake_provider import FakeProvider
from pipelines.registry import ModelEntry, load_registry
from pipelines.remote import RemoteBackend, RemoteFailed, RemoteSettings
from pipelines.remote.calls import Busy, Malformed, Refused
from pipelines.remote.chat import sse_pieces
from pipelines.remote.transports import ProvidersError, check_provider, http_providers, transport_of
from pipelines.types import GenerationCancelled, GenerationRequest, Task
from services.errors import UserError
from services.runs.runner import PaidRun, Stage
from services.safety.policy import Surface

SHIPPED = load_registry()
CHAT = [e for e in SHIPPED if e.is_remote and e.is_chat]
# The Hub's provider mapping for the InferenceClient entries: hub id -> (task, the provider's model id, provider)
MAPPING = {e.remote_model: ("conversational", f"{e.provider}/{e.id}", e.provider) for e in CHAT
           if transport_of(e.provider or "") == "client"}
MODELS = ["llama-3.3-70b", "deepseek-v3.1", "mistral-small-3.2"]  # together, novita (own route), the mistral vendor
ROUTES = {"llama-3.3-70b": "/together/v1/chat/completions", "deepseek-v3.1": "/novita/v3/openai/chat/completions",
          "mistral-small-3.2": "/mistral/v1/chat/completions"}
KEYS = {"llama-3.3-70b": "Bearer hf_deployer_token", "deepseek-v3.1": "Bearer hf_deployer_token",
        "mistral-small-3.2": "Bearer mistral-deployer-key"}
MESSAGES = (("system", "You are Maren, a lighthouse keeper. Stay in character."), ("user", "Hello! How is the light?"),
            ("assistant", "Bright as ever."), ("user", "And tonight?"))


@pytest.fixture(scope="module")
def fake():
    server = FakeProvider(MAPPING)
    server.other = server.add_origin()  # a second origin (another port) for redirects
    yield server
    server.close()


def settings_for(fake: FakeProvider, **overrides) -> RemoteSettings:
    options = dict(hf_token="hf_deployer_token", router_url=fake.url, hub_url=fake.url, timeout_s=10, backoff_s=0.01,
                   allow_hosts=(fake.url, fake.other), base_urls={"mistral": f"{fake.url}/mistral/v1"},
                   keys={"mistral": "mistral-deployer-key"})
    options.update(overrides)
    return RemoteSettings(**options)


@pytest.fixture
def runtime(preview_runtime, fake, monkeypatch):
    import huggingface_hub.constants

    # The suite runs with HF_HUB_OFFLINE=1; the provider mapping lookup goes to the fake hub.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(preview_runtime, "remote", RemoteBackend(settings_for(fake)))
    fake.reset()
    return preview_runtime


def use(runtime, monkeypatch, fake, **overrides) -> None:
    monkeypatch.setattr(runtime, "remote", RemoteBackend(settings_for(fake, **overrides)))


def chat(runtime, model: str, cancel: threading.Event | None = None, **fields):
    """One reply through the runtime; returns (result, pieces as streamed, progress calls)."""
    pieces: list[str] = []
    steps: list[tuple[int, int]] = []
    request = GenerationRequest(prompt="And tonight?", messages=MESSAGES, seed=7, stream=pieces.append, **fields)
    result = runtime.run(SHIPPED.get(model), Task.CHAT, request, on_step=lambda done, total: steps.append((done, total)),
                         cancel=cancel)
    return result, pieces, steps


def posts(fake: FakeProvider) -> list[dict]:
    return [r for r in fake.requests if r["method"] == "POST"]


def auth(request: dict) -> str | None:
    return {k.lower(): v for k, v in request["headers"].items()}.get("authorization")


@pytest.mark.parametrize("model", MODELS)
def test_pieces_arrive_in_order_and_make_the_reply(runtime, fake, model):
    entry = SHIPPED.get(model)
    result, pieces, steps = chat(runtime, model)
    assert pieces == list(fake_chat.REPLY)
    assert "".join(pieces) == result.texts[0] == "Hello, traveller. The light is steady tonight."
    cap = entry.chat.max_new_tokens
    assert steps[0] == (0, cap) and steps[-1] == (len(pieces), cap)
    assert [done for done, _ in steps] == sorted(done for done, _ in steps)
    params = result.parameters
    assert result.seeds == [7] and not result.images
    assert params["messages"] == 4 and params["reply_tokens"] == len(pieces) and params["attempts"] == 1
    assert (params["max_new_tokens"], params["temperature"]) == (cap, entry.chat.temperature)
    assert params["provider"] == entry.provider and params["remote_model"] == entry.remote_model
    assert params["model"] == model and params["task"] == "chat" and params["preview"] is False
    [sent] = posts(fake)
    assert sent["path"] == ROUTES[model] and auth(sent) == KEYS[model]
    body = sent["json"]
    assert body["stream"] is True and body["max_tokens"] == cap
    assert body["messages"] == [{"role": r, "content": c} for r, c in MESSAGES]
    if model == "mistral-small-3.2":  # the vendor's own model name and seed field (presets/providers.toml)
        assert body["model"] == "mistral-small-2506" and body["random_seed"] == 7 and "seed" not in body
        assert params["transport"] == "http" and params["provider_name"] == "Mistral AI"
        assert params["provider_model"] == "mistral-small-2506"
    else:  # InferenceClient: the Hub's mapping gives the provider's model id
        assert body["model"] == f"{entry.provider}/{entry.id}" and body["seed"] == 7
        assert params["transport"] == "InferenceClient"


@pytest.mark.parametrize("model", ["llama-3.3-70b", "mistral-small-3.2"])
def test_the_deadline_ends_a_slow_stream(runtime, fake, monkeypatch, model):
    use(runtime, monkeypatch, fake, timeout_s=1.5, request_timeout_s=30)
    fake.reset("slow")  # the first piece at once, then one every 2 s forever
    pieces: list[str] = []
    started = time.monotonic()
    with pytest.raises(RemoteFailed, match="did not finish within 1.5 seconds") as failed:
        runtime.run(SHIPPED.get(model), Task.CHAT, GenerationRequest(prompt="hi", messages=MESSAGES, stream=pieces.append))
    assert time.monotonic() - started < 3  # the deadline, not the provider's next piece, ended it
    assert "refunded" in str(failed.value) and pieces == [fake_chat.SLOW_FIRST]


@pytest.mark.parametrize("model", ["deepseek-v3.1", "mistral-small-3.2"])
def test_stop_ends_a_slow_stream(runtime, fake, monkeypatch, model):
    use(runtime, monkeypatch, fake, timeout_s=30, request_timeout_s=30)
    fake.reset("slow")
    cancel = threading.Event()
    timer = threading.Timer(0.6, cancel.set)  # the Stop button, from another thread
    started = time.monotonic()
    timer.start()
    with pytest.raises(GenerationCancelled):
        chat(runtime, model, cancel=cancel)
    timer.join()
    assert time.monotonic() - started < 2  # Stop at 0.6 s; the provider's next piece would come at 2 s
    # the abandoned worker hangs up at the provider's next piece (2 s apart), and the provider's stream ends
    [stream] = fake.chat_streams
    assert stream["ended"].wait(5) and stream["bytes"] < 1000


@pytest.mark.parametrize("model", ["llama-3.3-70b", "mistral-small-3.2"])
def test_429_before_the_first_piece_is_retried_once(runtime, fake, model):
    fake.reset("429-then-ok")
    result, pieces, _ = chat(runtime, model)
    assert result.parameters["attempts"] == 2 and len(posts(fake)) == 2
    assert pieces == list(fake_chat.REPLY) and result.texts[0] == "".join(fake_chat.REPLY)  # nothing repeated


@pytest.mark.parametrize("model", ["llama-3.3-70b", "mistral-small-3.2"])
def test_a_stream_dropped_after_its_first_pieces_is_not_retried(runtime, fake, model):
    fake.reset("drop")
    pieces: list[str] = []
    with pytest.raises(RemoteFailed, match="broke off in the middle of its answer"):
        runtime.run(SHIPPED.get(model), Task.CHAT, GenerationRequest(prompt="hi", messages=MESSAGES, stream=pieces.append))
    assert len(posts(fake)) == 1  # a retry would hand the same pieces on again
    assert pieces == list(fake_chat.REPLY[: len(pieces)])


def test_an_event_stream_reads_its_pieces_up_to_done():
    lines = [": keep-alive", "", "event: message", 'data: {"choices": [{"index": 0, "delta": {"role": "assistant"}}]}',
             'data: {"choices": [{"index": 0, "delta": {"content": "Hi"}}]}', "",
             'data: {"choices": [{"index": 0, "delta": {"content": " there"}, "finish_reason": "stop"}]}',
             'data: {"choices": [], "usage": {"completion_tokens": 2}}', "data: [DONE]",
             'data: {"choices": [{"delta": {"content": "after done"}}]}']
    assert list(sse_pieces(lines)) == ["Hi", " there"]
    with pytest.raises(Busy):  # an error event with a 5xx code: worth a retry before the first piece
        list(sse_pieces(['data: {"error": {"message": "overloaded", "code": 503}}']))
    with pytest.raises(Refused):
        list(sse_pieces(['data: {"error": {"message": "bad request", "code": "400"}}']))
    with pytest.raises(Malformed):
        list(sse_pieces(['data: {"choices": [{"delta": {"content": 5}}]}']))


@pytest.mark.parametrize("model", ["llama-3.3-70b", "mistral-small-3.2"])
def test_the_key_goes_to_its_own_origin_only(runtime, fake, model):
    fake.reset("redirect")
    fake.redirect_url = fake.other  # the chat POST is sent on to another origin (another port)
    result, pieces, _ = chat(runtime, model)
    assert result.texts[0] == "".join(fake_chat.REPLY)
    own_port, other_port = (int(url.rsplit(":", 1)[1]) for url in (fake.url, fake.other))
    first, second = posts(fake)
    assert first["server"] == own_port and auth(first) == KEYS[model]
    assert second["server"] == other_port and second["path"] == ROUTES[model]
    elsewhere = [r for r in fake.requests if r["server"] != own_port]
    assert elsewhere and all(auth(r) is None for r in elsewhere)
    assert all(r["server"] == own_port for r in fake.requests if auth(r) is not None)


@pytest.mark.parametrize("model", ["llama-3.3-70b", "mistral-small-3.2"])
def test_the_byte_cap_ends_an_endless_stream(runtime, fake, monkeypatch, model):
    use(runtime, monkeypatch, fake, max_chat_bytes=200_000)
    fake.reset("huge")  # chunks without text, for ever
    started = time.monotonic()
    with pytest.raises(RemoteFailed, match=r"larger than this deployment accepts \(more than 0.2 MB\)"):
        chat(runtime, model)
    assert time.monotonic() - started < 5
    [stream] = fake.chat_streams
    assert stream["ended"].wait(2)  # the connection was closed: the provider's endless stream ended too


@pytest.mark.parametrize("model", ["llama-3.3-70b", "mistral-small-3.2"])
def test_a_reply_longer_than_its_cap_ends_at_the_cap(runtime, fake, model):
    fake.reset("endless-text")
    result, pieces, steps = chat(runtime, model, max_new_tokens=20)
    cap_chars = 20 * 16  # pipelines/remote/chat.py CHARS_PER_TOKEN
    assert len("".join(pieces)) == cap_chars and result.texts[0] == "".join(pieces).strip()
    assert result.parameters["truncated"] is True and steps[-1] == (20, 20)


@pytest.mark.parametrize("model", ["llama-3.3-70b", "mistral-small-3.2"])
@pytest.mark.parametrize("mode,message", [("malformed", "without a usable output"),
                                          ("error", "refused the request (HTTP 422")])
def test_a_bad_answer_fails_with_its_reason(runtime, fake, model, mode, message):
    fake.reset(mode)
    with pytest.raises(RemoteFailed, match=message.replace("(", r"\(")):
        chat(runtime, model)
    assert len(posts(fake)) == 1  # neither is retried


def test_chat_is_declared_per_vendor():
    assert http_providers()["mistral"].chat is not None and http_providers()["fal"].chat is None
    check_provider("mistral", (Task.CHAT,))
    check_provider("together", (Task.CHAT,))
    with pytest.raises(ValueError, match="has no chat API"):
        check_provider("fal", (Task.CHAT,))
    with pytest.raises(ValueError, match="no request body"):
        check_provider("mistral", (Task.TEXT_TO_IMAGE,))
    with pytest.raises(ValueError, match="has no chat API"):
        ModelEntry.model_validate({"id": "x", "name": "X", "family": "causal-lm", "backend": "remote", "provider": "gemini",
                                   "remote_model": "m", "tasks": ["chat"], "chat": {"context_tokens": 8192},
                                   "licence": {"name": "test"}})


def test_a_vendor_without_chat_cannot_take_a_chat_body(tmp_path):
    path = tmp_path / "providers.toml"
    path.write_text('[providers.x]\nlabel = "X"\nbase_url = "https://x.example"\nkey_env = "X_KEY"\n'
                    'auth_header = "Authorization"\n[providers.x.body]\n"chat" = { model = "{model}" }\n')
    with pytest.raises(ProvidersError, match="provider 'x'.*chat API"):
        http_providers(path)


# -- through the Runner: a stream ended by the deadline is refunded in full ------------------------------------------
@pytest.fixture
def db_url(tmp_path):
    return f"sqlite:///{tmp_path / 'playground.db'}"


@pytest.fixture
def services(make_services, runtime):
    return make_services()


def test_a_slow_stream_ended_by_the_deadline_is_refunded_through_the_runner(services, runtime, fake, monkeypatch):
    use(runtime, monkeypatch, fake, timeout_s=1.5, request_timeout_s=30)
    account = services.identity.start(None, ip="10.0.0.7").account
    with services.db.begin() as conn:
        services.ledger.adjust(conn, account.id, 50, "test", "credits for a chat")
    before = services.ledger.balance(account.id)
    entry = SHIPPED.get("mistral-small-3.2")
    request = GenerationRequest(prompt="And tonight?", messages=MESSAGES, seed=3)
    run = PaidRun(stages=(Stage("reply", entry, Task.CHAT, request, "message"),), surface=Surface.CHAT_SFW,
                  replay={"model": entry.id, "task": "chat"})
    fake.reset("slow")
    started = time.monotonic()
    with pytest.raises(UserError, match="did not finish within"):
        services.runner.run(account, run)
    assert time.monotonic() - started < 3
    assert services.ledger.balance(account.id) == before == services.ledger.total(account.id)
    assert [e["kind"] for e in services.ledger.entries(account.id)][:2] == ["refund", "reserve"]
    fake.reset("ok")  # and the same run, answered, is charged once at the message price
    output = services.runner.run(account, run)
    assert output.parameters["reply"] == "".join(fake_chat.REPLY) and output.parameters["provider"] == "mistral"
    assert services.ledger.balance(account.id) == before - output.charged and output.charged > 0
