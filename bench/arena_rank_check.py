"""Check services/research/ratings.py against LMArena's `arena-rank` on the same simulated battles.

arena-rank pins numpy==2.3.3 and jax==0.8.1, so it lives in its own virtual environment, never this project's:

    python -m venv /tmp/ar-venv && /tmp/ar-venv/bin/pip install arena-rank==0.1.1 scipy pandas
    /tmp/ar-venv/bin/python bench/arena_rank_check.py [--competitors 8] [--battles 5000] [--seed 0]

It prints the largest rating difference and the largest interval-bound difference (sandwich and bootstrap; the two
bootstraps draw different resamples, jax's and numpy's, so only their widths are comparable in kind, not equal).
Our module is loaded from its file, so only numpy and scipy need to be in that environment.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
HOW = ("arena_rank is not importable here. Run:\n"
       "  python -m venv /tmp/ar-venv && /tmp/ar-venv/bin/pip install arena-rank==0.1.1 scipy pandas "
       "&& /tmp/ar-venv/bin/python bench/arena_rank_check.py")


def load_ours():
    spec = importlib.util.spec_from_file_location("ratings", ROOT / "services" / "research" / "ratings.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["ratings"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def simulate(competitors: int, battles: int, seed: int) -> list[tuple[str, str, str]]:
    """Battles between random pairs with Bradley-Terry probabilities; 10% ties."""
    rng = np.random.default_rng(seed)
    names = [f"model-{i:02d}" for i in range(competitors)]
    strength = np.linspace(1.5, -1.5, competitors)
    out = []
    for _ in range(battles):
        i, j = rng.choice(competitors, 2, replace=False)
        p = 1.0 / (1.0 + np.exp(-(strength[i] - strength[j])))
        outcome = "tie" if rng.random() < 0.1 else ("a" if rng.random() < p else "b")
        out.append((names[i], names[j], outcome))
    return out


def arena_dataset(battles):
    import pandas as pd
    from arena_rank.utils.data_utils import PairDataset

    frame = pd.DataFrame(battles, columns=["model_a", "model_b", "winner"])
    frame["winner"] = frame["winner"].map({"a": "model_a", "b": "model_b", "tie": "tie"})
    return PairDataset.from_pandas(frame)


def arena_sandwich(battles):
    from arena_rank.models.bradley_terry import BradleyTerry

    dataset = arena_dataset(battles)
    model = BradleyTerry(n_competitors=len(dataset.competitors))
    result = model.compute_ratings_and_cis(dataset, ci_method="sandwich")
    return {name: (float(result["ratings"][i]), float(result["rating_lower"][i]), float(result["rating_upper"][i]))
            for i, name in enumerate(result["competitors"])}


def arena_bootstrap(battles, rounds: int, seed: int):
    """arena-rank's bootstrap (its multinomial counts from jax.random, its fit per sample), run serially: its
    multiprocessing pool deadlocks after a fork of a process that has started jax. Returns the ratings and the
    counts drawn, so ours can be fitted on exactly the same resamples."""
    import jax
    import jax.numpy as jnp
    from arena_rank.models.bradley_terry import BradleyTerry, fit_single_bootstrap_sample

    dataset = arena_dataset(battles)
    model = BradleyTerry(n_competitors=len(dataset.competitors))
    model.fit(dataset)
    total = jnp.sum(dataset.counts)
    counts = jax.random.multinomial(key=jax.random.PRNGKey(seed), n=int(total), p=dataset.counts / total,
                                    shape=(rounds, dataset.counts.shape[0]), dtype=jnp.float64)
    samples = np.stack([np.asarray(fit_single_bootstrap_sample(counts[i], model, dataset)["ratings"])
                        for i in range(rounds)]) * model.alpha + model.init_rating
    lower, upper = np.quantile(samples, 0.025, axis=0), np.quantile(samples, 0.975, axis=0)
    ratings = np.asarray(model.params["ratings"]) * model.alpha + model.init_rating
    out = {name: (float(ratings[i]), float(lower[i]), float(upper[i])) for i, name in enumerate(dataset.competitors)}
    pairs = np.column_stack([np.asarray(dataset.pairs), np.asarray(dataset.outcomes)])
    return out, np.asarray(counts), pairs


def ours_on_counts(module, battles, counts: np.ndarray, arena_rows: np.ndarray) -> dict:
    """Our fit on arena-rank's resamples (both order unique rows the same way: sorted (a, b, outcome))."""
    pairs = module._pairs(battles, "drop")
    ours_rows = np.column_stack([pairs.a, pairs.b, pairs.outcomes])
    assert np.array_equal(ours_rows, arena_rows), "unique rows are ordered differently"
    theta = module._fit(pairs, module.DEFAULT_REG)
    samples = np.stack([module._fit(pairs.resampled(c), module.DEFAULT_REG, start=theta) for c in counts])
    samples -= samples.mean(axis=1, keepdims=True)
    alpha = 400 / np.log(10)
    lower = np.quantile(samples, 0.025, axis=0) * alpha + 1000
    upper = np.quantile(samples, 0.975, axis=0) * alpha + 1000
    return {name: (alpha * theta[i] + 1000, lower[i], upper[i]) for i, name in enumerate(pairs.competitors)}


def compare(label: str, theirs: dict, ours) -> None:
    rating = max(abs(theirs[c][0] - ours[c].rating) for c in theirs)
    bound = max(max(abs(theirs[c][1] - ours[c].lower), abs(theirs[c][2] - ours[c].upper)) for c in theirs)
    width_theirs = np.mean([theirs[c][2] - theirs[c][1] for c in theirs])
    width_ours = np.mean([ours[c].upper - ours[c].lower for c in theirs])
    order_same = sorted(theirs, key=lambda c: -theirs[c][0]) == [r["competitor"] for r in ours.leaderboard()]
    print(f"{label:10s} max |rating diff| {rating:.4f}  max |bound diff| {bound:.4f}  "
          f"mean width arena-rank {width_theirs:.2f} ours {width_ours:.2f}  same order: {order_same}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--competitors", type=int, default=8)
    parser.add_argument("--battles", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if importlib.util.find_spec("arena_rank") is None:
        print(HOW)
        return 0
    ours_module = load_ours()
    battles = simulate(args.competitors, args.battles, args.seed)
    print(f"{args.competitors} competitors, {args.battles} battles (seed {args.seed}), {args.rounds} bootstrap rounds")
    start = time.perf_counter()
    theirs = arena_sandwich(battles)
    t_theirs = time.perf_counter() - start
    start = time.perf_counter()
    ours = ours_module.bradley_terry(battles)
    t_ours = time.perf_counter() - start
    compare("sandwich", theirs, ours)
    print(f"{'':10s} time arena-rank {t_theirs:.2f} s, ours {t_ours:.2f} s")

    start = time.perf_counter()
    theirs, counts, rows = arena_bootstrap(battles, args.rounds, args.seed)
    t_theirs = time.perf_counter() - start
    start = time.perf_counter()
    ours = ours_module.bootstrap(battles, rounds=args.rounds, seed=args.seed)
    t_ours = time.perf_counter() - start
    compare("bootstrap", theirs, ours)
    print(f"{'':10s} (different resamples: jax's vs numpy's) time arena-rank {t_theirs:.2f} s, ours {t_ours:.2f} s")
    same = ours_on_counts(ours_module, battles, counts, rows)
    compare("bootstrap=", theirs, ours_module.Ratings({c: ours_module.Rating(c, *same[c], 0, 0, 0, 0) for c in same}))
    print(f"{'':10s} (ours fitted on arena-rank's own resamples)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
