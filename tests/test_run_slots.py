"""Run slots: a slow provider request never holds up another visitor's local generation (separate pools for local
pipelines and remote providers, and endpoints that run as many calls at once as there are slots), and one visitor
cannot fill every slot (their share is refused before anything is charged)."""
from __future__ import annotations

import statistics
import threading
import time

import pytest
from gradio_client import Client

from pipelines.types import GenerationCancelled
from services.runs.slots import SlotLimits, Slots, TooManyRuns

from .conftest import launch_app, stop_app
from .fake_provider import FakeProvider

HOLD_S = 20  # how long the fake provider holds the remote request (its deadline ends it, refunded)


def test_a_visitor_gets_their_share_and_stop_ends_a_wait():
    slots = Slots(SlotLimits(local=1, remote=2, visitor_local=1, visitor_remote=2))
    with slots.admitted("a", "local") as ticket:
        with pytest.raises(TooManyRuns, match="You already have 1 generation running on this machine.*Nothing was charged"):
            with slots.admitted("a", "local"):
                pass
        with slots.admitted("a", "remote"), slots.admitted("a", "remote"):  # the other pool is separate
            with pytest.raises(TooManyRuns, match="2 requests running at a provider"):
                with slots.admitted("a", "remote"):
                    pass
        with ticket.held():
            assert slots.busy("local") == 1
            with slots.admitted("a", "local") as inner, inner.held():  # a run inside a run uses the outer slot
                assert slots.busy("local") == 1
            # another visitor waits for the one local slot; Stop ends the wait
            stop, outcome = threading.Event(), []

            def other() -> None:
                with slots.admitted("b", "local") as theirs:
                    try:
                        with theirs.held(stop):
                            outcome.append("ran")
                    except GenerationCancelled:
                        outcome.append("stopped")

            waiter = threading.Thread(target=other)
            waiter.start()
            time.sleep(0.3)
            assert outcome == []
            stop.set()
            waiter.join(2)
            assert outcome == ["stopped"]
    assert slots.busy("local") == 0
    with slots.admitted("a", "local") as again, again.held():  # everything was given back
        assert slots.busy("local") == 1


def test_a_visitor_over_their_share_is_refused_with_nothing_charged(make_services):
    from services.creation.text import TextToImageParams

    services = make_services()
    account = services.identity.start(None, ip="10.9.0.1").account
    balance = services.ledger.balance(account.id)
    with services.runner.slots.admitted(account.id, "local"):  # a run of theirs is under way
        with pytest.raises(TooManyRuns, match="wait for it to finish"):
            services.text.text_to_image(account, TextToImageParams("a red door", "sdxl-base", steps=2, seed=1))
    assert services.ledger.balance(account.id) == balance and services.ledger.entries(account.id)[0]["kind"] == "grant"
    services.text.text_to_image(account, TextToImageParams("a red door", "sdxl-base", steps=2, seed=1))  # then it runs


@pytest.fixture
def held_provider_app(tmp_path, tiny_root, monkeypatch):
    fake = FakeProvider()
    fake.reset("timeout")  # queued jobs never finish: the request is held until its deadline
    monkeypatch.setenv("FAL_KEY", "fal-deployer-key")
    monkeypatch.setenv("PLAYGROUND_PROVIDER_URL_FAL", f"{fake.url}/direct-fal")
    monkeypatch.setenv("PLAYGROUND_REMOTE_TIMEOUT_S", str(HOLD_S))
    monkeypatch.setenv("PLAYGROUND_REMOTE_ALLOW_HOSTS", fake.url.split("//")[1])
    url, demo, services = launch_app(tmp_path / "data", tiny_root)
    try:
        yield url, fake, services
    finally:
        stop_app(demo, services)
        fake.close()


def test_a_held_remote_request_does_not_slow_another_visitors_local_run(held_provider_app):
    url, fake, services = held_provider_app
    waiting, local = Client(url, verbose=False), Client(url, verbose=False)
    slow_token = waiting.predict(api_name="/session_start")["token"]
    fast_token = local.predict(api_name="/session_start")["token"]

    def local_run(seed: int) -> float:
        started = time.perf_counter()
        local.predict(prompt="a red door in a white wall", model="sdxl-base", steps=2, seed=seed, token=fast_token,
                      api_name="/text_to_image")
        return time.perf_counter() - started

    local_run(0)  # warm: the tiny pipeline is loaded once
    idle = statistics.median(local_run(seed) for seed in (1, 2, 3))

    held = waiting.submit(prompt="a lighthouse at dusk", model="flux.2-pro", token=slow_token, api_name="/text_to_image")
    deadline = time.monotonic() + 30
    while not any(r["method"] == "POST" for r in fake.requests) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert any(r["method"] == "POST" for r in fake.requests), "the remote request never reached the provider"
    held_since = time.monotonic()
    busy = statistics.median(local_run(seed) for seed in (4, 5, 6))
    assert time.monotonic() - held_since < HOLD_S - 2 and not held.done(), "the local runs were measured while the remote one was held"
    assert busy < 2 * idle, f"a local run took {busy:.2f} s beside a held remote request, {idle:.2f} s idle"
    print(f"local tiny text-to-image: {idle:.3f} s idle, {busy:.3f} s beside a held remote request ({busy / idle:.2f}x)")

    with pytest.raises(Exception, match="did not finish within"):  # the held request ends at its deadline, refunded
        held.result(timeout=HOLD_S + 30)
    assert waiting.predict(token=slow_token, api_name="/balance")["balance"] == 50
