"""A naive poster evaluation: plain loops over videos and pairs.

Written from docs/metrics.md#the-match-rule, #poster-metrics and #the-per-video-match-table.

It shares no code with `evaluator.core`. Cosines are computed as dot / sqrt(|a|^2 |b|^2) in
float64, so on vectors with small integer entries (exact dot products) both implementations
must agree to the last bit, including values exactly on a threshold.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field


@dataclass
class RefVideo:
    eligible: bool
    n_expert: int
    n_model: int
    first_hit_rank: int = 0
    n_matched_model: int = 0
    n_matched_expert: int = 0
    best_model_rank: int = 0
    best_model_timestamp: float = math.nan
    best_expert_timestamp: float = math.nan
    best_dt: float = math.nan
    best_cosine: float = math.nan
    nearest_dt: float = math.nan
    nearest_cosine: float = math.nan
    min_dt: float = math.nan
    max_cosine: float = math.nan
    miss_reason: str | None = None


@dataclass
class RefResult:
    metrics: dict[str, float]
    videos: dict[str, RefVideo] = field(default_factory=dict)
    sweep: dict[tuple[float, float, int], float] = field(default_factory=dict)


def cosine(a: tuple[float, ...] | None, b: tuple[float, ...] | None) -> float:
    """dot / sqrt(|a|^2 |b|^2); NaN when either vector is zero; None = time-only (0.0)."""
    if a is None or b is None:
        return 0.0
    dot = sum(float(x) * float(y) for x, y in zip(a, b, strict=True))
    na = sum(float(x) * float(x) for x in a)
    nb = sum(float(y) * float(y) for y in b)
    if na * nb == 0:
        return math.nan
    return max(-1.0, min(1.0, dot / math.sqrt(na * nb)))


def reference_evaluate(
    experts: list[tuple],
    predictions: list[tuple],
    *,
    tau: float,
    theta: float | None,
    min_expert: int,
    k_max: int,
    sweep_taus: tuple[float, ...] = (),
    sweep_thetas: tuple[float, ...] = (),
) -> RefResult:
    """experts: (video_id, timestamp, embedding tuple or None, row_key);
    predictions: (video_id, timestamp, embedding tuple or None, rank)."""
    seen = set()
    dups = 0
    exp: dict[str, list[tuple[float, tuple | None]]] = defaultdict(list)
    for vid, t, emb, key in experts:
        # Time-only matching ignores embeddings entirely, also when deciding duplicates.
        used = None if emb is None or theta is None else tuple(e + 0.0 for e in emb)
        ident = (vid, t + 0.0, used, key)
        if ident in seen:
            dups += 1
            continue
        seen.add(ident)
        exp[vid].append((t, emb))
    preds: dict[str, list[tuple[int, float, tuple | None]]] = defaultdict(list)
    for vid, t, emb, rank in predictions:
        preds[vid].append((rank, t, emb))

    all_ids = set(exp) | set(preds)
    result = RefResult(metrics={})
    unknown = sum(1 for v in preds if v not in exp)
    truncated = sum(max(0, len(p) - k_max) for v, p in preds.items() if v in exp)
    eligible = sorted(v for v in exp if len(exp[v]) >= min_expert)
    excluded = sum(1 for v in exp if len(exp[v]) < min_expert)

    recall = [0] * (k_max + 1)
    rr = prec = cov = 0.0
    without = 0
    for vid in sorted(all_ids):
        e_frames = sorted(exp.get(vid, []), key=lambda x: x[0])
        m_frames = [(t, emb) for _, t, emb in sorted(preds.get(vid, []), key=lambda x: x[0])]
        considered = m_frames[:k_max] if vid in exp else []
        v = RefVideo(eligible=vid in eligible, n_expert=len(e_frames), n_model=len(considered))
        result.videos[vid] = v
        if not v.eligible:
            continue
        if not considered:
            without += 1

        def matches(tm, em, te, ee, tau_=tau, theta_=theta):
            c = cosine(em, ee) if theta_ is not None else 0.0
            sim = True if theta_ is None else (not math.isnan(c) and c >= theta_)
            return abs(tm - te) <= tau_ and sim

        matched_experts = set()
        for i, (tm, em) in enumerate(considered):
            any_match = False
            for j, (te, ee) in enumerate(e_frames):
                if matches(tm, em, te, ee):
                    any_match = True
                    matched_experts.add(j)
            if any_match:
                v.n_matched_model += 1
                if v.first_hit_rank == 0:
                    v.first_hit_rank = i + 1
        v.n_matched_expert = len(matched_experts)

        pairs = []  # (dt, cos_for_choice, reported cos, model rank, tm, te, time_ok, sim_ok)
        # Pairs further apart than the largest tolerance in use have no cosine (candidates).
        window = max([tau, *sweep_taus])
        for i, (tm, em) in enumerate(considered):
            for te, ee in e_frames:
                dt = abs(tm - te)
                c = cosine(em, ee) if theta is not None else 0.0
                if theta is not None and dt > window:
                    c = math.nan
                time_ok = dt <= tau
                sim_ok = True if theta is None else (not math.isnan(c) and c >= theta)
                choice = -math.inf if math.isnan(c) else c
                reported = math.nan if theta is None else c
                pairs.append((dt, choice, reported, i + 1, tm, te, time_ok, sim_ok))

        if v.first_hit_rank:
            at_rank = [p for p in pairs if p[3] == v.first_hit_rank and p[6] and p[7]]
            best = max(at_rank, key=lambda p: (p[1], -p[0]))
            v.best_model_rank, v.best_model_timestamp = best[3], best[4]
            v.best_expert_timestamp, v.best_dt, v.best_cosine = best[5], best[0], best[2]
        if pairs:
            v.min_dt = min(p[0] for p in pairs)
            finite = [p[1] for p in pairs if p[1] > -math.inf]
            v.max_cosine = max(finite) if finite and theta is not None else math.nan
            any_time = any(p[6] for p in pairs)
            any_sim = any(p[7] for p in pairs)
            if v.first_hit_rank:
                near = (v.best_dt, v.best_cosine)
            elif any_time:
                p = max((p for p in pairs if p[6]), key=lambda p: (p[1], -p[0]))
                near = (p[0], p[2])
            elif any_sim:
                p = min((p for p in pairs if p[7]), key=lambda p: (p[0], -p[1]))
                near = (p[0], p[2])
            else:
                p = max(pairs, key=lambda p: (p[1], -p[0]))
                near = (p[0], p[2])
            v.nearest_dt, v.nearest_cosine = near
        else:
            any_time = any_sim = False

        if v.first_hit_rank:
            v.miss_reason = ""
        elif not considered:
            v.miss_reason = "no_predictions"
        elif any_time and any_sim:
            v.miss_reason = "time+similarity"
        elif any_time:
            v.miss_reason = "similarity"
        elif any_sim:
            v.miss_reason = "time"
        else:
            v.miss_reason = "neither"

        if v.first_hit_rank:
            recall[v.first_hit_rank] += 1
            rr += 1.0 / v.first_hit_rank
        prec += v.n_matched_model / len(considered) if considered else 0.0
        cov += v.n_matched_expert / len(e_frames)

        for st in dict.fromkeys(sweep_taus):
            for sth in dict.fromkeys(sweep_thetas) if theta is not None else (None,):
                first = 0
                for i, (tm, em) in enumerate(considered):
                    if any(matches(tm, em, te, ee, st, sth) for te, ee in e_frames):
                        first = i + 1
                        break
                for k in range(1, k_max + 1):
                    key = (st, math.nan if sth is None else sth, k)
                    hit = 1 if first and first <= k else 0
                    result.sweep[key] = result.sweep.get(key, 0) + hit

    n = len(eligible)
    m = result.metrics
    running = 0
    for k in range(1, k_max + 1):
        running += recall[k]
        m[f"recall_at_{k}"] = running / n if n else math.nan
    m[f"mrr_at_{k_max}"] = rr / n if n else math.nan
    m[f"precision_at_{k_max}"] = prec / n if n else math.nan
    m[f"expert_coverage_at_{k_max}"] = cov / n if n else math.nan
    m["n_videos_eligible"] = n
    m["n_videos_excluded"] = excluded
    m["n_videos_without_predictions"] = without
    m["n_prediction_videos_unknown"] = unknown
    m["n_predictions_truncated"] = truncated
    m["n_expert_duplicates_dropped"] = dups
    result.sweep = {key: (val / n if n else math.nan) for key, val in result.sweep.items()}
    return result
