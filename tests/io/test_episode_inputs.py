"""Loading and validating the episode table: formats, ids, groups, and every bad-input class."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evaluator.errors import InputError
from evaluator.io.episode import load_episode_table
from tests.io.tables_kit import episode_frame
from tests.io.tables_kit import write_table as write


def good_frame() -> pd.DataFrame:
    return episode_frame(
        ["007", "7", "a", "b"],
        [1, 5, 3, 4],
        [1, 5, 4, 4],
        series_id=["s1", "s1", "s2", "s2"],
        season=[1, 1, 2, 2],
    )


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_every_format_loads_to_the_same_arrays(tmp_path: Path, suffix: str) -> None:
    t = load_episode_table(write(good_frame(), tmp_path / f"episodes{suffix}"))
    assert t.video_id.tolist() == ["007", "7", "a", "b"]  # text: "007" and "7" differ
    assert t.metadata_episode.tolist() == [1, 2, 3, 4]
    assert t.predicted_episode.tolist() == [1, 5, 3, 4]
    assert t.true_episode.tolist() == [1, 5, 4, 4]
    assert t.metadata_episode.dtype == np.int64
    assert t.confidence.tolist() == [0.9, 0.5, 1.0, 0.0]
    assert t.group_column == "series_id"
    assert t.groups.tolist() == ["s1", "s1", "s2", "s2"]
    assert set(t.carried) == {"series_id", "season"}
    assert t.carried["season"].tolist() == [1, 1, 2, 2]


def test_csv_video_ids_keep_leading_zeros(tmp_path: Path) -> None:
    p = tmp_path / "e.csv"
    p.write_text(
        "video_id,metadata_episode,predicted_episode,confidence,true_episode\n"
        "007,1,1,0.5,1\n7,2,2,0.5,2\n"
    )
    assert load_episode_table(p).video_id.tolist() == ["007", "7"]


def test_integral_floats_are_episode_numbers(tmp_path: Path) -> None:
    frame = good_frame().astype({"metadata_episode": float, "true_episode": float})
    t = load_episode_table(write(frame, tmp_path / "e.parquet"))
    assert t.metadata_episode.tolist() == [1, 2, 3, 4]
    assert t.true_episode.dtype == np.int64


def test_optional_columns_are_optional(tmp_path: Path) -> None:
    frame = good_frame().drop(columns=["series_id", "season"])
    t = load_episode_table(write(frame, tmp_path / "e.parquet"))
    assert t.groups is None and t.group_column is None and t.carried == {}


def test_group_by_another_column_or_none(tmp_path: Path) -> None:
    path = write(good_frame(), tmp_path / "e.parquet")
    by_season = load_episode_table(path, group_by="season")
    assert by_season.group_column == "season"
    assert by_season.groups.tolist() == [1, 1, 2, 2]
    none = load_episode_table(path, group_by=None)
    assert none.groups is None and set(none.carried) == {"series_id", "season"}


def test_missing_season_is_fine_unless_it_groups(tmp_path: Path) -> None:
    frame = good_frame().astype({"season": "Int64"})
    frame.loc[2, "season"] = pd.NA
    path = write(frame, tmp_path / "e.parquet")
    assert load_episode_table(path).carried["season"].isna().sum() == 1
    with pytest.raises(InputError, match=r"column 'season': missing group label.* row 3"):
        load_episode_table(path, group_by="season")


def _with(**changes: object) -> pd.DataFrame:
    frame = good_frame().astype(object)
    for key, value in changes.items():
        column, row = key.rsplit("__", 1)
        frame.loc[int(row), column] = value
    return frame


BAD_INPUTS = [
    # (description, frame or raw text, suffix, expected message fragment)
    (
        "missing column",
        good_frame().drop(columns=["true_episode"]),
        ".parquet",
        r"missing column 'true_episode' required in the episodes table",
    ),
    (
        "missing two columns",
        good_frame().drop(columns=["confidence", "predicted_episode"]),
        ".csv",
        r"missing columns 'predicted_episode', 'confidence'",
    ),
    (
        "confidence above 1",
        _with(confidence__1=1.5),
        ".jsonl",
        r"column 'confidence': confidence must be a number in \[0, 1\].* in 1 row: "
        r"row 2 \(confidence=1.5, video_id='7'\)",
    ),
    (
        "negative confidence",
        _with(confidence__0=-0.1, confidence__3=-2),
        ".csv",
        r"column 'confidence'.* in 2 rows: row 1 .*row 4",
    ),
    (
        "NaN confidence",
        good_frame().astype({"confidence": float}).assign(confidence=[0.5, np.nan, 0.5, 0.5]),
        ".parquet",
        r"column 'confidence'.*missing, NaN or out-of-range.* row 2",
    ),
    (
        "empty confidence cell",
        "video_id,metadata_episode,predicted_episode,confidence,true_episode\na,1,1,,1\n",
        ".csv",
        r"column 'confidence'.* row 1",
    ),
    (
        "text confidence",
        _with(confidence__2="high"),
        ".csv",
        r"column 'confidence': wrong type: expected a number in \[0, 1\], got text.* row 3",
    ),
    (
        "duplicate video id",
        _with(video_id__3="a"),
        ".parquet",
        r"column 'video_id': duplicate video id .* in 2 rows: row 3 \(video_id='a'\), "
        r"row 4 \(video_id='a'\)",
    ),
    (
        "fractional episode",
        _with(predicted_episode__1=2.5),
        ".jsonl",
        r"column 'predicted_episode': episode number must be a whole number.* row 2 "
        r"\(predicted_episode=2.5",
    ),
    (
        "NaN episode",
        good_frame().astype({"true_episode": float}).assign(true_episode=[1, np.nan, 3, 4]),
        ".parquet",
        r"column 'true_episode': episode number must be a whole number.* row 2",
    ),
    (
        "text episode",
        _with(metadata_episode__0="S01E01"),
        ".csv",
        r"column 'metadata_episode': wrong type: expected a whole episode number, got text.* "
        r"row 1 \(metadata_episode='S01E01'",
    ),
    (
        "missing video id",
        _with(video_id__2=None),
        ".jsonl",
        r"column 'video_id': missing video id in 1 row: row 3",
    ),
    (
        "header only",
        "video_id,metadata_episode,predicted_episode,confidence,true_episode\n",
        ".csv",
        r"the table is empty",
    ),
    ("empty file", "", ".csv", r"the file is empty"),
    ("empty jsonl", "", ".jsonl", r"the table is empty"),
    ("wrong extension", "x", ".xlsx", r"unsupported file type '.xlsx'"),
]


@pytest.mark.parametrize(
    ("frame", "suffix", "message"),
    [case[1:] for case in BAD_INPUTS],
    ids=[case[0] for case in BAD_INPUTS],
)
def test_bad_input_is_refused_with_file_column_and_rows(
    tmp_path: Path, frame: pd.DataFrame | str, suffix: str, message: str
) -> None:
    path = tmp_path / f"episodes{suffix}"
    if isinstance(frame, str):
        path.write_text(frame)
    else:
        write(frame, path)
    with pytest.raises(InputError, match=message) as info:
        load_episode_table(path)
    assert str(info.value).startswith(str(path))


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope.parquet: file not found"):
        load_episode_table(tmp_path / "nope.parquet")


def test_at_most_five_rows_are_listed(tmp_path: Path) -> None:
    n = 8
    frame = pd.DataFrame(
        {
            "video_id": [f"v{i}" for i in range(n)],
            "metadata_episode": [1] * n,
            "predicted_episode": [1] * n,
            "confidence": [2.0] * n,
            "true_episode": [1] * n,
        }
    )
    with pytest.raises(InputError, match=r"in 8 rows: row 1 .*row 5 \(.*\) and 3 more\.$"):
        load_episode_table(write(frame, tmp_path / "e.parquet"))
