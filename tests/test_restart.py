"""A restart on the same database: balances, history and files survive; a killed process's reservation
is refunded at the next start, while a live instance's reservation is left alone."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from PIL import Image

from services.creation.text import TextToImageParams

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import sys, time
from services.config import AppSettings
from services.container import build_services
from services.creation.text import TextToImageParams

services = build_services(AppSettings(data_dir=sys.argv[1], database_url=sys.argv[2], preview="force", device="cpu"), heartbeat=False)
session = services.identity.start(None, ip="192.0.2.50")
print("TOKEN", session.token, flush=True)

def hang(done, total):
    print("RUNNING", flush=True)
    time.sleep(3600)

services.text.text_to_image(session.account, TextToImageParams(prompt="never finishes", model="flux.1-dev", steps=3), on_step=hang)
"""


def test_restart_sees_balances_history_and_files(make_services):
    first = make_services()
    session = first.identity.start(None, ip="10.9.9.9")
    output = first.text.text_to_image(
        session.account, TextToImageParams(prompt="a harbour at dawn", model="sdxl-base", steps=2, count=2, seed=11)
    )
    first.close()

    second = make_services()  # a new process on the same data dir and database
    account = second.identity.resolve(session.token)
    assert account.id == session.account.id and account.balance == 48
    assert second.ledger.total(account.id) == 48
    (record,) = second.history.list(account.id)
    assert record.id == output.request_id and record.request["prompt"] == "a harbour at dawn"
    assert record.files == output.files and record.seeds == [11, 12] and record.charged == 2
    for path in record.files:
        with Image.open(path) as image:
            assert image.size == (1024, 1024)
    assert second.recovered == []  # the first instance stopped cleanly with nothing open


def test_a_killed_process_reservation_is_refunded_at_start(make_services, tiny_root, tmp_path, db_url):
    data_dir = tmp_path / "data"
    env = dict(os.environ, PLAYGROUND_TINY_DIR=str(tiny_root), PYTHONPATH=str(ROOT))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data_dir), db_url], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT
    )
    try:
        token = None
        deadline = time.monotonic() + 240
        for line in child.stdout:  # type: ignore[union-attr]
            if line.startswith("TOKEN"):
                token = line.split()[1]
            if line.startswith("RUNNING"):
                break
            assert time.monotonic() < deadline
        assert token
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)

    services = make_services(data_dir=data_dir)
    account = services.identity.resolve(token)
    assert len(services.recovered) == 1
    assert account.balance == 50 == services.ledger.total(account.id)
    kinds = [e["kind"] for e in reversed(services.ledger.entries(account.id))]
    assert kinds == ["grant", "reserve", "refund"]
    (record,) = services.history.list(account.id, include_failed=True)
    assert record.status == "interrupted" and record.id == services.recovered[0]


def test_a_live_instance_keeps_its_reservation(make_services):
    first = make_services()
    session = first.identity.start(None, ip="10.8.8.8")
    started, release = threading.Event(), threading.Event()
    result = {}

    def slow(done, total):
        started.set()
        release.wait(60)

    def run():
        result["out"] = first.text.text_to_image(
            session.account, TextToImageParams(prompt="slow", model="flux.1-dev", steps=2), on_step=slow
        )

    worker = threading.Thread(target=run)
    worker.start()
    assert started.wait(120)
    second = make_services()  # starts while the first is mid-generation
    assert second.recovered == []
    assert second.ledger.balance(session.account.id) == 46
    release.set()
    worker.join(120)
    assert result["out"].charged == 4 and second.ledger.balance(session.account.id) == 46
