"""Several app instances on one database (two build_services calls = two instances, each with its own id and heartbeat):
spends split across them on one balance stay exact, a reservation left by an instance that died mid-request is refunded
by the other within its sweep interval, a token signed by one verifies on the other, and an idempotency key used on one
replays on the other. Every test runs on SQLite and, with PLAYGROUND_TEST_POSTGRES_URL, on PostgreSQL."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from PIL import Image

from pipelines.types import GenerationResult
from services.accounts.db import Database
from services.accounts.identity import server_secret
from services.accounts.instances import Instances, pid_space
from services.accounts.jobs import JobResult, PreviousAttemptFailed
from services.accounts.ledger import InsufficientCredits
from services.accounts.tables import generations, instances
from services.safety.output import Unchecked

HEARTBEAT_S = 0.5  # each instance beats and sweeps this often
STALE_S = 5.0  # silent this long: dead (long enough that a loaded 2-core machine never misses it)
SPENDS = 50


@pytest.fixture
def two_instances(tmp_path, preview_runtime, registry, db_url):
    """Two instances sharing the database and the outputs folder (shared storage), as behind a load balancer."""
    from services.config import AppSettings
    from services.container import build_services

    built = []
    for _ in range(2):
        settings = AppSettings(data_dir=tmp_path / "shared", database_url=db_url, preview="force",
                               heartbeat_s=HEARTBEAT_S, instance_stale_s=STALE_S)
        built.append(build_services(settings, registry=registry, runtime=preview_runtime, safety=Unchecked(), heartbeat=True))
    yield built
    for services in built:
        services.close()


def _image_work(delay_s: float = 0.02):
    def work(cancel) -> GenerationResult:
        time.sleep(delay_s)  # long enough that the spends overlap
        return GenerationResult(seeds=[1], parameters={"prompt": "p"}, images=[Image.new("RGB", (8, 8), "red")])
    return work


def _spend(services, account_id: str, n: int, key: str | None = None, work=None, count: int = 3) -> JobResult:
    account = services.identity.account(account_id)  # each instance reads the account itself
    quote = services.catalogue.quote("sdxl-base", "text-to-image", "1:1", "1K", count=count)
    return services.jobs.run(account, quote=quote, request={"prompt": "p", "n": n}, work=work or _image_work(), idempotency_key=key)


def _assert_exact(services, account_id: str) -> int:
    balance = services.ledger.balance(account_id)
    assert balance >= 0 and balance == services.ledger.total(account_id), (balance, services.ledger.total(account_id))
    with services.db.engine.connect() as conn:
        running = conn.execute(sa.select(sa.func.count()).select_from(generations).where(
            generations.c.account_id == account_id, generations.c.status == "running")).scalar()
    assert running == 0, f"{running} reservation(s) left open"
    return balance


def test_two_instances_register_with_their_own_id_and_beat(two_instances):
    a, b = two_instances
    assert a.instances.id != b.instances.id
    time.sleep(HEARTBEAT_S * 3)
    with a.db.engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(sa.select(instances))}
        now = a.instances.now(conn)
    for services in (a, b):
        row = rows[services.instances.id]
        assert row.stopped_at is None and now - row.heartbeat_at < HEARTBEAT_S * 3, (now, row.heartbeat_at)
        assert row.hostname == pid_space()
    assert not (a.instances.dead() | b.instances.dead()) & {a.instances.id, b.instances.id}


def test_parallel_spends_split_across_instances_get_exactly_what_the_balance_affords(two_instances):
    a, b = two_instances
    account = a.identity.start(None, ip="10.1.0.1").account
    price = a.catalogue.quote("sdxl-base", "text-to-image", "1:1", "1K", count=3).total
    start = a.ledger.balance(account.id)
    affordable = start // price
    assert 0 < affordable < SPENDS

    def spend(i: int) -> str:
        try:
            _spend((a, b)[i % 2], account.id, i)
            return "ok"
        except InsufficientCredits:
            return "short"

    with ThreadPoolExecutor(max_workers=SPENDS) as pool:
        outcomes = list(pool.map(spend, range(SPENDS)))
    assert outcomes.count("ok") == affordable and outcomes.count("short") == SPENDS - affordable, outcomes
    assert {outcomes[i] for i in range(0, SPENDS, 2)} >= {"ok"} and {outcomes[i] for i in range(1, SPENDS, 2)} >= {"ok"}
    for services in (a, b):  # both instances read the same exact balance
        assert _assert_exact(services, account.id) == start - affordable * price


def test_an_instance_killed_mid_request_is_refunded_by_the_other_within_the_sweep(two_instances):
    a, b = two_instances
    account = a.identity.start(None, ip="10.1.0.2").account
    start = a.ledger.balance(account.id)
    running, release, outcome = threading.Event(), threading.Event(), []

    def blocked(cancel) -> GenerationResult:
        running.set()
        release.wait(60)
        return _image_work(0)(cancel)

    def call() -> None:
        try:
            outcome.append(_spend(a, account.id, 1, work=blocked))
        except Exception as exc:  # noqa: BLE001 - what the dead instance's caller would have seen
            outcome.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    assert running.wait(10)
    price = start - b.ledger.balance(account.id)
    assert price > 0
    # A dies without a word: stop() is never called, its heartbeat thread stops, and its last beat is made old.
    a.instances._stop.set()
    a.instances._thread.join(5)
    with a.db.begin() as conn:
        conn.execute(sa.update(instances).where(instances.c.id == a.instances.id)
                     .values(heartbeat_at=instances.c.heartbeat_at - STALE_S - 1))
    aged = time.monotonic()
    while time.monotonic() - aged < STALE_S:
        with b.db.engine.connect() as conn:
            status = conn.execute(sa.select(generations.c.status).where(generations.c.account_id == account.id)).scalar_one()
        if status != "running":
            break
        time.sleep(0.02)
    refunded_after = time.monotonic() - aged
    print(f"the other instance refunded the dead one's reservation {refunded_after:.2f} s after its beat went stale "
          f"(sweep interval {HEARTBEAT_S} s)")
    assert status == "interrupted"
    assert refunded_after < HEARTBEAT_S + 1.0, f"refunded after {refunded_after:.2f} s, sweep interval {HEARTBEAT_S} s"
    assert b.ledger.balance(account.id) == start
    # the dead instance's run finishing late captures nothing: the request was settled (refunded) by the other
    release.set()
    thread.join(10)
    assert isinstance(outcome[0], PreviousAttemptFailed), outcome
    assert _assert_exact(b, account.id) == start
    assert [e["kind"] for e in b.ledger.entries(account.id)][:2] == ["refund", "reserve"]


def test_stop_sent_to_one_instance_ends_the_run_on_the_other(two_instances):
    """Without sticky sessions a visitor's Stop can land on the instance that is not running their request: it flags the
    record, the running instance sees the flag within its poll and the tiny pipeline stops at its next step, refunded."""
    from services.creation.text import TextToImageParams
    from services.errors import Cancelled

    a, b = two_instances
    account = a.identity.start(None, ip="10.1.0.6").account
    start = a.ledger.balance(account.id)
    steps, outcome = [], []

    def slow_step(done: int, total: int) -> None:
        steps.append((time.monotonic(), done))
        time.sleep(0.1)

    def call() -> None:
        try:
            outcome.append(a.text.text_to_image(a.identity.account(account.id), TextToImageParams(
                "a lighthouse at dusk", "sdxl-base", steps=40, seed=1), on_step=slow_step))
        except Exception as exc:  # noqa: BLE001 - what the visitor is told
            outcome.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    deadline = time.monotonic() + 30
    while len(steps) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(steps) >= 3 and b.ledger.balance(account.id) < start  # running on A, reserved
    assert b.jobs.running(account.id) == []  # B runs nothing of theirs
    stopped_at = time.monotonic()
    assert b.cancel(b.identity.account(account.id)) == 1
    thread.join(15)
    after = [done for at, done in steps if at > stopped_at]
    print(f"Stop sent to the other instance: the run ended after {len(after)} more step(s), "
          f"{time.monotonic() - stopped_at:.2f} s (poll {a.jobs.stops.poll_s} s, steps of 0.1 s)")
    assert isinstance(outcome[0], Cancelled), outcome
    assert len(after) <= a.jobs.stops.poll_s / 0.1 + 3 and steps[-1][1] < 40
    with b.db.engine.connect() as conn:
        row = conn.execute(sa.select(generations.c.status, generations.c.stop_requested)
                           .where(generations.c.account_id == account.id)).one()
    assert tuple(row) == ("cancelled", True)
    assert _assert_exact(b, account.id) == start
    assert b.cancel(b.identity.account(account.id)) == 0  # nothing left running anywhere
    assert a.jobs.stops._watcher is None or not a.jobs.stops._flags  # the watcher ends when nothing runs


def test_a_token_from_one_instance_verifies_on_the_other(two_instances):
    a, b = two_instances
    session = a.identity.start(None, ip="10.1.0.3")
    assert b.identity.verify(session.token) == session.account.id
    assert b.identity.resolve(session.token).id == session.account.id
    assert b.identity.start(session.token, ip="10.1.0.3").account.id == session.account.id  # resumed, not a new visitor
    assert a.identity.derive("browser-storage") == b.identity.derive("browser-storage")
    forged = session.token[:-2] + ("AA" if not session.token.endswith("AA") else "BB")
    assert a.identity.verify(forged) is None and b.identity.verify(forged) is None


def test_instances_starting_together_agree_on_the_server_secret(db_url):
    first = Database(db_url)
    first.migrate()
    dbs = [Database(db_url) for _ in range(6)]
    try:
        with ThreadPoolExecutor(max_workers=6) as pool:
            secrets = set(pool.map(lambda db: server_secret(db, None), dbs))
        assert len(secrets) == 1
    finally:
        for db in (first, *dbs):
            db.dispose()


def test_an_idempotency_key_used_on_one_instance_replays_on_the_other(two_instances):
    a, b = two_instances
    account = a.identity.start(None, ip="10.1.0.4").account
    start = a.ledger.balance(account.id)
    first = _spend(a, account.id, 1, key="same-key")
    again = _spend(b, account.id, 1, key="same-key")
    assert again.replayed and not first.replayed and again.request_id == first.request_id
    assert again.files == first.files and all(f.is_file() for f in again.files)  # the outputs folder is shared
    assert _assert_exact(b, account.id) == start - first.charged
    reserves = [e for e in b.ledger.entries(account.id) if e["kind"] == "reserve"]
    assert [e["request_id"] for e in reserves] == [first.request_id]


def test_one_key_racing_on_two_instances_is_charged_once_even_for_the_last_credits(two_instances, monkeypatch):
    """On PostgreSQL the second request waits on the account's row while the first reserves the last credits: it must
    answer with the first's result, not 'not enough credits'."""
    a, b = two_instances
    account = a.identity.start(None, ip="10.1.0.5").account
    price = a.catalogue.quote("sdxl-base", "text-to-image", "1:1", "1K", count=3).total
    balance = a.ledger.balance(account.id)
    with a.db.begin() as conn:
        a.ledger.adjust(conn, account.id, price - balance, "test-drain", "leave exactly one price")
    reserve = a.ledger.reserve

    def slow_reserve(conn, *args, **kwargs):
        value = reserve(conn, *args, **kwargs)
        time.sleep(0.6)  # the reservation is made but not committed while the other instance's request arrives
        return value

    monkeypatch.setattr(a.ledger, "reserve", slow_reserve)
    with ThreadPoolExecutor(max_workers=2) as pool:
        on_a = pool.submit(_spend, a, account.id, 1, "raced-key")
        time.sleep(0.2)
        on_b = pool.submit(_spend, b, account.id, 1, "raced-key")
        results = [on_a.result(30), on_b.result(30)]
    assert results[0].request_id == results[1].request_id and sorted(r.replayed for r in results) == [False, True]
    assert _assert_exact(b, account.id) == 0
    assert len([e for e in b.ledger.entries(account.id) if e["kind"] == "reserve"]) == 1


def test_dead_instances_without_open_work_are_forgotten(two_instances):
    a, b = two_instances
    ghost = Instances(a.db, HEARTBEAT_S, STALE_S)
    ghost.register()
    with a.db.begin() as conn:
        conn.execute(sa.update(instances).where(instances.c.id == ghost.id).values(heartbeat_at=0.0))
    assert ghost.id in b.instances.dead()
    assert b.instances.forget(older_than_s=3600) == 1
    with a.db.engine.connect() as conn:
        ids = set(conn.execute(sa.select(instances.c.id)).scalars())
    assert {a.instances.id, b.instances.id} <= ids and ghost.id not in ids
    ghost.beat()  # one that comes back is known again
    with a.db.engine.connect() as conn:
        assert conn.execute(sa.select(instances.c.id).where(instances.c.id == ghost.id)).scalar() == ghost.id


def test_only_an_instance_in_the_same_pid_space_is_judged_by_its_pid(db_url):
    """Containers sharing the host's name (host networking) have their own PID namespaces: a pid seen from another
    container says nothing about them, so only their heartbeat does."""
    import os
    import socket

    db = Database(db_url)
    db.migrate()
    me = Instances(db, HEARTBEAT_S, STALE_S)
    me.register()
    try:
        with db.begin() as conn:
            now = me.now(conn)
            rows = {"neighbour": f"{socket.gethostname()[:200]} pid:[1]", "gone": pid_space()}
            for name, space in rows.items():  # a pid alive here, but not the process that registered
                conn.execute(instances.insert().values(id=name, hostname=space, pid=os.getpid(), process_started=1.0,
                                                       started_at=now, heartbeat_at=now))
        assert me.dead() == {"gone"}
    finally:
        db.dispose()
