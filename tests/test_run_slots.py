"""Run slots: a slow provider request never holds up another visitor's local generation (separate pools for local
pipelines per device and per model, and for remote providers; endpoints that run as many calls at once as there are
slots; gradio workers enough that reads never wait behind generations), and one visitor cannot fill every slot (their
share is refused before anything is charged)."""
from __future__ import annotations

import statistics
import threading
import time
from contextlib import contextmanager

import pytest
from gradio_client import Client

from pipelines.types import GenerationCancelled
from services.runs.slots import Busy, SlotLimits, Slots, TooManyRuns

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


def test_each_kind_admits_its_queue_and_refuses_one_more():
    slots = Slots(SlotLimits(local=1, remote=2, local_queue=2, remote_queue=3))
    with slots.admitted("a", "local"), slots.admitted("b", "local"):
        with pytest.raises(Busy, match="Busy: 2 generations are running or waiting on this machine.*Nothing was charged"):
            with slots.admitted("c", "local"):
                pass
        assert slots.queued("local") == 2
        with slots.admitted("c", "remote"):  # the other kind has its own queue
            assert slots.queued("remote") == 1
    with slots.admitted("c", "local"):  # a place came free
        assert slots.queued("local") == 1
    assert slots.queued("local") == slots.queued("remote") == 0
    assert (SlotLimits().local_queue, SlotLimits().remote_queue, SlotLimits(remote=12).remote_queue) == (16, 16, 24)
    with pytest.raises(ValueError, match="remote_queue \\(4\\) must be at least the remote slots \\(8\\)"):
        SlotLimits(remote_queue=4)


def test_queues_come_from_the_environment(monkeypatch):
    from services.config import AppSettings

    monkeypatch.setenv("PLAYGROUND_LOCAL_QUEUE", "5")
    monkeypatch.setenv("PLAYGROUND_REMOTE_QUEUE", "9")
    settings = AppSettings.from_env(data_dir="/tmp/unused")
    assert (settings.slot_limits.local_queue, settings.slot_limits.remote_queue, settings.event_concurrency) == (5, 9, 14)


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


def test_a_busy_model_waits_without_holding_the_device_another_model_can_use():
    slots = Slots(SlotLimits(local=2, model=1, remote=1, visitor_local=1, visitor_remote=1))
    ran, go = [], threading.Event()

    def run(visitor: str, model: str, device: str = "cuda:0", remote: bool = False) -> threading.Thread:
        def body() -> None:
            with slots.admitted(visitor, "remote" if remote else "local") as ticket, ticket.held(model=model, device=device):
                ran.append(visitor)
                go.wait(5)
        thread = threading.Thread(target=body)
        thread.start()
        return thread

    first = run("a", "sdxl")
    time.sleep(0.2)
    same_model = run("b", "sdxl")  # waits for the model, holding nothing
    time.sleep(0.2)
    other_model = run("c", "flux")  # takes the device's second slot at once
    other_device = run("d", "sdxl", device="cpu")  # another device is another pool, but the model's one slot is taken
    provider = run("e", "flux.2-pro", remote=True)  # a provider request takes no device or model slot
    time.sleep(0.5)
    assert sorted(ran) == ["a", "c", "e"], ran
    assert (slots.busy("device:cuda:0"), slots.busy("model:sdxl"), slots.busy("model:flux"), slots.busy("remote")) == (2, 1, 1, 1)
    assert slots.busy("local") == 2
    go.set()
    for thread in (first, same_model, other_model, other_device, provider):
        thread.join(5)
    assert sorted(ran) == ["a", "b", "c", "d", "e"] and slots.busy("local") == slots.busy("remote") == 0


def test_a_local_run_holds_its_device_and_its_model_only_while_it_runs(make_services):
    from services.creation.text import TextToImageParams

    services = make_services(local_slots=2)
    slots = services.runner.slots
    account = services.identity.start(None, ip="10.9.0.2").account
    seen = []
    services.text.text_to_image(account, TextToImageParams("a red door", "sdxl-base", steps=2, seed=1),
                                on_step=lambda done, total: seen.append((slots.busy("device:cpu"), slots.busy("model:sdxl-base"))))
    assert seen and set(seen) == {(1, 1)}, seen
    assert slots.busy("local") == 0 and slots.busy("model:sdxl-base") == 0


@contextmanager
def _held_provider_app(tmp_path, tiny_root, monkeypatch, hold_s: float, **settings):
    """The real app with a fake provider whose queued jobs never finish: a remote request is held until its deadline."""
    fake = FakeProvider()
    fake.reset("timeout")
    monkeypatch.setenv("FAL_KEY", "fal-deployer-key")
    monkeypatch.setenv("PLAYGROUND_PROVIDER_URL_FAL", f"{fake.url}/direct-fal")
    monkeypatch.setenv("PLAYGROUND_REMOTE_TIMEOUT_S", str(hold_s))
    monkeypatch.setenv("PLAYGROUND_REMOTE_ALLOW_HOSTS", fake.url.split("//")[1])
    url, demo, services = launch_app(tmp_path / "data", tiny_root, **settings)
    try:
        yield url, fake, services, demo
    finally:
        stop_app(demo, services)
        fake.close()


@pytest.fixture
def held_provider_app(tmp_path, tiny_root, monkeypatch):
    with _held_provider_app(tmp_path, tiny_root, monkeypatch, HOLD_S) as app:
        yield app


def test_four_held_remote_requests_do_not_slow_a_local_run_or_a_read(held_provider_app):
    """While a fake provider holds 4 remote requests (two visitors, their share of 2 each) for HOLD_S, a third
    visitor's local tiny request stays under 2x its idle latency, and reads (/balance, /quote) answer as fast as idle."""
    began = time.monotonic()
    url, fake, services, demo = held_provider_app
    from app import READ_WORKERS

    generation_groups = {fn.concurrency_id: fn.concurrency_limit for fn in demo.fns.values() if isinstance(fn.concurrency_limit, int)}
    assert demo.max_threads == sum(generation_groups.values()) + READ_WORKERS  # reads keep READ_WORKERS whatever runs
    assert generation_groups["text_to_image"] == services.settings.event_concurrency >= 4 + 1

    local = Client(url, verbose=False)
    holders = [Client(url, verbose=False) for _ in range(2)]
    hold_tokens = [client.predict(api_name="/session_start")["token"] for client in holders]
    fast_token = local.predict(api_name="/session_start")["token"]

    def timed(fn) -> float:
        started = time.perf_counter()
        fn()
        return time.perf_counter() - started

    def local_run(seed: int) -> float:
        return timed(lambda: local.predict(prompt="a red door in a white wall", model="sdxl-base", steps=2, seed=seed,
                                           token=fast_token, api_name="/text_to_image"))

    def read() -> float:
        return timed(lambda: (local.predict(token=fast_token, api_name="/balance"),
                              local.predict(token=fast_token, model="flux.2-pro", api_name="/quote")))

    local_run(0)  # warm: the tiny pipeline is loaded once
    idle = statistics.median(local_run(seed) for seed in (1, 2, 3))
    idle_read = statistics.median(read() for _ in range(3))

    held = [client.submit(prompt=f"a lighthouse at dusk {i}", model="flux.2-pro", seed=i, token=token, api_name="/text_to_image")
            for client, token in zip(holders, hold_tokens) for i in range(2)]
    deadline = time.monotonic() + 30

    def posts() -> int:
        return sum(r["method"] == "POST" for r in list(fake.requests))

    while (services.runner.slots.busy("remote") < 4 or posts() < 4) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert services.runner.slots.busy("remote") == 4 and posts() >= 4, (services.runner.slots.busy("remote"), posts())
    held_since = time.monotonic()
    busy = statistics.median(local_run(seed) for seed in (4, 5, 6))
    busy_read = statistics.median(read() for _ in range(3))
    assert services.runner.slots.busy("remote") == 4 and not any(h.done() for h in held), "measured while all 4 were held"
    assert time.monotonic() - held_since < HOLD_S - 2
    print(f"local tiny text-to-image: {idle:.3f} s idle, {busy:.3f} s beside 4 held remote requests ({busy / idle:.2f}x); "
          f"/balance + /quote: {idle_read:.3f} s idle, {busy_read:.3f} s beside them")
    assert busy < 2 * idle, f"a local run took {busy:.2f} s beside 4 held remote requests, {idle:.2f} s idle"
    assert busy_read < 2 * idle_read + 0.1, f"reads took {busy_read:.2f} s beside 4 held remote requests, {idle_read:.2f} s idle"

    for handle in held:  # each held request ends at its deadline, refunded
        with pytest.raises(Exception, match="did not finish within"):
            handle.result(timeout=HOLD_S + 15)
    for client, token in zip(holders, hold_tokens):
        assert client.predict(token=token, api_name="/balance")["balance"] == 50
    assert time.monotonic() - began < 60, f"the test took {time.monotonic() - began:.0f} s"


def test_reads_answer_while_more_generation_calls_wait_than_gradio_has_by_default(tmp_path, tiny_root, monkeypatch):
    """41 generation calls held at once (40 at the provider, one waiting for a slot) would take all of gradio's 40
    default workers, and every read would wait (measured: a new client's first /balance timed out after 5 s); the app
    gives gradio workers for every generation call its endpoints admit plus READ_WORKERS, so reads still answer."""
    from app import READ_WORKERS
    from tests.conftest import ADMIN_KEY

    calls = READ_WORKERS + 1
    with _held_provider_app(tmp_path, tiny_root, monkeypatch, 8, remote_slots=calls - 1, visitor_remote_slots=calls) as app:
        url, fake, services, demo = app
        assert demo.max_threads >= services.settings.event_concurrency + READ_WORKERS
        holder = Client(url, verbose=False, max_workers=calls + 4)
        token = holder.predict(admin_key=ADMIN_KEY, api_name="/session_start")["token"]  # QA: unlimited credits
        held = [holder.submit(prompt=f"a lighthouse {i}", model="flux.2-pro", seed=i, token=token, api_name="/text_to_image")
                for i in range(calls)]
        deadline = time.monotonic() + 20
        while services.runner.slots.busy("remote") < calls - 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert services.runner.slots.busy("remote") == calls - 1
        started = time.perf_counter()
        reader = Client(url, verbose=False)
        reader.predict(token=token, api_name="/balance")
        read_s = time.perf_counter() - started
        print(f"a new client's first /balance beside {calls} held generation calls: {read_s:.3f} s")
        assert read_s < 3 and not any(h.done() for h in held)
        for handle in held:
            with pytest.raises(Exception, match="did not finish within"):
                handle.result(timeout=30)


def test_local_runs_waiting_for_the_device_never_hold_back_a_provider_request(tmp_path, tiny_root, monkeypatch):
    """Local runs that wait for the one device slot fill at most their queue (PLAYGROUND_LOCAL_QUEUE); gradio runs both
    queues' worth of calls per endpoint, so a provider request on the same endpoint still starts at once and ends in
    about the provider's time (before: the endpoint ran local + remote slots = 3 calls, all 3 held by waiting local
    runs, and the provider request waited behind them in gradio's queue). A local run past the queue is refused as busy,
    nothing charged; the admitted ones run once the device is free."""
    with _held_provider_app(tmp_path, tiny_root, monkeypatch, 30, remote_slots=2, local_queue=4, remote_queue=2) as app:
        url, fake, services, demo = app
        fake.reset("ok")
        fake.hold_s = 1.0
        slots = services.runner.slots
        assert services.settings.event_concurrency == 4 + 2
        release, holding = threading.Event(), threading.Event()

        def hold_the_device() -> None:  # a long local run of someone else's: takes the CPU's one slot (1 of the queue)
            with slots.admitted("someone", "local") as ticket, ticket.held(device=services.runtime.slot_device(
                    services.registry.get("sdxl-base")), model="other"):
                holding.set()
                release.wait(60)

        holder = threading.Thread(target=hold_the_device)
        holder.start()
        assert holding.wait(10)
        visitors = [Client(url, verbose=False) for _ in range(6)]
        tokens = [client.predict(api_name="/session_start")["token"] for client in visitors]
        local = [client.submit(prompt=f"a red door {i}", model="sdxl-base", steps=2, seed=i, token=token, api_name="/text_to_image")
                 for i, (client, token) in enumerate(zip(visitors[:5], tokens[:5]))]
        deadline = time.monotonic() + 20
        while slots.queued("local") < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert slots.queued("local") == 4  # the holder and three visitors waiting for the device; two refused
        while sum(job.done() for job in local) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        refused = []
        for job in (job for job in local if job.done()):
            with pytest.raises(Exception, match="Busy: 4 generations are running or waiting") as caught:
                job.result()
            refused.append(str(caught.value))
        assert len(refused) == 2 and all("Nothing was charged" in text for text in refused), refused
        started = time.perf_counter()
        answer = visitors[5].predict(prompt="a lighthouse at dusk", model="flux.2-pro", seed=1, token=tokens[5],
                                     api_name="/text_to_image")
        remote_s = time.perf_counter() - started
        waiting = [job for job in local if not job.done()]
        print(f"a provider request (1 s a job) beside 3 local runs waiting for the device: {remote_s:.2f} s")
        assert answer[0] and remote_s < 6, remote_s
        assert len(waiting) == 3 and slots.busy("local") == 1  # measured while they all still waited
        release.set()
        holder.join(10)
        for job in waiting:
            assert job.result(timeout=60)[0]
        balances = sorted(client.predict(token=token, api_name="/balance")["balance"]
                          for client, token in zip(visitors[:5], tokens[:5]))
        assert balances == [balances[0]] * 3 + [50, 50] and balances[0] < 50, balances  # 50: the guest grant, untouched
        assert issubclass(Busy, TooManyRuns)  # project versions wait and retry on it as on a visitor's share
