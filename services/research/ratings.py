"""Bradley-Terry ratings with confidence intervals, for pairwise votes ("which image is better?").

The method is that of LMArena's `arena-rank` (Apache-2.0, `models/bradley_terry.py`, `utils/data_utils.py`,
`utils/math_utils.py`), re-implemented on numpy + scipy because arena-rank pins numpy and jax versions this project
cannot take:

- battles are aggregated into unique (a, b, outcome) rows with counts (arena-rank's `PairDataset`);
- outcome 1 when a wins, 0 when b wins, 0.5 for a tie (ties are half wins);
- the fit minimises the weighted mean logistic loss  -sum w (o d - softplus(d)) / sum w,  d = theta_a - theta_b,
  plus a small L2 term  reg/2 |theta|^2  (arena-rank puts `hessian_reg` = 1e-5 on the Hessian only and relies on
  early stopping; the same 1e-5 in the loss keeps a competitor that won every battle finite, and moves ordinary
  ratings by far less than a rating point);
- rating = init + scale / ln(base) * theta, centred so the mean rating is `init` (or the `anchor` competitor's is);
- 95% intervals from the sandwich (robust) covariance H^-1 G H^-1, H the Hessian of the summed loss with
  reg * (total weight) on its diagonal and G the covariance of the per-battle gradients, both accumulated per unique
  row as arena-rank does; or from a multinomial bootstrap of the battles (percentile intervals).

An `anchor` moves every rating and bound by the same constant; the widths stay those of the mean-centred fit.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Callable, Hashable, Iterable, NamedTuple, Sequence

import numpy as np
from scipy import optimize, special, stats

OUTCOMES = {"a": 1.0, "b": 0.0, "tie": 0.5}
BOTH_BAD = "both_bad"
DEFAULT_REG = 1e-5


class Battle(NamedTuple):
    """One vote: competitor `a` against `b`; outcome "a", "b", "tie" or "both_bad"; an optional weight."""

    a: str
    b: str
    outcome: str
    weight: float = 1.0


@dataclass(frozen=True)
class Rating:
    competitor: str
    rating: float
    lower: float
    upper: float
    votes: int  # battles involving it (after "both bad" votes were dropped, if they were)
    wins: int
    ties: int
    losses: int


@dataclass(frozen=True)
class Ratings:
    """Ratings per competitor; `method` is "sandwich" or "bootstrap"; `battles` the number of battles counted."""

    ratings: dict[str, Rating] = field(default_factory=dict)
    method: str = "sandwich"
    level: float = 0.95
    battles: int = 0

    def __getitem__(self, competitor: str) -> Rating:
        return self.ratings[competitor]

    def __contains__(self, competitor: object) -> bool:
        return competitor in self.ratings

    def __len__(self) -> int:
        return len(self.ratings)

    @property
    def competitors(self) -> list[str]:
        return list(self.ratings)

    def leaderboard(self) -> list[dict]:
        """Rows sorted by rating (highest first; equal ratings by name) with rank 1, 2, ... and `rank_ub`, LMArena's
        rank from the intervals: 1 + the number of competitors whose lower bound is above this one's upper bound."""
        ordered = sorted(self.ratings.values(), key=lambda r: (-r.rating, r.competitor))
        return [
            {
                "rank": rank,
                "rank_ub": 1 + sum(other.lower > r.upper for other in ordered),
                "competitor": r.competitor,
                "rating": r.rating,
                "lower": r.lower,
                "upper": r.upper,
                "votes": r.votes,
                "wins": r.wins,
                "ties": r.ties,
                "losses": r.losses,
            }
            for rank, r in enumerate(ordered, start=1)
        ]


@dataclass(frozen=True)
class _Pairs:
    """Unique (a, b, outcome) rows: indices into `competitors`, outcome, count, summed weight, summed weight^2."""

    competitors: list[str]
    a: np.ndarray
    b: np.ndarray
    outcomes: np.ndarray
    counts: np.ndarray
    weights: np.ndarray
    weights_sq: np.ndarray
    votes: np.ndarray
    wins: np.ndarray
    ties: np.ndarray

    @property
    def n(self) -> int:
        return len(self.competitors)

    def resampled(self, counts: np.ndarray) -> "_Pairs":
        """The rows drawn `counts` times (rows drawn 0 times left out); weights scale with the counts (a row's
        battles are given its mean weight)."""
        keep = counts > 0
        c = counts[keep].astype(float)
        mean_w = self.weights[keep] / self.counts[keep]
        mean_w_sq = self.weights_sq[keep] / self.counts[keep]
        return _Pairs(self.competitors, self.a[keep], self.b[keep], self.outcomes[keep], c, c * mean_w,
                      c * mean_w_sq, self.votes, self.wins, self.ties)


def _pairs(battles: Iterable, both_bad: str) -> _Pairs:
    if both_bad not in ("tie", "drop"):
        raise ValueError(f'both_bad must be "tie" or "drop", not {both_bad!r}')
    rows: list[tuple[str, str, float, float]] = []
    for item in battles:
        battle = item if isinstance(item, Battle) else Battle(*item)
        if battle.a == battle.b:
            raise ValueError(f"a battle needs two different competitors, got {battle.a!r} twice")
        outcome = battle.outcome
        if outcome == BOTH_BAD:
            if both_bad == "drop":
                continue
            outcome = "tie"
        if outcome not in OUTCOMES:
            raise ValueError(f'outcome must be "a", "b", "tie" or "both_bad", not {battle.outcome!r}')
        weight = float(battle.weight)
        if not (weight > 0 and math.isfinite(weight)):
            raise ValueError(f"a battle's weight must be positive and finite, not {battle.weight!r}")
        rows.append((str(battle.a), str(battle.b), OUTCOMES[outcome], weight))
    competitors = sorted({r[0] for r in rows} | {r[1] for r in rows})
    index = {c: i for i, c in enumerate(competitors)}
    n = len(competitors)
    if not rows:
        empty = np.zeros(0)
        return _Pairs(competitors, empty.astype(int), empty.astype(int), empty, empty, empty, empty,
                      np.zeros(n, int), np.zeros(n, int), np.zeros(n, int))
    a = np.array([index[r[0]] for r in rows])
    b = np.array([index[r[1]] for r in rows])
    o = np.array([r[2] for r in rows])
    w = np.array([r[3] for r in rows])
    # Unique rows in a fixed (sorted) order, so the order of the battles never changes the result.
    keys = np.stack([a, b, (o * 2).astype(int)], axis=1)
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    m = len(unique)
    counts = np.bincount(inverse, minlength=m).astype(float)
    weights = np.bincount(inverse, weights=w, minlength=m)
    weights_sq = np.bincount(inverse, weights=w * w, minlength=m)
    votes = np.bincount(a, minlength=n) + np.bincount(b, minlength=n)
    wins = np.bincount(a[o == 1.0], minlength=n) + np.bincount(b[o == 0.0], minlength=n)
    ties = np.bincount(a[o == 0.5], minlength=n) + np.bincount(b[o == 0.5], minlength=n)
    return _Pairs(competitors, unique[:, 0], unique[:, 1], unique[:, 2] / 2.0, counts, weights, weights_sq,
                  votes, wins, ties)


def _accumulate(values: np.ndarray, a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """arena-rank's `assemble_parwise_matrix`: +v on (a,a) and (b,b), -v on (a,b) and (b,a)."""
    matrix = np.zeros((n, n))
    np.add.at(matrix, (a, a), values)
    np.add.at(matrix, (b, b), values)
    np.add.at(matrix, (a, b), -values)
    np.add.at(matrix, (b, a), -values)
    return matrix


def _fit(pairs: _Pairs, reg: float, start: np.ndarray | None = None) -> np.ndarray:
    """theta minimising the mean weighted logistic loss + reg/2 |theta|^2 (strictly convex: one minimum)."""
    n = pairs.n
    total = pairs.weights.sum()
    if n == 0 or total <= 0:
        return np.zeros(n)
    w = pairs.weights / total
    o = pairs.outcomes

    def loss(theta):
        d = theta[pairs.a] - theta[pairs.b]
        return -np.sum(w * (o * d - np.logaddexp(0.0, d))) + 0.5 * reg * theta @ theta

    def grad(theta):
        d = theta[pairs.a] - theta[pairs.b]
        g = w * (o - special.expit(d))
        return -np.bincount(pairs.a, g, n) + np.bincount(pairs.b, g, n) + reg * theta

    def hess(theta):
        d = theta[pairs.a] - theta[pairs.b]
        p = special.expit(d)
        return _accumulate(w * p * (1.0 - p), pairs.a, pairs.b, n) + reg * np.eye(n)

    x0 = np.zeros(n) if start is None else start.copy()
    result = optimize.minimize(loss, x0, jac=grad, hess=hess, method="trust-exact", options={"gtol": 1e-11})
    theta = result.x
    if not result.success and np.max(np.abs(grad(theta))) > 1e-8:
        raise ArithmeticError(f"Bradley-Terry fit did not converge: {result.message}")
    return theta


def _sandwich_sd(pairs: _Pairs, theta: np.ndarray, reg: float) -> np.ndarray:
    """Standard errors of theta: diag(H^-1 G H^-1)^0.5, accumulated per unique row as arena-rank does."""
    n = pairs.n
    d = theta[pairs.a] - theta[pairs.b]
    p = special.expit(d)
    residual = pairs.outcomes - p
    # Per-battle gradient (o - p) w; its second moment per row is (o - p)^2 sum(w^2) (= arena-rank's
    # ((o - p) opt_weight)^2 / count when every weight is 1).
    grad_cov = _accumulate(residual**2 * pairs.weights_sq, pairs.a, pairs.b, n)
    hessian = _accumulate(p * (1.0 - p) * pairs.weights, pairs.a, pairs.b, n)
    hessian += np.eye(n) * reg * pairs.weights.sum()
    inverse = np.linalg.inv(hessian)
    covariance = inverse @ grad_cov @ inverse
    return np.sqrt(np.clip(np.diag(covariance), 0.0, None))


def _ratings(pairs: _Pairs, centre: np.ndarray, lower: np.ndarray, upper: np.ndarray, *, alpha: float,
             init: float, anchor: str | None, method: str, level: float) -> Ratings:
    if anchor is not None and anchor not in pairs.competitors:
        raise ValueError(f"anchor {anchor!r} is not one of the competitors")
    shift = init - (alpha * centre[pairs.competitors.index(anchor)] if anchor is not None else
                    alpha * centre.mean() if pairs.n else 0.0)
    out = {}
    for i, name in enumerate(pairs.competitors):
        votes, wins, ties = int(pairs.votes[i]), int(pairs.wins[i]), int(pairs.ties[i])
        out[name] = Rating(name, float(alpha * centre[i] + shift), float(alpha * lower[i] + shift),
                           float(alpha * upper[i] + shift), votes, wins, ties, votes - wins - ties)
    return Ratings(out, method, level, int(pairs.counts.sum()))


def _check(scale: float, base: float, level: float) -> float:
    if not (scale > 0 and base > 1):
        raise ValueError("scale must be positive and base greater than 1")
    if not 0 < level < 1:
        raise ValueError("level must be between 0 and 1")
    return scale / math.log(base)


def bradley_terry(battles: Iterable[Battle | Sequence], *, scale: float = 400.0, base: float = 10.0,
                  init: float = 1000.0, anchor: str | None = None, both_bad: str = "drop", level: float = 0.95,
                  reg: float = DEFAULT_REG) -> Ratings:
    """Bradley-Terry ratings with sandwich (robust) `level` intervals. `battles`: `Battle`s or (a, b, outcome[,
    weight]) tuples; "both_bad" outcomes count as ties or are dropped, per `both_bad`."""
    alpha = _check(scale, base, level)
    pairs = _pairs(battles, both_bad)
    theta = _fit(pairs, reg)
    z = stats.norm.ppf(0.5 + level / 2.0)
    width = z * _sandwich_sd(pairs, theta, reg) if pairs.n else np.zeros(0)
    return _ratings(pairs, theta, theta - width, theta + width, alpha=alpha, init=init, anchor=anchor,
                    method="sandwich", level=level)


def bootstrap(battles: Iterable[Battle | Sequence], rounds: int = 200, seed: int = 0, *, scale: float = 400.0,
              base: float = 10.0, init: float = 1000.0, anchor: str | None = None, both_bad: str = "drop",
              level: float = 0.95, reg: float = DEFAULT_REG) -> Ratings:
    """Bradley-Terry ratings (the full-data fit) with percentile intervals from `rounds` multinomial resamplings of
    the battles (numpy's PCG64 seeded with `seed`: the same seed gives the same intervals). Each resample is
    centred like the fit (mean theta 0) before its quantiles are taken."""
    alpha = _check(scale, base, level)
    if rounds < 2:
        raise ValueError("bootstrap needs at least 2 rounds")
    pairs = _pairs(battles, both_bad)
    theta = _fit(pairs, reg)
    if not pairs.n:
        return _ratings(pairs, theta, theta, theta, alpha=alpha, init=init, anchor=anchor, method="bootstrap",
                        level=level)
    rng = np.random.default_rng(seed)
    total = int(pairs.counts.sum())
    samples = np.empty((rounds, pairs.n))
    for r, counts in enumerate(rng.multinomial(total, pairs.counts / total, size=rounds)):
        fitted = _fit(pairs.resampled(counts), reg, start=theta)
        samples[r] = fitted - fitted.mean()
    tail = (1.0 - level) / 2.0
    lower = np.quantile(samples, tail, axis=0) + theta.mean()
    upper = np.quantile(samples, 1.0 - tail, axis=0) + theta.mean()
    return _ratings(pairs, theta, lower, upper, alpha=alpha, init=init, anchor=anchor, method="bootstrap",
                    level=level)


class RatingsCache:
    """Keeps the last `Ratings` and recomputes only when the caller's key changes (key = the number of votes and
    the id of the last vote). `battles` may be a callable, called only on a recompute."""

    def __init__(self, compute: Callable[..., Ratings] = bradley_terry, **options):
        self._compute = compute
        self._options = options
        self._lock = threading.Lock()
        self._key: Hashable | None = None
        self._value: Ratings | None = None
        self.computations = 0

    def get(self, count: int, last_vote_id: Hashable,
            battles: Iterable[Battle | Sequence] | Callable[[], Iterable[Battle | Sequence]]) -> Ratings:
        key = (int(count), last_vote_id)
        with self._lock:
            if self._value is not None and self._key == key:
                return self._value
            source = battles() if callable(battles) else battles
            value = self._compute(source, **self._options)
            self._key, self._value = key, value
            self.computations += 1
            return value

    def clear(self) -> None:
        with self._lock:
            self._key, self._value = None, None
