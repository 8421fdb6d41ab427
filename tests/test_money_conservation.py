"""Credits are conserved: a scripted day across 20 accounts on the real services (starting grants, a member sign-in
that moves a visitor's credits, generations on the tiny models that are captured, refunded, partly refunded or
refused, album offers and sales, a re-priced unlock refused, parallel clicks), then the ledger table alone shows that

    sum(every user's balance) + the platform account + what captured generations kept == every grant ever made

and that each account's balance is the sum of its rows. Runs on SQLite, and on PostgreSQL when a URL is given."""
from __future__ import annotations

from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from services.accounts.identity import HFUser
from services.accounts.ledger import KINDS, PLATFORM, InsufficientCredits
from services.accounts.tables import accounts, album_unlocks, generations, ledger
from services.creation.characters import CharacterError
from services.creation.text import TextToImageParams
from tests.test_characters import GOOD, figure_for
from tests.test_credits import BlockSecond  # blocks every second image

ADMIN = "qa-test-key-0123456789abcdefghijklmnop"


def image(services, account, count=1, **kw):
    return services.text.text_to_image(account, TextToImageParams("a lighthouse at dusk", "sdxl-base", steps=2, seed=5,
                                                                  count=count), **kw)


def album_of(services, owner, price, images, offered):
    """A figure-backed character with `images` gallery images; its album offers the first `offered` of them."""
    character = services.characters.create(owner, GOOD, "unlisted", figure_id=figure_for(services, owner).id)
    made = image(services, owner, count=images)
    for index in range(images):
        services.characters.gallery_add(owner, character.id, made.request_id, index)
    ids = [i["id"] for i in services.characters.gallery(owner, character.id)["items"]]
    services.albums.offer(owner, character.id, price, ids[:offered])
    return character, ids


def ledger_books(services):
    """Everything the ledger table alone says: grants, adjustments, what captured generations kept, balances."""
    with services.db.engine.connect() as conn:
        rows = conn.execute(sa.select(ledger).order_by(ledger.c.id)).all()
        balances = dict(conn.execute(sa.select(accounts.c.id, accounts.c.balance)).all())
    by_request: dict[str, list] = defaultdict(list)
    for row in rows:
        assert row.kind in KINDS, row.kind
        by_request[row.request_id].append(row)
    captured, refunded = {}, []
    for request_id, group in by_request.items():
        kinds = {r.kind for r in group}
        # a transfer (a sale, a visitor's credits moving to a member) adds up to zero under its request id
        assert sum(r.amount for r in group if r.kind == "transfer") == 0, request_id
        if "reserve" in kinds:
            assert kinds <= {"reserve", "capture", "refund"}, (request_id, kinds)
            held = sum(r.amount for r in group if r.kind in ("reserve", "refund"))  # minus what the request kept
            if "capture" in kinds:
                assert held <= 0, request_id
                captured[request_id] = -held
            else:  # failed, timed out or blocked: the whole reservation came back
                assert held == 0, request_id
                refunded.append(request_id)
    for account_id, balance in balances.items():  # every balance is the sum of its rows, and its last row's balance_after
        own = [r for r in rows if r.account_id == account_id]
        assert sum(r.amount for r in own) == balance, account_id
        assert (own[-1].balance_after if own else 0) == balance, account_id
    grants = sum(r.amount for r in rows if r.kind == "grant")
    adjustments = sum(r.amount for r in rows if r.kind == "adjustment")
    return rows, balances, grants, adjustments, captured, refunded


def test_a_day_of_grants_generations_and_sales_conserves_every_credit(make_services):
    services = make_services(admin_secret=ADMIN, grants_per_ip=3)
    terms = services.plans.albums

    # 20 accounts: 15 guests on five networks (3 starting grants each), a 16th that the limit leaves at 0,
    # three members (one signs in from a visitor's browser and takes over its credits) and a QA session.
    sessions = [services.identity.start(None, ip=f"10.40.{i // 3}.1") for i in range(15)]
    guests = [s.account for s in sessions]
    broke = services.identity.start(None, ip="10.40.0.1").account
    assert all(g.balance == 50 for g in guests) and broke.balance == 0
    creator = services.identity.start(None, hf_user=HFUser("u-creator", "creator")).account
    collector = services.identity.start(None, hf_user=HFUser("u-collector", "collector")).account
    tester = services.identity.start(None, ip="10.40.9.9", admin_key=ADMIN).account
    assert tester.unlimited

    # generations: captured, refunded on a mid-run failure, refused for want of credits, waived for QA
    image(services, guests[1])
    image(services, guests[2], count=2)

    def explode(done, total):
        raise RuntimeError("CUDA out of memory (simulated mid-run)")

    with pytest.raises(RuntimeError, match="out of memory"):
        image(services, guests[3], on_step=explode)
    with pytest.raises(InsufficientCredits):
        image(services, broke)
    image(services, tester)
    # after a restart with an output check that blocks every second image: a batch of two is half refunded
    checked = make_services(admin_secret=ADMIN, grants_per_ip=3, safety=BlockSecond())
    half = image(checked, guests[4], count=2)
    assert half.blocked == 1 and half.charged == 1

    # a member who used the site as a visitor signs in: the visitor's credits move over (a transfer)
    image(services, guests[9])
    signed_in = services.identity.start(sessions[9].token, hf_user=HFUser("u-member", "member"))
    assert "49 credits from your visitor session were added" in " ".join(signed_in.messages)
    member = signed_in.account
    assert member.balance == 249 and services.ledger.balance(guests[9].id) == 0

    # two albums: a member's at 90 (63 to the creator, 27 to the platform), a guest's at the minimum price
    expensive, _ = album_of(services, creator, 90, images=3, offered=2)
    cheap, _ = album_of(services, guests[0], terms.min_price, images=2, offered=1)
    assert (terms.share_of(90), terms.share_of(terms.min_price)) == (63, 3)

    platform = 0
    for buyer in (collector, member):
        assert services.albums.unlock(buyer, expensive.id, 90)["charged"] == 90
        platform += 27
    with pytest.raises(InsufficientCredits):  # a guest cannot afford it: nothing moves
        services.albums.unlock(guests[5], expensive.id, 90)
    for buyer in guests[5:8]:
        assert services.albums.unlock(buyer, cheap.id, terms.min_price)["charged"] == terms.min_price
        platform += terms.platform_part(terms.min_price)
    assert services.albums.unlock(guests[5], cheap.id, terms.min_price)["already_unlocked"]

    # the owner re-prices between a buyer's look and their click: refused, then confirmed at the new price
    shown = services.albums.album(guests[8], cheap.id)["price"]
    new_price = terms.min_price + 2
    services.albums.offer(guests[0], cheap.id, new_price, [i["id"] for i in services.albums.album(guests[0], cheap.id)["items"]])
    with pytest.raises(CharacterError, match=f"price changed from {shown} to {new_price} credits"):
        services.albums.unlock(guests[8], cheap.id, shown)
    assert services.albums.unlock(guests[8], cheap.id, new_price)["charged"] == new_price
    platform += terms.platform_part(new_price)
    # four parallel clicks pay once; QA pays nothing
    with ThreadPoolExecutor(4) as pool:
        clicks = list(pool.map(lambda _: services.albums.unlock(guests[10], cheap.id, new_price), range(4)))
    assert sorted(c["charged"] for c in clicks) == [0, 0, 0, new_price]
    platform += terms.platform_part(new_price)
    assert services.albums.unlock(tester, cheap.id, new_price)["charged"] == 0

    # the books, from the ledger table alone
    rows, balances, grants, adjustments, captured, refunded = ledger_books(services)
    assert len(balances) == 21 and balances[PLATFORM] == platform == 27 * 2 + 2 * 3 + 3 * 2
    users = sum(b for a, b in balances.items() if a != PLATFORM)
    assert adjustments == 0
    assert users + balances[PLATFORM] + sum(captured.values()) == grants == 15 * 50 + 3 * 200
    assert min(balances.values()) >= 0
    # the day had every kind of request: captured (one partly refunded), fully refunded, waived. Captured: five
    # images (one of them QA's, kept 0) and the two album owners' figure takes and gallery batches.
    assert len(captured) == 9 and len(refunded) == 1 and 0 in captured.values()
    assert any({r.kind for r in rows if r.request_id == rid} == {"reserve", "capture", "refund"} for rid in captured)

    # cross-checks with the other tables: what generations kept, and what each sale left the platform
    with services.db.engine.connect() as conn:
        charged = conn.execute(sa.select(sa.func.sum(generations.c.charged)).where(generations.c.status == "done")).scalar()
        sales = conn.execute(sa.select(album_unlocks.c.price, album_unlocks.c.creator_share, album_unlocks.c.request_id)).all()
    assert charged == sum(captured.values())
    assert sum(price - share for price, share, _ in sales) == balances[PLATFORM]
    for price, share, request_id in sales:
        moved = sorted(r.amount for r in rows if r.request_id == request_id)
        expected = sorted(a for a in (-price, share, price - share) if a) if price else [0]
        assert moved == expected, (request_id, moved)
