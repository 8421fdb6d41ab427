"""Photo albums: a figure-backed character's owner offers gallery images at a price in the plans' range; another
user unlocks once, paying in one ledger transaction that credits the creator's share, even under parallel clicks;
the unlock survives a restart."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from services.accounts.ledger import InsufficientCredits
from services.creation.characters import CharacterError
from services.creation.text import TextToImageParams
from tests.test_characters import GOOD, figure_for, guest, upload


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
        results = list(pool.map(lambda _: services.albums.unlock(buyer, character.id), range(8)))
    assert sorted(r["charged"] for r in results) == [0] * 7 + [price]
    assert sum(r["already_unlocked"] for r in results) == 7
    assert services.ledger.balance(buyer.id) == buyer_before - price
    assert services.ledger.balance(owner.id) == owner_before + share
    buyer_rows = [r for r in services.ledger.entries(buyer.id) if r["kind"] == "transfer"]
    owner_rows = [r for r in services.ledger.entries(owner.id) if r["kind"] == "transfer"]
    assert [r["amount"] for r in buyer_rows] == [-price] and [r["amount"] for r in owner_rows] == [share]
    assert buyer_rows[0]["request_id"] == owner_rows[0]["request_id"]  # one transaction, both sides see it
    assert "Photo album of Iris Vale" in buyer_rows[0]["note"]
    for account in (owner, buyer):
        assert services.ledger.total(account.id) == services.ledger.balance(account.id)

    # it stays unlocked after a restart
    restarted = make_services()
    album = restarted.albums.album(buyer, character.id)
    assert album["unlocked"] and [i["id"] for i in album["items"]] == [items[0]["id"], items[1]["id"]]
    assert restarted.characters.gallery(buyer, character.id)["total"] == 3
    again = restarted.albums.unlock(buyer, character.id)
    assert again["charged"] == 0 and again["already_unlocked"]
    assert restarted.ledger.balance(buyer.id) == buyer_before - price


def test_album_rules(make_services):
    services = make_services()
    owner, buyer = guest(services), guest(services, ip="10.3.0.2")
    terms = services.plans.albums
    figureless = services.characters.create(owner, GOOD, "unlisted", avatar=upload())
    with pytest.raises(CharacterError, match="needs a character built on a figure"):
        services.albums.offer(owner, figureless.id, terms.min_price)
    character, items = album_for(services, owner)
    for bad in (terms.min_price - 1, terms.max_price + 1):
        with pytest.raises(CharacterError, match=f"Album price must be {terms.min_price} to {terms.max_price} credits"):
            services.albums.offer(owner, character.id, bad)
    with pytest.raises(CharacterError, match="your own album"):
        services.albums.unlock(owner, character.id)
    with pytest.raises(CharacterError, match="among yours"):
        services.albums.offer(buyer, character.id, terms.min_price)
    with pytest.raises(CharacterError, match="in the photo album"):
        services.characters.gallery_remove(owner, character.id, items[0]["id"])

    # a buyer who cannot afford it pays nothing and gets nothing
    services.albums.offer(owner, character.id, terms.max_price)
    balance = services.ledger.balance(buyer.id)
    assert balance < terms.max_price
    with pytest.raises(InsufficientCredits):
        services.albums.unlock(buyer, character.id)
    assert services.ledger.balance(buyer.id) == balance and not services.albums.album(buyer, character.id)["unlocked"]
    # a private character's album cannot be reached by others at all
    services.characters.update(owner, character.id, GOOD, visibility="private")
    with pytest.raises(CharacterError, match="No character"):
        services.albums.unlock(buyer, character.id)
    assert services.albums.album(owner, character.id)["buyers"] == 0
