"""Simulate the promotion gate: false-promotion rate and power of the paired rule.

Each trial is a pair of evaluations on the same videos. Video i has a latent difficulty
d_i ~ Normal(0, spread) shared by both models, and model m hits it (recall@10 = 1) with
probability sigmoid(a_m - d_i), independently given d_i. a_champion is set so that the
champion's expected recall@10 is --champion-recall, and a_candidate so that the candidate's
is higher by the true gain. Every trial runs ``paired_delta`` (one-sided lower bound) and
``decide_promotion`` with min_delta and alpha as given, exactly as the evaluator does.

Usage:
    python scripts/simulate_gate.py --trials 500
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from evaluator.core.comparison import paired_delta
from evaluator.core.promotion import decide_promotion

# Trials per paired_delta call: the trials are the columns of one matrix and share the
# call's resamples; each block of trials gets its own seed.
TRIALS_PER_CALL = 50


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# Gauss-Hermite (probabilists') nodes and weights for integrating against Normal(0, 1).
NODES, WEIGHTS = np.polynomial.hermite_e.hermegauss(100)


def expected_recall(ability: float, spread: float) -> float:
    """E[sigmoid(ability - d)] for d ~ Normal(0, spread), by Gauss-Hermite quadrature."""
    nodes, weights = NODES, WEIGHTS
    return float(np.sum(weights * sigmoid(ability - spread * nodes)) / math.sqrt(2 * math.pi))


def ability_for(recall: float, spread: float) -> float:
    """The ability a with expected_recall(a, spread) == recall, by bisection."""
    low, high = -30.0, 30.0
    for _ in range(200):
        mid = (low + high) / 2
        if expected_recall(mid, spread) < recall:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def simulate(gain: float, args: argparse.Namespace, rng: np.random.Generator) -> dict[str, float]:
    """Promotion rate and summary numbers over args.trials simulated pairs at one true gain."""
    a_champion = ability_for(args.champion_recall, args.spread)
    a_candidate = ability_for(args.champion_recall + gain, args.spread)
    promoted, deltas, discordant = [], [], []
    for block_start in range(0, args.trials, TRIALS_PER_CALL):
        t = min(TRIALS_PER_CALL, args.trials - block_start)
        difficulty = rng.normal(0.0, args.spread, size=(args.videos, t))
        base = rng.random((args.videos, t)) < sigmoid(a_champion - difficulty)
        cand = rng.random((args.videos, t)) < sigmoid(a_candidate - difficulty)
        result = paired_delta(
            cand,
            base,
            n_resamples=args.resamples,
            seed=args.seed + block_start,
            one_sided_alpha=args.alpha,
        )
        for j in range(t):  # the rule itself is scalar: one decision per trial
            decision = decide_promotion(
                "recall_at_10",
                has_champion=True,
                delta=float(result.delta[j]),
                lower_bound=float(result.lower_bound[j]),
                alpha=args.alpha,
                min_delta=args.min_delta,
            )
            promoted.append(decision.promote)
        deltas.extend(result.delta.tolist())
        discordant.extend(((result.n_gained + result.n_lost) / args.videos).tolist())
    rate = float(np.mean(promoted))
    return {
        "gain": gain,
        "champion": expected_recall(a_champion, args.spread),
        "candidate": expected_recall(a_candidate, args.spread),
        "mean_delta": float(np.mean(deltas)),
        "discordant": float(np.mean(discordant)),
        "rate": rate,
        "se": math.sqrt(max(rate * (1 - rate), 1e-12) / args.trials),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=500, help="simulated pairs per gain")
    parser.add_argument("--videos", type=int, default=2000, help="videos per evaluation")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--alpha", type=float, default=0.05, help="one-sided alpha")
    parser.add_argument("--min-delta", type=float, default=0.0, help="promotion margin")
    parser.add_argument("--champion-recall", type=float, default=0.70)
    parser.add_argument("--spread", type=float, default=1.5, help="SD of video difficulty")
    parser.add_argument(
        "--gains", type=str, default="0,0.01,0.03,0.05", help="true gains in recall@10"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.trials < 1 or args.videos < 1:
        parser.error("--trials and --videos must be >= 1")

    gains = [float(g) for g in args.gains.split(",")]
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    rows = [simulate(gain, args, rng) for gain in gains]
    elapsed = time.perf_counter() - start

    print(
        f"{args.trials} trials per row, {args.videos} videos, {args.resamples} resamples, "
        f"alpha {args.alpha}, min_delta {args.min_delta}, difficulty SD {args.spread}"
    )
    header = (
        f"{'true gain':>9} {'champion':>9} {'candidate':>9} {'mean delta':>10} "
        f"{'discordant':>10} {'promoted':>9} {'MC SE':>7}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{100 * row['gain']:+8.0f}p {row['champion']:9.3f} {row['candidate']:9.3f} "
            f"{row['mean_delta']:+10.4f} {row['discordant']:10.3f} {row['rate']:9.3f} "
            f"{row['se']:7.3f}"
        )
    for row in rows:
        if row["gain"] == 0.0:
            limit = args.alpha + 2 * math.sqrt(args.alpha * (1 - args.alpha) / args.trials)
            verdict = "within" if row["rate"] <= limit else "ABOVE"
            print(
                f"false-promotion rate {row['rate']:.3f} is {verdict} alpha + 2 MC SE = {limit:.3f}"
            )
    print(f"run time {elapsed:.1f} s ({elapsed / (len(gains) * args.trials) * 1000:.1f} ms/trial)")


if __name__ == "__main__":
    main()
