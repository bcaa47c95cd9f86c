"""Simulate the promotion gate: false promotions and power of the paired rule and slice gate.

Each trial is a pair of evaluations on the same videos. Video i has a latent difficulty
d_i ~ Normal(0, spread) shared by both models, and model m hits it (recall@10 = 1) with
probability sigmoid(a_m - d_i), independently given d_i. a_champion is set so that the
champion's expected recall@10 is --champion-recall, and a_candidate so that the candidate's
is higher by the true gain. Every trial runs ``paired_delta`` (one-sided lower bound) and
``decide_promotion`` with min_delta and alpha as given, exactly as the evaluator does.

The slice gate (``--slices``, default 10 slices of ``--slice-videos`` = 300 videos): the same
video model per slice; under the null the candidate equals the champion everywhere (the same
expected recall@10, drawn independently per video given its difficulty); under the
alternative it is ``--slice-drop`` (5 points) worse in slice 0 only. Every trial runs
``slice_paired`` (one-sided exact McNemar per slice), ``slice_gate`` (Holm or BH across the
slices of >= ``--min-videos`` videos) and ``decide_promotion`` with the gate, as
``video-eval-promote`` does. The gate's decision uses only the McNemar counts, so the
slices' bootstrap intervals run with ``--slice-resamples`` (default 1) to keep it fast.

Usage:
    python scripts/simulate_gate.py --trials 500
    python scripts/simulate_gate.py --skip-promotion --slice-trials 2000
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import numpy as np

from evaluator.core.paired_stats import paired_delta
from evaluator.core.promotion_decision import decide_promotion
from evaluator.core.slice_tests import slice_gate, slice_paired

# Trials per paired_delta call: the trials are the columns of one matrix and share the
# call's resamples; each block of trials gets its own seed.
TRIALS_PER_CALL = 50


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# Gauss-Hermite (probabilists') nodes and weights for integrating against Normal(0, 1).
NODES, WEIGHTS = np.polynomial.hermite_e.hermegauss(100)


def expected_recall(
    ability: float, spread: float, nodes: np.ndarray = NODES, weights: np.ndarray = WEIGHTS
) -> float:
    """E[sigmoid(ability - d)] for d ~ Normal(0, spread), by Gauss-Hermite quadrature."""
    return float(np.sum(weights * sigmoid(ability - spread * nodes)) / math.sqrt(2 * math.pi))


def ability_for(
    recall: float,
    spread: float,
    bound: float = 30.0,
    steps: int = 200,
    nodes: np.ndarray = NODES,
    weights: np.ndarray = WEIGHTS,
) -> float:
    """The ability a in [-bound, bound] with expected_recall(a, spread) == recall, by
    bisection in ``steps`` halvings (quadrature on ``nodes`` and ``weights``)."""
    low, high = -bound, bound
    for _ in range(steps):
        mid = (low + high) / 2
        if expected_recall(mid, spread, nodes, weights) < recall:
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


def print_table(title: str, header: str, lines: list[str]) -> None:
    """A title, a header, a rule and the rows."""
    print(title)
    print(header)
    print("-" * len(header))
    print("\n".join(lines))


def simulate_slices(
    drop: float, adjust: str, agreement: float, args: argparse.Namespace, rng: np.random.Generator
) -> dict[str, Any]:
    """Share of trials the slice gate blocks, with slice 0 worse by ``drop`` (0 = the null).

    ``agreement``: the share of videos on which the candidate's outcome is the champion's
    (a retrained model agrees on most videos); on the others it is drawn afresh, with the
    ability that makes slice 0's expected recall@10 exactly ``drop`` lower.
    """
    a_champion = ability_for(args.champion_recall, args.spread)
    a_worse = ability_for(args.champion_recall - drop / (1.0 - agreement), args.spread)
    n_slices, size = args.slices, args.slice_videos
    codes = np.repeat(np.arange(n_slices), size)
    ability = np.where(codes == 0, a_worse, a_champion)
    labels = np.array([f"slice={i}" for i in range(n_slices)], dtype=object)
    blocked, target_flagged, target_delta = [], [], []
    for _ in range(args.slice_trials):
        difficulty = rng.normal(0.0, args.spread, size=codes.shape[0])
        base = rng.random(codes.shape[0]) < sigmoid(a_champion - difficulty)
        fresh = rng.random(codes.shape[0]) < sigmoid(ability - difficulty)
        cand = np.where(rng.random(codes.shape[0]) < agreement, base, fresh)
        p = slice_paired(
            cand.astype(float),
            base.astype(float),
            codes,
            n_slices,
            n_resamples=args.slice_resamples,
            confidence=0.95,
            seed=args.seed,
        )
        gate = slice_gate(
            "recall_at_10",
            labels,
            p.n_videos,
            p.delta,
            p.ci_low,
            p.ci_high,
            p.p_regression,
            min_videos=args.min_videos,
            alpha=args.alpha,
            adjust=adjust,
        )
        # The rule itself, with a primary check that always passes: only the gate decides.
        decision = decide_promotion(
            "recall_at_10", has_champion=True, delta=0.0, lower_bound=1.0, slices=gate
        )
        blocked.append(not decision.promote)
        target_flagged.append(bool(gate.significant[0]))
        target_delta.append(float(p.delta[0]))
    rate = float(np.mean(blocked))
    return {
        "drop": drop,
        "adjust": adjust,
        "agreement": agreement,
        "blocked": rate,
        "target": float(np.mean(target_flagged)),
        "delta": float(np.mean(target_delta)),
        "se": math.sqrt(max(rate * (1 - rate), 1e-12) / args.slice_trials),
    }


def report_slices(args: argparse.Namespace) -> None:
    """Print the slice gate's false-block rate and power, for Holm and BH."""
    rng = np.random.default_rng(args.seed + 1)
    start = time.perf_counter()
    agreements = [float(a) for a in args.slice_agreement.split(",")]
    rows = [
        simulate_slices(drop, adjust, agreement, args, rng)
        for agreement in agreements
        for adjust in ("holm", "bh")
        for drop in (0.0, args.slice_drop)
    ]
    elapsed = time.perf_counter() - start
    print_table(
        f"\nslice gate: {args.slices} slices of {args.slice_videos} videos, {args.slice_trials} "
        f"trials per row, champion recall@10 {args.champion_recall}, alpha {args.alpha}, "
        f"one-sided exact McNemar per slice",
        f"{'agree':>5} {'adjust':>6} {'slice 0 drop':>12} {'mean delta':>10} {'blocked':>8} "
        f"{'slice 0 flagged':>15} {'MC SE':>6}",
        [
            f"{r['agreement']:5.2f} {r['adjust']:>6} {100 * r['drop']:11.0f}p "
            f"{r['delta']:+10.4f} {r['blocked']:8.3f} {r['target']:15.3f} {r['se']:6.3f}"
            for r in rows
        ],
    )
    for r in rows:
        tag = f"{r['adjust']}, agreement {r['agreement']:g}"
        if r["drop"] == 0.0:
            verdict = "<=" if r["blocked"] <= args.alpha else "ABOVE"
            print(
                f"{tag}: false-block share {r['blocked']:.3f} {verdict} {args.alpha} "
                f"(candidate == champion on all {args.slices} slices)"
            )
        else:
            print(
                f"{tag}: power to block a {100 * r['drop']:.0f}-point recall@10 drop in "
                f"one slice of {args.slice_videos} videos: {r['blocked']:.3f}"
            )
    print(f"slice run time {elapsed:.1f} s")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (``argv``, default ``sys.argv[1:]``) as checked settings."""
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
    parser.add_argument("--slices", type=int, default=10, help="slices in the slice gate run")
    parser.add_argument("--slice-videos", type=int, default=300, help="videos per slice")
    parser.add_argument("--slice-drop", type=float, default=0.05, help="drop in slice 0")
    parser.add_argument("--slice-trials", type=int, default=2000, help="trials per slice row")
    parser.add_argument("--slice-resamples", type=int, default=1, help="slice CI resamples")
    parser.add_argument("--min-videos", type=int, default=30, help="smallest gated slice")
    parser.add_argument(
        "--slice-agreement",
        type=str,
        default="0,0.8",
        help="shares of videos where the candidate's outcome is the champion's",
    )
    parser.add_argument("--skip-promotion", action="store_true", help="only the slice gate")
    parser.add_argument("--skip-slices", action="store_true", help="only the paired rule")
    args = parser.parse_args(argv)
    if args.trials < 1 or args.videos < 1:
        parser.error("--trials and --videos must be >= 1")
    if args.slices < 1 or args.slice_videos < 1 or args.slice_trials < 1:
        parser.error("--slices, --slice-videos and --slice-trials must be >= 1")
    return args


def main() -> None:
    args = parse_args()
    if not args.skip_promotion:
        report_promotion(args)
    if not args.skip_slices:
        report_slices(args)


def report_promotion(args: argparse.Namespace) -> None:
    """Print the paired rule's promotion rate at each true gain."""

    gains = [float(g) for g in args.gains.split(",")]
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    rows = [simulate(gain, args, rng) for gain in gains]
    elapsed = time.perf_counter() - start

    print_table(
        f"{args.trials} trials per row, {args.videos} videos, {args.resamples} resamples, "
        f"alpha {args.alpha}, min_delta {args.min_delta}, difficulty SD {args.spread}",
        f"{'true gain':>9} {'champion':>9} {'candidate':>9} {'mean delta':>10} "
        f"{'discordant':>10} {'promoted':>9} {'MC SE':>7}",
        [
            f"{100 * row['gain']:+8.0f}p {row['champion']:9.3f} {row['candidate']:9.3f} "
            f"{row['mean_delta']:+10.4f} {row['discordant']:10.3f} {row['rate']:9.3f} "
            f"{row['se']:7.3f}"
            for row in rows
        ],
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
