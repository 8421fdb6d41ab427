"""Photo albums: a figure-backed character's owner offers named gallery images at a price in the plans' range;
another user unlocks once, confirming the price they were shown, paying in one ledger transaction that credits the
creator's whole-credit share and the platform's part, even under parallel clicks; the unlock survives a restart."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import gradio as gr
import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from services.accounts.ledger import PLATFORM, InsufficientCredits
from services.accounts.plans import AlbumTerms, load_plans
from services.accounts.tables import album_unlocks, ledger
from services.creation.characters import CharacterError
from services.creation.text import TextToImageParams
from tests.test_characters import GOOD, figure_for, guest, qa, upload


def album_for(services, owner, price=None):
    figure = figure_for(services, owner)
    character = services.characters.create(owner, GOOD, "unlisted", figure_id=figure.id)
    made = services.text.text_to_image(owner, TextToImageParams("the cartographer at sea", "sdxl-base", steps=2, seed=3, count=3))
    for index in range(3):
        services.characters.gallery_add(owner, character.id, made.request_id, index)
    items = services.characters.gallery(owner, character.id)["items"]
    terms = services.plans.albums
    services.albums.offer(owner, character.id, price or terms.min_price, [items[0]["id"], items[1]["id"]])
    return character, items


def test_eight_parallel_unlocks_move_credits_exactly_once(make_services):
    services = make_services()
    owner, buyer = guest(services), guest(services, ip="10.3.0.2")
    character, items = album_for(services, owner)
    terms = services.plans.albums
    price, share = terms.min_price, terms.share_of(terms.min_price)
    assert 0 < share < price
    owner_before, buyer_before = services.ledger.balance(owner.id), services.ledger.balance(buyer.id)

    # the album's images are hidden from the gallery until unlocked
    assert [i["id"] for i in services.characters.gallery(buyer, character.id)["items"]] == [items[2]["id"]]
    assert services.albums.album(buyer, character.id)["items"] == []

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: services.albums.unlock(buyer, character.id, price), range(8)))
    assert sorted(r["charged"] for r in results) == [0] * 7 + [price]
    assert sum(r["already_unlocked"] for r in results) == 7
    assert services.ledger.balance(buyer.id) == buyer_before - price
    assert services.ledger.balance(owner.id) == owner_before + share
    buyer_rows = [r for r in services.ledger.entries(buyer.id) if r["kind"] == "transfer"]
    owner_rows = [r for r in services.ledger.entries(owner.id) if r["kind"] == "transfer"]
    assert [r["amount"] for r in buyer_rows] == [-price] and [r["amount"] for r in owner_rows] == [share]
    assert buyer_rows[0]["request_id"] == owner_rows[0]["request_id"]  # one transaction, both sides see it
    platform_rows = services.ledger.entries(PLATFORM)  # the platform's part is a row of its own, same request id
    assert [(r["kind"], r["amount"], r["request_id"]) for r in platform_rows] == [("transfer", price - share, buyer_rows[0]["request_id"])]
    assert services.ledger.balance(PLATFORM) == price - share == services.ledger.total(PLATFORM)
    assert "Photo album of Iris Vale" in buyer_rows[0]["note"]
    for account in (owner, buyer):
        assert services.ledger.total(account.id) == services.ledger.balance(account.id)

    # it stays unlocked after a restart
    restarted = make_services()
    album = restarted.albums.album(buyer, character.id)
    assert album["unlocked"] and [i["id"] for i in album["items"]] == [items[0]["id"], items[1]["id"]]
    assert restarted.characters.gallery(buyer, character.id)["total"] == 3
    again = restarted.albums.unlock(buyer, character.id, price)
    assert again["charged"] == 0 and again["already_unlocked"]
    assert restarted.ledger.balance(buyer.id) == buyer_before - price


def test_album_rules(make_services):
    services = make_services()
    owner, buyer = guest(services), guest(services, ip="10.3.0.2")
    terms = services.plans.albums
    figureless = services.characters.create(owner, GOOD, "unlisted", avatar=upload())
    with pytest.raises(CharacterError, match="needs a character built on a figure"):
        services.albums.offer(owner, figureless.id, terms.min_price, ["any"])
    character, items = album_for(services, owner)
    for bad in (terms.min_price - 1, terms.max_price + 1):
        with pytest.raises(CharacterError, match=f"Album price must be {terms.min_price} to {terms.max_price} credits"):
            services.albums.offer(owner, character.id, bad, [items[0]["id"]])
    with pytest.raises(CharacterError, match="your own album"):
        services.albums.unlock(owner, character.id, terms.min_price)
    with pytest.raises(CharacterError, match="among yours"):
        services.albums.offer(buyer, character.id, terms.min_price, [items[0]["id"]])
    with pytest.raises(CharacterError, match="in the photo album"):
        services.characters.gallery_remove(owner, character.id, items[0]["id"])

    # a buyer who cannot afford it pays nothing and gets nothing
    services.albums.offer(owner, character.id, terms.max_price, [items[0]["id"], items[1]["id"]])
    balance = services.ledger.balance(buyer.id)
    assert balance < terms.max_price
    with pytest.raises(InsufficientCredits):
        services.albums.unlock(buyer, character.id, terms.max_price)
    assert services.ledger.balance(buyer.id) == balance and not services.albums.album(buyer, character.id)["unlocked"]
    # a private character's album cannot be reached by others at all
    services.characters.update(owner, character.id, GOOD, visibility="private")
    with pytest.raises(CharacterError, match="No character"):
        services.albums.unlock(buyer, character.id, terms.max_price)
    assert services.albums.album(owner, character.id)["buyers"] == 0


def test_the_creator_share_is_exact_integer_arithmetic():
    """Whole credits, no float rounding: share_of(p) == p * percent // 100 for every allowed price (70 % of 90 is 63,
    where int(90 * 0.7) gave 62), and the creator's share plus the platform's part is always the price."""
    terms = load_plans().albums
    assert terms.creator_share_percent == 70 and terms.creator_share == 0.7
    assert terms.share_of(90) == 63 and terms.platform_part(90) == 27 and int(90 * 0.7) == 62
    for price in range(terms.min_price, terms.max_price + 1):
        share = terms.share_of(price)
        assert share == price * terms.creator_share_percent // 100, price
        assert isinstance(share, int) and 0 <= share <= price and share + terms.platform_part(price) == price
    # the percent is one whole number written once; the old float key is refused
    with pytest.raises(ValidationError):
        AlbumTerms(min_price=5, max_price=500, creator_share_percent=70.5)
    with pytest.raises(ValidationError):
        AlbumTerms(min_price=5, max_price=500, creator_share=0.7)
    assert AlbumTerms(min_price=1, max_price=10, creator_share_percent=100).share_of(7) == 7
    assert AlbumTerms(min_price=1, max_price=10, creator_share_percent=0).platform_part(7) == 7


def money(services, *accounts):
    """Every balance named, the platform's, the ledger's row count and the unlocks: what must not move on a refusal."""
    with services.db.engine.connect() as conn:
        rows = conn.execute(sa.select(sa.func.count()).select_from(ledger)).scalar()
        unlocks = conn.execute(sa.select(sa.func.count()).select_from(album_unlocks)).scalar()
    platform = services.ledger.balance(PLATFORM) if services.ledger.entries(PLATFORM, limit=1) else 0
    return [services.ledger.balance(a.id) for a in accounts], platform, rows, unlocks


def test_an_unlock_confirms_the_price_it_was_shown(make_services):
    services = make_services(admin_secret="qa-test-key-0123456789abcdefghijklmnop")
    owner, buyer = guest(services), guest(services, ip="10.3.0.2")
    with services.db.begin() as conn:
        services.ledger.grant(conn, buyer.id, 100, "test-grant", "enough for a 90-credit album")
    character, items = album_for(services, owner, price=20)
    shown = services.albums.album(buyer, character.id)
    assert (shown["price"], shown["creator_receives"], shown["platform_receives"]) == (20, 14, 6)

    # the owner raises the price between /album and /album_unlock: refused, nothing moved
    services.albums.offer(owner, character.id, 90, [items[0]["id"], items[1]["id"]])
    before = money(services, owner, buyer)
    with pytest.raises(CharacterError, match="price changed from 20 to 90 credits; look again and confirm"):
        services.albums.unlock(buyer, character.id, shown["price"])
    for missing in (None, 0, "", 89.5):  # an unlock must name the price it was shown
        with pytest.raises(CharacterError, match=r"Confirm the price: pass `price`, the credits /album shows .*now 90"):
            services.albums.unlock(buyer, character.id, missing)
    assert money(services, owner, buyer) == before
    assert not services.albums.album(buyer, character.id)["unlocked"]

    # confirmed at the new price: 90 moves, 63 to the creator, 27 to the platform, three rows under one request id
    shown = services.albums.album(buyer, character.id)
    assert (shown["price"], shown["creator_receives"], shown["platform_receives"]) == (90, 63, 27)
    done = services.albums.unlock(buyer, character.id, shown["price"])
    assert done["charged"] == 90 and done["unlocked"] and done["request_id"]
    sale = [(r["kind"], r["amount"]) for a in (buyer.id, owner.id, PLATFORM)
            for r in services.ledger.entries(a, request_id=done["request_id"])]
    assert sale == [("transfer", -90), ("transfer", 63), ("transfer", 27)]
    (balances, platform, _, _), (old_balances, old_platform, _, _) = money(services, owner, buyer), before
    assert balances == [old_balances[0] + 63, old_balances[1] - 90] and platform == old_platform + 27
    # already unlocked: no charge, even with a stale price
    again = services.albums.unlock(buyer, character.id, 20)
    assert again["charged"] == 0 and again["already_unlocked"]

    # a QA session confirms the price too, and pays nothing (nothing reaches the creator or the platform)
    tester = qa(services)
    assert tester.unlimited
    before = money(services, owner, tester)
    with pytest.raises(CharacterError, match="price changed from 20 to 90"):
        services.albums.unlock(tester, character.id, 20)
    waived = services.albums.unlock(tester, character.id, 90)
    assert waived["charged"] == 0 and not waived["already_unlocked"]
    balances, platform, _, _ = money(services, owner, tester)
    assert balances == before[0] and platform == before[1]
    for account in (owner, buyer, tester):
        assert services.ledger.total(account.id) == services.ledger.balance(account.id)
    assert services.ledger.total(PLATFORM) == services.ledger.balance(PLATFORM)


def test_an_offer_names_its_images_and_an_image_can_leave_the_album(make_services):
    services = make_services()
    owner, buyer = guest(services), guest(services, ip="10.3.0.2")
    character, items = album_for(services, owner)  # the gallery holds 3 images; the album the first two
    ids = [i["id"] for i in items]
    terms = services.plans.albums
    for unnamed in (None, [], [""]):
        with pytest.raises(CharacterError, match="Name the album's images"):
            services.albums.offer(owner, character.id, terms.min_price, unnamed)
    with pytest.raises(CharacterError, match="'nope' is not an image in this character's gallery"):
        services.albums.offer(owner, character.id, terms.min_price, [ids[0], "nope"])

    # re-pricing with the same list never adds the third gallery image
    again = services.albums.offer(owner, character.id, terms.min_price + 1, ids[:2])
    assert [i["id"] for i in again["items"]] == ids[:2] and again["added"] == [] and again["left_album"] == []

    # an image leaves the album: offered without it, it shows in the public gallery again and can be removed
    moved = services.albums.offer(owner, character.id, terms.min_price + 1, [ids[1], ids[2]])
    assert [i["id"] for i in moved["items"]] == [ids[1], ids[2]] and moved["images"] == 2
    assert moved["added"] == [ids[2]] and moved["left_album"] == [ids[0]]
    assert [i["id"] for i in services.characters.gallery(buyer, character.id)["items"]] == [ids[0]]
    with pytest.raises(CharacterError, match="in the photo album"):
        services.characters.gallery_remove(owner, character.id, ids[1])
    services.characters.gallery_remove(owner, character.id, ids[0])
    assert services.albums.album(owner, character.id)["images"] == 2

    # a buyer sees the album's current images
    services.albums.unlock(buyer, character.id, terms.min_price + 1)
    assert [i["id"] for i in services.albums.album(buyer, character.id)["items"]] == [ids[1], ids[2]]


def test_the_album_endpoints_carry_the_price_and_the_images(make_services):
    """The API functions (as the UI and gradio_client call them) pass `price` and `media_ids` through."""
    from ui import character_api

    services = make_services()
    owner_session = services.identity.start(None, ip="10.3.0.1")
    buyer_session = services.identity.start(None, ip="10.3.0.2")
    character, items = album_for(services, owner_session.account)
    with gr.Blocks():
        functions = character_api.register(services)
    with pytest.raises(gr.Error, match="Name the album's images"):
        functions.album_offer(token=owner_session.token, character_id=character.id, price=8)
    offered = functions.album_offer(token=owner_session.token, character_id=character.id, price=8, media_ids=[items[2]["id"]])
    assert offered["images"] == 1 and offered["creator_receives"] == 5 and offered["platform_receives"] == 3
    shown = functions.album(character_id=character.id, token=buyer_session.token)
    with pytest.raises(gr.Error, match="Confirm the price"):
        functions.album_unlock(token=buyer_session.token, character_id=character.id)
    with pytest.raises(gr.Error, match="price changed from 7 to 8"):
        functions.album_unlock(token=buyer_session.token, character_id=character.id, price=7)
    done = functions.album_unlock(token=buyer_session.token, character_id=character.id, price=shown["price"])
    assert done["charged"] == 8 and [i["id"] for i in done["items"]] == [items[2]["id"]]
