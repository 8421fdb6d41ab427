"""The credits ledger and the request flow, on SQLite and (given a URL) PostgreSQL.

Generation here runs the real tiny SDXL pipeline through the services; only the 50-thread race uses a
trivial work function, because it tests the ledger, not a model.
"""
from __future__ import annotations

import threading

import pytest
from PIL import Image

from pipelines.types import GenerationResult, Task
from services.creation.text import TextToImageParams
from services.accounts.identity import InvalidSession
from services.accounts.jobs import GenerationTimedOut, IdempotencyConflict
from services.accounts.ledger import InsufficientCredits
from services.safety.output import SafetyBlocked, Verdict

FAST = dict(model="sdxl-base", steps=2, seed=7)


def visitor(services, ip="10.0.0.1"):
    return services.identity.start(None, ip=ip)


def rows(services, account_id, request_id=None):
    return [(e["kind"], e["amount"]) for e in reversed(services.ledger.entries(account_id, request_id=request_id))]


def test_fifty_threads_cannot_overspend_a_balance_of_fifty(make_services, registry):
    services = make_services()
    account = visitor(services).account
    assert account.balance == 50
    quote = services.plans.quote(registry.get("flux.1-kontext-dev"), Task.EDIT, "1K", 1)
    assert quote.total == 3

    def work(cancel):
        return GenerationResult(seeds=[1], images=[Image.new("RGB", (8, 8), "gray")], parameters={"prompt": "x"})

    outcomes: list[str] = []
    barrier = threading.Barrier(50)

    def spend(i: int) -> None:
        barrier.wait()
        try:
            services.jobs.run(account, quote=quote, request={"i": i}, work=work)
            outcomes.append("ok")
        except InsufficientCredits:
            outcomes.append("short")

    threads = [threading.Thread(target=spend, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("ok") == 16 and outcomes.count("short") == 34
    assert services.ledger.balance(account.id) == 2
    assert services.ledger.total(account.id) == 2
    kinds = [k for k, _ in rows(services, account.id)]
    assert kinds.count("reserve") == 16 and kinds.count("capture") == 16 and "refund" not in kinds


def _params(prompt="a red door", **kw):
    return TextToImageParams(prompt=prompt, **{**FAST, **kw})


def test_a_pipeline_that_raises_refunds(make_services):
    services = make_services()
    account = visitor(services).account

    def explode(done, total):
        raise RuntimeError("CUDA out of memory (simulated mid-run)")

    with pytest.raises(RuntimeError, match="out of memory"):
        services.text.text_to_image(account, _params(), on_step=explode)
    assert services.ledger.balance(account.id) == 50 == services.ledger.total(account.id)
    assert rows(services, account.id)[1:] == [("reserve", -1), ("refund", 1)]
    (record,) = services.history.list(account.id, include_failed=True)
    assert record.status == "failed" and "out of memory" in record.error and record.files == []


def test_a_pipeline_that_times_out_refunds(make_services):
    services = make_services(generation_timeout_s=0.001)
    account = visitor(services).account
    with pytest.raises(GenerationTimedOut, match="Nothing was charged"):
        services.text.text_to_image(account, _params(steps=20))
    assert services.ledger.balance(account.id) == 50 == services.ledger.total(account.id)
    assert rows(services, account.id)[1:] == [("reserve", -1), ("refund", 1)]
    assert services.history.list(account.id, include_failed=True)[0].status == "timeout"


class BlockEverything:
    name = "test-block"

    def check_image(self, image):
        return Verdict(True, "flagged", "test policy")


class BlockSecond:
    name = "test-block-second"

    def __init__(self):
        self.seen = 0

    def check_image(self, image):
        self.seen += 1
        flagged = self.seen % 2 == 0
        return Verdict(flagged, "flagged" if flagged else "safe", "test policy" if flagged else "")


def test_a_safety_block_refunds_and_stores_nothing(make_services):
    services = make_services(safety=BlockEverything())
    account = visitor(services).account
    before = set(services.store.root.rglob("*.png")) if services.store.root.exists() else set()
    with pytest.raises(SafetyBlocked, match="Nothing was charged"):
        services.text.text_to_image(account, _params())
    assert services.ledger.balance(account.id) == 50 == services.ledger.total(account.id)
    assert rows(services, account.id)[1:] == [("reserve", -1), ("refund", 1)]
    record = services.history.list(account.id, include_failed=True)[0]
    assert record.status == "blocked" and record.safety == "blocked"
    after = set(services.store.root.rglob("*.png")) if services.store.root.exists() else set()
    assert after == before


def test_blocked_outputs_in_a_batch_are_refunded_and_the_rest_charged(make_services):
    services = make_services(safety=BlockSecond())
    account = visitor(services).account
    output = services.text.text_to_image(account, _params(model="flux.1-dev", count=2))
    assert output.charged == 4 and output.blocked == 1 and len(output.files) == 1
    assert services.ledger.balance(account.id) == 46 == services.ledger.total(account.id)
    assert rows(services, account.id)[1:] == [("reserve", -8), ("capture", 0), ("refund", 4)]


def test_idempotency_key_replays_once_and_refuses_other_params(make_services):
    services = make_services()
    account = visitor(services).account
    first = services.text.text_to_image(account, _params(count=2), idempotency_key="click-1")
    again = services.text.text_to_image(account, _params(count=2), idempotency_key="click-1")
    assert again.replayed and not first.replayed
    assert again.files == first.files and again.seeds == first.seeds and again.request_id == first.request_id
    assert all(p.exists() for p in again.files)
    assert services.ledger.balance(account.id) == 48
    assert [k for k, _ in rows(services, account.id)].count("reserve") == 1
    with pytest.raises(IdempotencyConflict, match="different request"):
        services.text.text_to_image(account, _params("a blue door", count=2), idempotency_key="click-1")
    assert services.ledger.balance(account.id) == 48 == services.ledger.total(account.id)
    assert len(services.history.list(account.id, include_failed=True)) == 1


def test_over_balance_charges_nothing_and_writes_no_record(make_services):
    services = make_services(grants_per_ip=1)
    account = visitor(services).account
    with services.db.begin() as conn:
        services.ledger.adjust(conn, account.id, -48, "test", "leave 2")
    with pytest.raises(InsufficientCredits, match="costs 4 credits but your balance is 2"):
        services.text.text_to_image(account, _params(model="flux.1-dev"))
    assert services.ledger.balance(account.id) == 2 == services.ledger.total(account.id)
    assert services.history.list(account.id, include_failed=True) == []


def test_forged_tokens_are_refused_and_grants_are_limited_per_ip(make_services):
    clock = [1_000_000.0]
    services = make_services(grants_per_ip=1)
    services.identity.clock = lambda: clock[0]
    first = services.identity.start(None, ip="203.0.113.9")
    assert first.granted == 50 and first.account.balance == 50
    assert services.identity.resolve(first.token).id == first.account.id

    account_id, _, sig = first.token.rpartition(".")
    forged = [
        first.token[:-1] + ("A" if first.token[-1] != "A" else "B"),  # edited signature
        "v-someoneelse." + sig,  # another id with this signature
        account_id,  # no signature
        services.identity.sign(account_id).replace(account_id, account_id[:-1] + "x"),
    ]
    for token in forged:
        assert services.identity.verify(token) is None
        with pytest.raises(InvalidSession, match="not valid"):
            services.identity.resolve(token)
    # A foreign token (another server's secret) is rejected too.
    from services.accounts.identity import Identity

    foreign = Identity(services.db, services.ledger, services.plans, b"another-secret").sign(first.account.id)
    assert services.identity.verify(foreign) is None

    # /session_start with a forged token starts a new visitor, and this IP already had its grant.
    second = services.identity.start(forged[0], ip="203.0.113.9")
    assert second.account.id != first.account.id and second.granted == 0 and second.account.balance == 0
    assert "could not be verified" in second.as_dict()["message"] and "new-visitor grants" in second.as_dict()["message"]
    other_ip = services.identity.start(None, ip="198.51.100.4")
    assert other_ip.granted == 50
    clock[0] += 25 * 3600  # the window passed
    assert services.identity.start(None, ip="203.0.113.9").granted == 50
    # The first visitor's balance was never touched by any of this.
    assert services.identity.resolve(first.token).balance == 50


def test_signed_in_user_gets_member_grant_and_visitor_credits(make_services):
    from services.accounts.identity import HFUser

    services = make_services()
    guest = visitor(services)
    user = HFUser(id="6512", username="ada")
    session = services.identity.start(guest.token, ip="10.0.0.1", hf_user=user)
    assert session.account.id == "hf-6512" and session.account.tier == "member"
    assert session.account.balance == 250 and session.account.can("image_to_video")
    assert services.ledger.balance(guest.account.id) == 0
    again = services.identity.start(guest.token, ip="10.0.0.1", hf_user=user)
    assert again.granted == 0 and again.account.balance == 250
    assert services.identity.resolve("", hf_user=user).id == "hf-6512"


def test_qa_mode_needs_the_admin_secret_and_reviews_reports(make_services):
    services = make_services(admin_secret="let-me-in-0123456789abcdefghijklmnopqrstu")
    with pytest.raises(InvalidSession, match="admin key"):
        services.identity.start(None, admin_key="guess")
    qa = services.identity.start(None, admin_key="let-me-in-0123456789abcdefghijklmnopqrstu").account
    assert qa.unlimited and qa.can("review")
    output = services.text.text_to_image(qa, _params(model="flux.1-dev", count=2))
    assert output.charged == 0 and services.ledger.balance(qa.id) == 0

    guest = visitor(services).account
    out = services.text.text_to_image(guest, _params(model="flux.1-dev", count=2))
    assert services.ledger.balance(guest.id) == 42
    report = services.history.report(guest, out.request_id, 1, "broken", "all noise")
    assert report["status"] == "pending" and report["refund"] == 4
    from services.accounts.history import ReportError

    with pytest.raises(ReportError, match="already reported"):
        services.history.report(guest, out.request_id, 1, "other")
    with pytest.raises(ReportError, match="index 5"):
        services.history.report(guest, out.request_id, 5, "broken")
    with pytest.raises(ReportError, match="Only QA"):
        services.history.review(guest, report["id"], approve=True)
    assert [r["id"] for r in services.history.reports()] == [report["id"]]
    services.history.review(qa, report["id"], approve=True)
    assert services.ledger.balance(guest.id) == 46 == services.ledger.total(guest.id)
    with pytest.raises(ReportError, match="already reviewed"):
        services.history.review(qa, report["id"], approve=True)
    rejected = services.history.report(guest, out.request_id, 0, "wrong_prompt")
    services.history.review(qa, rejected["id"], approve=False)
    assert services.ledger.balance(guest.id) == 46
    # QA's own reports are approved at once.
    assert services.history.report(qa, output.request_id, 0, "anatomy")["status"] == "approved"
    # QA sessions stop working when the server has no admin secret.
    plain = make_services()
    with pytest.raises(InvalidSession, match="QA mode is off"):
        plain.identity.resolve(services.identity.sign(qa.id))
