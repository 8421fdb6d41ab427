"""Stop: a running generation ends at its next denoising step and is refunded in full (service and API)."""
from __future__ import annotations

import threading
import time

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from services.creation.text import TextToImageParams
from services.errors import Cancelled


def test_stop_ends_a_generation_within_one_step_and_refunds(make_services):
    services = make_services()
    account = services.identity.start(None, ip="10.7.0.1").account
    steps_seen: list[tuple[int, int]] = []
    stopper: list[threading.Thread] = []

    def on_step(done: int, total: int) -> None:
        steps_seen.append((done, total))
        if done == 3:  # the visitor presses Stop from another request while step 3 is reported
            stopper.append(threading.Thread(target=services.cancel, args=(account,)))
            stopper[0].start()
            stopper[0].join()

    with pytest.raises(Cancelled, match="Generation cancelled; nothing was charged"):
        services.text.text_to_image(account, TextToImageParams("a lighthouse", "sdxl-base", steps=50, count=2), on_step=on_step)
    done, total = steps_seen[-1]
    assert total == 100 and done <= 4, steps_seen  # stopped at the step in flight, not after the batch
    assert services.ledger.balance(account.id) == 50 == services.ledger.total(account.id)
    (record,) = services.history.list(account.id, include_failed=True)
    assert record.status == "cancelled"
    assert [e["kind"] for e in reversed(services.ledger.entries(account.id, request_id=record.id))] == ["reserve", "refund"]
    assert services.cancel(account) == 0  # nothing left running


def test_cancel_through_the_api(app_server, client):
    url, services = app_server
    token = client.predict(api_name="/session_start")["token"]
    account = services.identity.resolve(token)
    outcome: dict = {}

    def generate():
        try:
            Client(url, verbose=False).predict(prompt="a long night", model="sdxl-base", steps=200, count=8, token=token,
                                               api_name="/text_to_image")
            outcome["result"] = "finished"
        except AppError as exc:
            outcome["error"] = str(exc)
        outcome["ended"] = time.monotonic()

    worker = threading.Thread(target=generate)
    worker.start()
    deadline = time.monotonic() + 60
    while not services.jobs.running(account.id) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert services.jobs.running(account.id), "the generation never started"
    asked = time.monotonic()
    assert client.predict(token, api_name="/cancel") == {"cancelled": 1}
    worker.join(60)
    assert "Generation cancelled; nothing was charged" in outcome.get("error", ""), outcome
    assert outcome["ended"] - asked < 10  # 1,600 steps were planned; it stopped at the next one
    assert client.predict(token, api_name="/balance")["balance"] == 50
    assert client.predict(token, api_name="/cancel") == {"cancelled": 0}
