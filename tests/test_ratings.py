"""Bradley-Terry ratings (services/research/ratings.py): order, intervals, ties, undefeated competitors, the
two-player closed form, order invariance, "both bad" votes, and the cache. bench/arena_rank_check.py compares the
same fit with LMArena's arena-rank."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest

from services.research.ratings import Battle, Ratings, RatingsCache, bootstrap, bradley_terry

ALPHA = 400 / math.log(10)
STRENGTH = {"A": 1.2, "B": 0.4, "C": -0.3, "D": -1.3}  # theta: A > B > C > D


def simulate(n: int, seed: int, strength: dict[str, float] = STRENGTH, tie_rate: float = 0.1) -> list[Battle]:
    """n battles between random pairs, won with Bradley-Terry probabilities, a share of them ties."""
    rng = np.random.default_rng(seed)
    names = sorted(strength)
    out = []
    for _ in range(n):
        i, j = rng.choice(len(names), 2, replace=False)
        a, b = names[i], names[j]
        p = 1.0 / (1.0 + math.exp(-(strength[a] - strength[b])))
        outcome = "tie" if rng.random() < tie_rate else ("a" if rng.random() < p else "b")
        out.append(Battle(a, b, outcome))
    return out


def fit(method: str, battles, **options) -> Ratings:
    if method == "bootstrap":
        return bootstrap(battles, rounds=options.pop("rounds", 100), seed=options.pop("seed", 0), **options)
    return bradley_terry(battles, **options)


METHODS = ["sandwich", "bootstrap"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n,seed,tie_rate", [(600, 1, 0.0), (1200, 2, 0.1), (2400, 3, 0.0)])
def test_known_strength_order_is_recovered(method, n, seed, tie_rate):
    ratings = fit(method, simulate(n, seed, tie_rate=tie_rate))
    board = ratings.leaderboard()
    assert [row["competitor"] for row in board] == ["A", "B", "C", "D"]
    assert [row["rank"] for row in board] == [1, 2, 3, 4]
    assert board[0]["rank_ub"] == 1 and board[-1]["rank_ub"] == 4  # D's interval lies below all others
    assert ratings.method == method and ratings.battles == n
    assert np.mean([r.rating for r in ratings.ratings.values()]) == pytest.approx(1000.0, abs=1e-6)
    for row in board:
        assert row["lower"] < row["rating"] < row["upper"]
        assert row["votes"] == row["wins"] + row["ties"] + row["losses"]
    if tie_rate == 0:  # without ties (which pull ratings together), the true ratings lie about the intervals
        for name, theta in STRENGTH.items():
            r, half = ratings[name], (ratings[name].upper - ratings[name].lower) / 2
            assert r.lower - half < 1000 + ALPHA * (theta - np.mean(list(STRENGTH.values()))) < r.upper + half


@pytest.mark.parametrize("method", METHODS)
def test_intervals_shrink_with_four_times_the_votes(method):
    def mean_width(r: Ratings) -> float:
        return float(np.mean([x.upper - x.lower for x in r.ratings.values()]))

    small, large = fit(method, simulate(500, 7)), fit(method, simulate(2000, 8))
    ratio = mean_width(large) / mean_width(small)
    assert 0.35 < ratio < 0.65  # ~1/sqrt(4)
    for name in STRENGTH:
        assert large[name].upper - large[name].lower < small[name].upper - small[name].lower


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("both_bad", ["tie", "drop"])
def test_all_ties_give_equal_ratings(method, both_bad):
    names = ["p", "q", "r", "s"]
    battles = [(a, b, "tie") for a in names for b in names if a != b] * 5 + [("p", "q", "both_bad")] * 3
    ratings = fit(method, battles, both_bad=both_bad)
    for name in names:
        assert ratings[name].rating == pytest.approx(1000.0, abs=1e-6)
        assert ratings[name].wins == 0 and ratings[name].losses == 0


@pytest.mark.parametrize("method", METHODS)
def test_an_undefeated_competitor_is_finite_with_the_widest_interval(method):
    battles = simulate(800, 4) + [Battle("E", rival, "a") for rival in STRENGTH] * 3
    ratings = fit(method, battles)
    e = ratings["E"]
    assert (e.votes, e.wins, e.losses) == (12, 12, 0)
    assert all(math.isfinite(v) for v in (e.rating, e.lower, e.upper))
    assert e.rating > max(ratings[n].rating for n in STRENGTH) + 200
    width = e.upper - e.lower
    assert width > 0 and all(width > ratings[n].upper - ratings[n].lower for n in STRENGTH)


@pytest.mark.parametrize("wins,losses", [(7, 3), (30, 10), (5, 5), (50, 5), (3, 40)])
def test_two_players_match_the_closed_form(wins, losses):
    battles = [("x", "y", "a")] * wins + [("y", "x", "a")] * losses
    ratings = bradley_terry(battles)
    expected = ALPHA * math.log(wins / losses)  # the MLE of theta_x - theta_y is ln(wins / losses)
    assert ratings["x"].rating - ratings["y"].rating == pytest.approx(expected, abs=0.5)  # L2 of 1e-5: < 0.5 point
    assert (ratings["x"].rating + ratings["y"].rating) / 2 == pytest.approx(1000.0)
    # Other scales: base e and scale 1 give the raw logit; anchor pins y at init.
    raw = bradley_terry(battles, scale=1.0, base=math.e, init=0.0, anchor="y")
    assert raw["y"].rating == pytest.approx(0.0) and raw["x"].rating == pytest.approx(math.log(wins / losses), abs=2e-3)


@pytest.mark.parametrize("method", METHODS)
def test_the_order_of_battles_does_not_matter(method):
    battles = simulate(700, 5)
    shuffled = battles[:]
    random.Random(9).shuffle(shuffled)
    first, second = fit(method, battles), fit(method, shuffled)
    for name in STRENGTH:
        assert (first[name].rating, first[name].lower, first[name].upper) == pytest.approx(
            (second[name].rating, second[name].lower, second[name].upper), abs=1e-9)
    if method == "sandwich":  # swapping sides (b vs a, outcome mirrored) is the same battle
        mirror = {"a": "b", "b": "a", "tie": "tie"}
        flipped = fit(method, [Battle(b.b, b.a, mirror[b.outcome]) for b in battles])
        for name in STRENGTH:
            assert flipped[name].rating == pytest.approx(first[name].rating, abs=1e-6)
            assert flipped[name].upper == pytest.approx(first[name].upper, abs=1e-6)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("both_bad,equivalent", [("drop", None), ("tie", "tie")])
def test_both_bad_votes_are_dropped_or_counted_as_ties(method, both_bad, equivalent):
    base = simulate(400, 6)
    extra = [("A", "D", "both_bad")] * 40
    ratings = fit(method, base + extra, both_bad=both_bad)
    reference = fit(method, base + [(a, b, equivalent) for a, b, _ in extra] if equivalent else base)
    for name in STRENGTH:
        assert ratings[name].rating == pytest.approx(reference[name].rating, abs=1e-9)
        assert ratings[name].votes == reference[name].votes
    assert ratings.battles == (440 if both_bad == "tie" else 400)
    if both_bad == "tie":  # 40 ties with the weakest pull A down
        assert ratings["A"].rating < fit(method, base)["A"].rating


def test_bootstrap_is_deterministic_for_a_seed():
    battles = simulate(300, 10)
    one, two, other = (bootstrap(battles, rounds=50, seed=s) for s in (3, 3, 4))
    assert one == two
    assert any(one[n].lower != other[n].lower for n in STRENGTH)
    assert all(one[n].rating == other[n].rating for n in STRENGTH)  # the point estimate is the full-data fit


def test_weights_scale_like_repeated_battles():
    doubled = bradley_terry([Battle("x", "y", "a", 2.0), Battle("x", "y", "b")])
    repeated = bradley_terry([("x", "y", "a"), ("x", "y", "a"), ("x", "y", "b")])
    assert doubled["x"].rating == pytest.approx(repeated["x"].rating, abs=1e-6)


@pytest.mark.parametrize("battles,options,message", [
    ([("x", "x", "a")], {}, "two different competitors"),
    ([("x", "y", "left")], {}, "outcome must be"),
    ([("x", "y", "a")], {"both_bad": "maybe"}, "both_bad must be"),
    ([("x", "y", "a", 0.0)], {}, "weight must be positive"),
    ([("x", "y", "a")], {"anchor": "z"}, "anchor 'z'"),
    ([("x", "y", "a")], {"level": 1.5}, "level must be"),
])
def test_bad_input_is_refused(battles, options, message):
    with pytest.raises(ValueError, match=message):
        bradley_terry(battles, **options)


def test_no_battles_give_no_ratings():
    assert len(bradley_terry([])) == 0 and bradley_terry([]).leaderboard() == []
    assert len(bootstrap([("x", "y", "both_bad")], rounds=5)) == 0


def test_cache_recomputes_only_when_the_votes_change():
    battles = simulate(200, 11)
    loads = []

    def load():
        loads.append(1)
        return battles

    cache = RatingsCache(bradley_terry, scale=400.0)
    first = cache.get(200, "vote-200", load)
    assert cache.get(200, "vote-200", load) is first and len(loads) == 1
    battles = battles + [Battle("D", "A", "a")]
    second = cache.get(201, "vote-201", load)
    assert second is not first and cache.computations == 2 and second.battles == 201
    assert cache.get(201, "vote-201", battles) is second
    cache.clear()
    assert cache.get(201, "vote-201", battles) is not second and cache.computations == 3
