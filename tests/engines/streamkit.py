"""Random poster sets written as part files, and a deep equality of two engines' answers."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from evaluator.core.poster import PosterSettings
from evaluator.engines.local import Scored, score_poster, stream_sources
from evaluator.engines.units import score_unit
from evaluator.io.poster import load_poster_inputs
from evaluator.io.sources import resolve_source
from evaluator.report.gallery import ScoredSet

# Time tolerance 3 s and min cosine 0.5 (the defaults) with a sweep around both.
SETTINGS = PosterSettings(
    time_tolerance_s=3.0,
    min_cosine=0.5,
    min_expert_frames=2,
    k_max=4,
    sweep_time_tolerances_s=(2.5, 3.0, 3.5),
    sweep_min_cosines=(0.4, 0.5, 0.6),
)
# Small integer entries: every dot product is exact, and cosines of exactly 0.5 are common
# ((1,1,1,1) . (1,0,0,0) = 1, norms 2 and 1).
_VECTORS = np.array(
    [[1, 1, 1, 1], [1, 0, 0, 0], [0, 1, 0, 0], [1, 1, 0, 0], [2, 0, 0, 0], [1, 0, 1, 0]],
    dtype=np.float64,
)


def random_tables(
    seed: int, n_videos: int, *, int_ids: bool = False, images: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Experts and predictions of ``n_videos`` videos, rows shuffled within each table.

    Timestamps on a 0.5 s grid (so |dt| is often exactly 3.0), exact duplicate expert rows,
    videos only in one table, predictions ranked 1..n per video in random order.
    """
    rng = np.random.default_rng(seed)
    exp_rows: list[dict[str, Any]] = []
    pred_rows: list[dict[str, Any]] = []
    for v in range(n_videos):
        vid: Any = v * 7 + 3 if int_ids else f"v{v:03d}"
        n_exp = int(rng.integers(0, 6))
        for i in range(n_exp):
            row = {
                "video_id": vid,
                "timestamp": float(rng.integers(0, 21)) / 2,
                "embedding": _VECTORS[rng.integers(len(_VECTORS))],
                "annotator": f"a{int(rng.integers(2))}",
            }
            if images:
                row["image"] = f"frames/{v}/e{i}.jpg"
            exp_rows.append(row)
            if rng.random() < 0.15:
                exp_rows.append(dict(row))  # an exact duplicate
        n_pred = int(rng.integers(0, 6))
        for r, rank in enumerate(rng.permutation(n_pred) + 1):
            row = {
                "video_id": vid,
                "timestamp": float(rng.integers(0, 21)) / 2,
                "rank": int(rank),
                "embedding": _VECTORS[rng.integers(len(_VECTORS))],
            }
            if images:
                row["image"] = f"frames/{v}/p{r}.jpg"
            pred_rows.append(row)
    if not exp_rows:
        exp_rows.append(
            {"video_id": 0 if int_ids else "v000", "timestamp": 0.0, "embedding": _VECTORS[0]}
            | ({"annotator": "a0", "image": "frames/0/e.jpg"} if images else {"annotator": "a0"})
        )
    experts = pd.DataFrame(exp_rows).sample(frac=1, random_state=seed).reset_index(drop=True)
    preds = pd.DataFrame(pred_rows)
    if preds.empty:
        preds = pd.DataFrame({"video_id": [], "timestamp": [], "rank": [], "embedding": []}).astype(
            {"video_id": "int64" if int_ids else "object", "rank": "int64"}
        )
    preds = preds.sample(frac=1, random_state=seed + 1).reset_index(drop=True)
    return experts, preds


def arrow_table(
    frame: pd.DataFrame, *, dtype: str = "float32", fixed: bool = False, dim: int = 4
) -> pa.Table:
    """The frame as Arrow with embeddings as list<dtype> or fixed_size_list<dtype, dim>."""
    value = {"float16": pa.float16(), "float32": pa.float32(), "float64": pa.float64()}[dtype]
    columns = {}
    for name in frame.columns:
        if name == "embedding":
            flat = (
                np.concatenate([np.asarray(e) for e in frame[name]]) if len(frame) else np.zeros(0)
            ).astype(dtype)
            values = pa.array(flat, value)
            if fixed:
                columns[name] = pa.FixedSizeListArray.from_arrays(values, dim)
            else:
                offsets = pa.array(np.arange(0, len(flat) + 1, dim, dtype=np.int32))
                columns[name] = pa.ListArray.from_arrays(offsets, values)
        else:
            values = frame[name].to_list() if len(frame) else []
            columns[name] = pa.array(values, _type(frame[name]))
    return pa.table(columns)


def _type(col: pd.Series) -> pa.DataType:
    if col.name == "video_id":
        return pa.int64() if pd.api.types.is_integer_dtype(col) else pa.string()
    if col.name in ("rank",):
        return pa.int64()
    if col.name == "timestamp":
        return pa.float64()
    return pa.string()


def write_parts(
    table: pa.Table, folder: Path, n_parts: int, seed: int, *, bookkeeping: bool = True
) -> list[Path]:
    """Split the rows (in order) into ``n_parts`` part files under ``folder`` (some may be
    empty), with Spark's ``_SUCCESS`` and hidden ``.crc`` files beside them."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.integers(0, table.num_rows + 1, size=n_parts - 1))
    bounds = [0, *cuts.tolist(), table.num_rows]
    paths = []
    for i in range(n_parts):
        path = folder / f"part-{i:05d}-c000.snappy.parquet"
        pq.write_table(table.slice(bounds[i], bounds[i + 1] - bounds[i]), path)
        paths.append(path)
        if bookkeeping:
            (folder / f".part-{i:05d}-c000.snappy.parquet.crc").write_bytes(b"\x00crc")
    if bookkeeping:
        (folder / "_SUCCESS").write_text("")
        (folder / "_temporary").mkdir(exist_ok=True)
        (folder / "_temporary" / "junk.parquet").write_bytes(b"not parquet")
    return paths


def assert_same(a: Any, b: Any, where: str = "") -> None:
    """Deep equality of dataclasses, dicts, tuples and arrays; NaN equals NaN, bit for bit."""
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        assert type(a) is type(b), where
        for f in dataclasses.fields(a):
            assert_same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), where
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray), where
        assert a.shape == b.shape, f"{where}: shape {a.shape} != {b.shape}"
        if a.dtype.kind in "fc":
            assert a.dtype == b.dtype, f"{where}: {a.dtype} != {b.dtype}"
            np.testing.assert_array_equal(a, b, err_msg=where, strict=True)
        else:
            assert a.dtype.kind == b.dtype.kind, f"{where}: {a.dtype} != {b.dtype}"
            assert a.tolist() == b.tolist(), where
    elif isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=where)
    elif isinstance(a, float) and isinstance(b, float) and np.isnan(a):
        assert np.isnan(b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def scored_units(seed: int, n_videos: int, n_units: int) -> list[ScoredSet]:
    """`random_tables` scored as ``n_units`` units of disjoint videos, gallery frames kept."""
    experts, preds = random_tables(seed, n_videos, images=False)
    return [
        score_unit(
            arrow_table(experts[experts.video_id.isin(group)]),
            arrow_table(preds[preds.video_id.isin(group)]),
            SETTINGS,
            judge_frames=True,
        )
        for group in np.array_split(experts.video_id.unique(), n_units)
    ]


def score_whole(
    root: Path, exp: pa.Table, pred: pa.Table, settings: PosterSettings, **options: Any
) -> Scored:
    """The two tables written whole into ``root`` and scored in memory (`score_poster` with
    ``options``): the reference the streamed engines are compared with."""
    pq.write_table(exp, root / "experts.parquet")
    pq.write_table(pred, root / "predictions.parquet")
    inputs = load_poster_inputs(
        root / "experts.parquet", root / "predictions.parquet", need_embeddings=True
    )
    return score_poster(inputs, settings, **options)


def score_streamed(
    root: Path,
    exp: pa.Table,
    pred: pa.Table,
    settings: PosterSettings,
    *,
    n_parts: tuple[int, int],
    seed: int,
    budget_mb: float,
    **options: Any,
) -> Scored:
    """The two tables written as part files into ``root`` (``n_parts`` each, rows shuffled by
    ``seed`` and ``seed + 1``) and streamed through ``root / "tmp"`` (`stream_sources`, frames
    judged, with ``options``); its temporary buckets must be gone afterwards."""
    write_parts(exp, root / "experts", n_parts[0], seed)
    write_parts(pred, root / "predictions", n_parts[1], seed + 1)
    (root / "tmp").mkdir()
    scored = stream_sources(
        resolve_source(root / "experts", "experts"),
        resolve_source(root / "predictions", "predictions"),
        settings,
        budget_mb=budget_mb,
        temp_dir=str(root / "tmp"),
        judge_frames=True,
        **options,
    )
    assert list((root / "tmp").iterdir()) == []  # temporary buckets removed
    return scored
