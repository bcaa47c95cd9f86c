"""Loading and validating the poster tables: formats, ids, ranks, and every bad-input class."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evaluator.errors import InputError
from evaluator.io.poster import load_poster_inputs
from tests.io.tables_kit import write_table

EMB = [1.0, 0.0, 0.0, 0.0]


def experts_frame(n_videos: int = 2, per_video: int = 5) -> pd.DataFrame:
    rows = [
        {"video_id": f"v{v}", "timestamp": 10.0 * i, "embedding": EMB}
        for v in range(n_videos)
        for i in range(per_video)
    ]
    return pd.DataFrame(rows)


def predictions_frame() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"video_id": "v0", "timestamp": 1.0, "embedding": EMB, "rank": 1},
            {"video_id": "v0", "timestamp": 20.0, "embedding": EMB, "rank": 2},
            {"video_id": "v1", "timestamp": 5.0, "embedding": EMB, "rank": 1},
        ]
    )


def write(frame: pd.DataFrame, path: Path) -> Path:
    """Write a frame in the format of the path's extension (CSV cells hold JSON arrays)."""
    return write_table(frame, path, json_cells=["embedding"])


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_every_format_loads_to_the_same_frames(tmp_path: Path, suffix: str) -> None:
    e = write(experts_frame(), tmp_path / f"experts{suffix}")
    p = write(predictions_frame(), tmp_path / f"predictions{suffix}")
    inputs = load_poster_inputs(e, p, need_embeddings=True)
    assert inputs.n_videos == 2
    assert inputs.experts.embedding.shape == (10, 4)
    assert inputs.experts.embedding.dtype == np.float32
    assert inputs.model.rank.tolist() == [1, 2, 1]
    assert sorted(inputs.video_ids.tolist()) == ["v0", "v1"]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_video_ids_are_text_007_is_not_7(tmp_path: Path, suffix: str) -> None:
    e = tmp_path / f"e{suffix}"
    p = tmp_path / f"p{suffix}"
    if suffix == ".csv":
        e.write_text("video_id,timestamp\n007,1.0\n")
        p.write_text("video_id,timestamp,rank\n7,1.0,1\n")
    else:
        e.write_text('{"video_id": "007", "timestamp": 1.0}\n')
        p.write_text(
            '{"video_id": 7, "timestamp": 1.0, "rank": 1}\n{"video_id": "x", '
            '"timestamp": 2.0, "rank": 1}\n'
        )
    inputs = load_poster_inputs(e, p, need_embeddings=False)
    assert set(inputs.video_ids.tolist()) >= {"007", "7"}
    assert inputs.experts.video[0] != inputs.model.video[0]


def test_integer_video_ids_in_parquet_are_read_as_text(tmp_path: Path) -> None:
    e = write(
        pd.DataFrame({"video_id": [7] * 5, "timestamp": np.arange(5.0)}), tmp_path / "e.parquet"
    )
    p = write(
        pd.DataFrame({"video_id": ["7"], "timestamp": [0.0], "rank": [1]}), tmp_path / "p.parquet"
    )
    inputs = load_poster_inputs(e, p, need_embeddings=False)
    assert inputs.n_videos == 1


def test_score_column_gives_ranks_with_ties_by_earlier_timestamp(tmp_path: Path) -> None:
    e = write(experts_frame(1), tmp_path / "e.parquet")
    p = write(
        pd.DataFrame(
            {
                "video_id": ["v0"] * 3,
                "timestamp": [4.0, 9.0, 2.0],
                "score": [0.5, 0.9, 0.5],
                "embedding": [EMB] * 3,
            }
        ),
        tmp_path / "p.parquet",
    )
    inputs = load_poster_inputs(e, p, need_embeddings=True)
    assert inputs.model.rank.tolist() == [3, 1, 2]
    assert inputs.prediction_table.rank_source == "score"


def test_time_only_needs_no_embedding_column(tmp_path: Path) -> None:
    e = write(experts_frame().drop(columns="embedding"), tmp_path / "e.csv")
    p = write(predictions_frame().drop(columns="embedding"), tmp_path / "p.csv")
    inputs = load_poster_inputs(e, p, need_embeddings=False)
    assert inputs.experts.embedding is None


def _bad(frame: pd.DataFrame, column: str, index: int, value: object) -> pd.DataFrame:
    out = frame.copy()
    out[column] = out[column].astype(object)
    out.at[index, column] = value
    if isinstance(value, str):  # a text value makes the whole column text, as in a real file
        out[column] = out[column].astype(str)
    return out


BAD_EXPERTS = [
    ("missing video_id", experts_frame().drop(columns="video_id"), r"missing column 'video_id'"),
    ("missing timestamp", experts_frame().drop(columns="timestamp"), r"missing column 'timestamp'"),
    (
        "missing embedding",
        experts_frame().drop(columns="embedding"),
        r"missing column 'embedding'.*min_cosine=null",
    ),
    (
        "NaN timestamp",
        _bad(experts_frame(), "timestamp", 3, float("nan")),
        r"column 'timestamp'.*finite and >= 0.*row 4 \(timestamp=nan, video_id='v0'\)",
    ),
    (
        "inf timestamp",
        _bad(experts_frame(), "timestamp", 0, float("inf")),
        r"column 'timestamp'.*row 1",
    ),
    (
        "negative timestamp",
        _bad(experts_frame(), "timestamp", 7, -1.0),
        r"column 'timestamp'.*row 8 \(timestamp=-1.0, video_id='v1'\)",
    ),
    (
        "text timestamp",
        _bad(experts_frame(), "timestamp", 2, "noon"),
        r"column 'timestamp'.*wrong type",
    ),
    (
        "short embedding",
        _bad(experts_frame(), "embedding", 5, [1.0, 2.0]),
        r"column 'embedding'.*different lengths.*row 6",
    ),
    (
        "NaN in embedding",
        _bad(experts_frame(), "embedding", 1, [1.0, float("nan"), 0.0, 0.0]),
        r"column 'embedding'.*NaN.*row 2",
    ),
    (
        "missing embedding row",
        _bad(experts_frame(), "embedding", 4, None),
        r"column 'embedding'.*missing embedding vector.*row 5",
    ),
    (
        "missing video id",
        _bad(experts_frame(), "video_id", 2, None),
        r"column 'video_id'.*missing video id.*row 3",
    ),
    ("empty table", experts_frame().iloc[:0], r"empty"),
]


@pytest.mark.parametrize(("name", "frame", "message"), BAD_EXPERTS, ids=[b[0] for b in BAD_EXPERTS])
@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".csv"])
def test_bad_expert_tables_are_refused(tmp_path, name, frame, message, suffix) -> None:
    e = write(frame, tmp_path / f"experts{suffix}")
    p = write(predictions_frame(), tmp_path / "predictions.parquet")
    with pytest.raises(InputError, match=message) as info:
        load_poster_inputs(e, p, need_embeddings=True)
    assert str(e) in str(info.value)


BAD_PREDICTIONS = [
    (
        "no rank or score",
        predictions_frame().drop(columns="rank"),
        r"missing column 'rank' or 'score'",
    ),
    (
        "duplicate rank",
        _bad(predictions_frame(), "rank", 1, 1),
        r"column 'rank'.*duplicate rank within a video.*row 1.*row 2",
    ),
    ("zero rank", _bad(predictions_frame(), "rank", 2, 0), r"column 'rank'.*>= 1.*row 3"),
    (
        "fractional rank",
        _bad(predictions_frame(), "rank", 0, 1.5),
        r"column 'rank'.*whole number.*row 1",
    ),
    ("text rank", _bad(predictions_frame(), "rank", 0, "first"), r"column 'rank'.*wrong type"),
]


@pytest.mark.parametrize(
    ("name", "frame", "message"), BAD_PREDICTIONS, ids=[b[0] for b in BAD_PREDICTIONS]
)
@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_bad_prediction_tables_are_refused(tmp_path, name, frame, message, suffix) -> None:
    e = write(experts_frame(), tmp_path / "experts.parquet")
    p = write(frame, tmp_path / f"predictions{suffix}")
    with pytest.raises(InputError, match=message) as info:
        load_poster_inputs(e, p, need_embeddings=True)
    assert str(p) in str(info.value)


def test_nan_score_is_refused(tmp_path: Path) -> None:
    e = write(experts_frame(), tmp_path / "e.parquet")
    frame = predictions_frame().drop(columns="rank").assign(score=[0.1, float("nan"), 0.3])
    p = write(frame, tmp_path / "p.parquet")
    with pytest.raises(InputError, match=r"column 'score'.*finite.*row 2"):
        load_poster_inputs(e, p, need_embeddings=True)


def test_embedding_lengths_must_agree_between_files(tmp_path: Path) -> None:
    e = write(experts_frame(), tmp_path / "e.parquet")
    frame = predictions_frame().assign(embedding=[[1.0, 0.0]] * 3)
    p = write(frame, tmp_path / "p.parquet")
    with pytest.raises(InputError, match=r"p.parquet: column 'embedding'.*this file has 2.*has 4"):
        load_poster_inputs(e, p, need_embeddings=True)


def test_only_five_rows_are_listed(tmp_path: Path) -> None:
    frame = experts_frame(n_videos=3)
    frame["timestamp"] = -1.0
    e = write(frame, tmp_path / "e.parquet")
    p = write(predictions_frame(), tmp_path / "p.parquet")
    with pytest.raises(InputError, match=r"in 15 rows: row 1 .*row 5 \(.*\) and 10 more\.") as info:
        load_poster_inputs(e, p, need_embeddings=True)
    assert "row 6" not in str(info.value)


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (None, "missing.parquet", r"file not found"),
        ("x", "table.xlsx", r"unsupported file type '.xlsx'"),
        ("", "empty.csv", r"empty"),
        ("video_id,timestamp,embedding\n", "header_only.csv", r"empty"),
        ("not parquet", "broken.parquet", r"cannot be read as parquet"),
        (
            '{"video_id": "a", "timestamp": 1}\n{broken\n',
            "broken.jsonl",
            r"line 2 is not valid JSON",
        ),
        ('video_id,timestamp,embedding\na,1,"[1, x]"\n', "text.csv", r"column 'embedding'.*row 1"),
        ('video_id,timestamp,embedding\na,1,"1, 2"\n', "nobrackets.csv", r"JSON array.*row 1"),
    ],
)
def test_unreadable_files_are_refused(tmp_path, content, name, message) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    p = write(predictions_frame(), tmp_path / "p.parquet")
    with pytest.raises(InputError, match=message):
        load_poster_inputs(path, p, need_embeddings=True)


def test_image_column_without_an_embedder_says_how_to_enable_one(tmp_path: Path) -> None:
    frame = experts_frame().drop(columns="embedding").assign(image="frames/a.jpg")
    e = write(frame, tmp_path / "e.parquet")
    p = write(predictions_frame(), tmp_path / "p.parquet")
    with pytest.raises(InputError, match=r"column 'image'.*embedder=torchvision"):
        load_poster_inputs(e, p, need_embeddings=True)
