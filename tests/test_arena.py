"""Arenas on the tiny models: rounds from a QA grid's pool (free) or generated through the runner (charged at the
quote), anonymous outputs, votes append-only with one vote per battle per voter, a vote after the reveal refused, a
daily cap, QA votes left out by default, 8 parallel votes all counted, and the likeness arena on a figure."""
from __future__ import annotations

import threading

import pytest
from PIL import Image

from services.research.arena import ArenaError
from tests.test_grids import visitor
from tests.test_remix import make_figure

MODELS = ["sdxl-base", "playground-v2.5", "flux.1-schnell"]


def qa_account(services):
    from tests.conftest import ADMIN_KEY

    return services.identity.start(admin_key=ADMIN_KEY).account


@pytest.fixture
def pooled(make_services):
    from tests.conftest import ADMIN_KEY

    services = make_services(admin_secret=ADMIN_KEY)
    qa = qa_account(services)
    spec = services.grids.declare(prompts=["a lighthouse keeper, portrait", "a red kite over the sea"], models=MODELS, seeds=[3, 4])
    grid_id = services.grids.start(qa, spec)["grid_id"]
    assert services.background.wait(qa.id, grid_id, 300)["state"] == "done"
    return services, qa


def test_a_pooled_round_is_anonymous_free_and_revealed_only_after_the_vote(pooled):
    services, _ = pooled
    account = visitor(services)
    before = services.ledger.balance(account.id)
    battle = services.arena.round(account)
    assert battle["source"] == "pool" and battle["charged"] == 0 and services.ledger.balance(account.id) == before
    assert "sdxl" not in str(battle) and "flux" not in str(battle) and "playground" not in str(battle)
    for side in ("left", "right"):
        with Image.open(services.store.path(battle[side])) as image:
            assert not image.info.get("parameters") and not getattr(image, "text", {}), "an arena image carries metadata"
    revealed = services.arena.vote(account, battle["battle_id"], "left")
    assert {revealed["left"], revealed["right"]} <= set(MODELS) and revealed["left"] != revealed["right"]
    with pytest.raises(ArenaError, match="already shown"):
        services.arena.vote(account, battle["battle_id"], "right")
    other = visitor(services)
    with pytest.raises(ArenaError, match="No battle"):
        services.arena.vote(other, battle["battle_id"], "left")


def test_a_vote_after_the_models_were_shown_is_refused_and_a_second_vote_too(pooled):
    services, _ = pooled
    account = visitor(services)
    battle = services.arena.round(account)
    services.arena.skip(account, battle["battle_id"])
    with pytest.raises(ArenaError, match="already shown"):
        services.arena.vote(account, battle["battle_id"], "left")
    assert services.arena.leaderboard()["votes"] == 0


def test_eight_parallel_votes_on_eight_battles_from_eight_visitors_all_count_and_qa_votes_are_left_out(pooled):
    services, qa = pooled
    voters = [visitor(services) for _ in range(8)]
    rounds = [services.arena.round(v) for v in voters]
    errors = []

    def vote(v, b):
        try:
            services.arena.vote(v, b["battle_id"], "left")
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=vote, args=pair) for pair in zip(voters, rounds)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    board = services.arena.leaderboard()
    assert board["votes"] == 8 and sum(r["votes"] for r in board["rows"]) == 16
    qa_battle = services.arena.round(qa)
    services.arena.vote(qa, qa_battle["battle_id"], "tie")
    assert services.arena.leaderboard()["votes"] == 8
    assert services.arena.leaderboard(include_qa=True)["votes"] == 9


def test_a_generated_round_is_charged_at_its_quote_and_the_daily_cap_holds(make_services, monkeypatch):
    services = make_services()
    account = visitor(services)
    with pytest.raises(ArenaError, match="No stored pair .* credits"):
        services.arena.round(account, models=MODELS[:2])
    quote = services.arena.generate_quote(account, "general", MODELS[:2])
    before = services.ledger.balance(account.id)
    battle = services.arena.round(account, generate=True, models=MODELS[:2], prompt="a harbour at dawn")
    assert battle["source"] == "generated" and before - services.ledger.balance(account.id) == quote["total"] == battle["charged"]
    monkeypatch.setattr(services.plans.research, "votes_per_day", 1)
    services.arena.vote(account, battle["battle_id"], "tie")
    second = services.arena.round(account, generate=True, models=MODELS[:2], prompt="a harbour at dusk")
    with pytest.raises(ArenaError, match="daily limit"):
        services.arena.vote(account, second["battle_id"], "left")


def test_a_personal_leaderboard_appears_after_enough_own_votes(pooled, monkeypatch):
    services, _ = pooled
    account = visitor(services)
    monkeypatch.setattr(services.plans.research, "personal_after", 2)
    first = services.arena.round(account)
    services.arena.vote(account, first["battle_id"], "left")
    assert services.arena.leaderboard(account=account)["needed"] == 1
    second = services.arena.round(account)
    services.arena.vote(account, second["battle_id"], "right")
    mine = services.arena.leaderboard(account=account)
    assert mine["needed"] == 0 and mine["votes"] == 2 and mine["rows"]


def test_the_likeness_arena_shows_the_canonical_and_rates_model_and_face_path(make_services):
    services = make_services()
    account = visitor(services, credits=100)
    figure = make_figure(services, account)
    models = [e.id for e in services.remix.remix_models() if e.face_preservation == "reference"][:2]
    spec = services.grids.declare(prompts=["reading in a library"], models=models, seeds=[9], surface="remix", figure_id=figure.id)
    grid_id = services.grids.start(account, spec)["grid_id"]
    assert services.background.wait(account.id, grid_id, 300)["state"] == "done"
    battle = services.arena.round(account, "likeness", figure_id=figure.id)
    assert battle["question"] == "Which keeps the character?" and battle["canonical"] and battle["left"] and battle["right"]
    assert services.store.path(battle["canonical"]).exists()
    revealed = services.arena.vote(account, battle["battle_id"], "right")
    board = services.arena.leaderboard("likeness")
    keys = {f"{m}|reference" for m in models}
    assert {r["competitor"] for r in board["rows"]} == keys and {revealed["left"], revealed["right"]} == keys
    winner = next(r for r in board["rows"] if r["competitor"] == revealed["right"])
    assert winner["rank"] == 1 and "identity" in winner
    other = visitor(services)
    with pytest.raises(Exception, match="(?i)figure"):
        services.arena.round(other, "likeness", figure_id=figure.id)
