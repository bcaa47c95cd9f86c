"""The optional text columns of the episode table: loading, and every bad-input class (exit 2)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evaluator.errors import InputError
from evaluator.io.episode import load_episode_table
from tests.conftest import run_cli
from tests.io.tables_kit import episode_frame
from tests.io.tables_kit import write_table as write


def text_frame() -> pd.DataFrame:
    return episode_frame(
        ["b", "a", "c", "d"],
        [1, 2, 3, 5],
        [1, 2, 3, 4],
        # object columns: None stays None (JSON null), not NaN
        text_read=pd.Series(["제1화", "", None, "EP\u00a04"], dtype=object),
        text_true=pd.Series(["제1화", "Episode 2", None, "EP 4"], dtype=object),
        text_episode=[1.0, np.nan, 3.0, 4.0],
    )


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_every_format_loads_the_text_columns_in_video_order(tmp_path: Path, suffix: str) -> None:
    t = load_episode_table(write(text_frame(), tmp_path / f"e{suffix}", ensure_ascii=False))
    assert t.video_id.tolist() == ["a", "b", "c", "d"]
    # "" and null both mean "read nothing" and are kept as null.
    assert t.texts.text_read.tolist() == [None, "제1화", None, "EP\u00a04"]
    assert t.texts.text_true.tolist() == ["Episode 2", "제1화", None, "EP 4"]
    te = t.texts.text_episode
    assert math.isnan(te[0]) and te[1:].tolist() == [1.0, 3.0, 4.0]


def test_csv_text_that_looks_like_a_number_stays_text(tmp_path: Path) -> None:
    frame = text_frame().assign(text_read=["007", "2", "3", "4"], text_true=["007", "2", "3", "4"])
    t = load_episode_table(write(frame, tmp_path / "e.csv"))
    assert t.texts.text_true.tolist() == ["2", "007", "3", "4"]


def test_without_text_columns_nothing_changes(tmp_path: Path) -> None:
    frame = text_frame().drop(columns=["text_read", "text_true", "text_episode"])
    t = load_episode_table(write(frame, tmp_path / "e.parquet"))
    assert t.texts.arrays() == (None, None, None)


def test_text_read_alone_or_text_episode_alone_is_fine(tmp_path: Path) -> None:
    alone = text_frame().drop(columns=["text_true", "text_episode"])
    assert load_episode_table(write(alone, tmp_path / "a.parquet")).texts.text_true is None
    second = text_frame().drop(columns=["text_true", "text_read"])
    t = load_episode_table(write(second, tmp_path / "b.parquet"))
    assert t.texts.text_read is None and t.texts.text_episode is not None


def _set(column: str, values: list) -> pd.DataFrame:
    frame = text_frame()
    frame[column] = pd.Series(values, dtype=object)
    return frame


BAD_TEXT_INPUTS = [
    # (description, frame or raw text, suffix, expected message)
    (
        "numbers in text_true",
        text_frame().assign(text_true=[1, 2, 3, 4]),
        ".parquet",
        r"column 'text_true': wrong type: expected text \(a string\), got int64 in 4 rows: "
        r"row 1 \(text_true=1, video_id='b'\)",
    ),
    (
        "a number among texts (JSON lines)",
        _set("text_read", ["제1화", 7, None, "x"]),
        ".jsonl",
        r"column 'text_read': wrong type: expected text .* in 1 row: row 2 \(text_read='7', "
        r"video_id='a'\)",
    ),
    (
        "lists in text_read",
        _set("text_read", [["a"], ["b"], None, ["c"]]),
        ".parquet",
        r"column 'text_read': wrong type: expected text \(a string\), got list<.*> in 3 rows: "
        r"row 1 .*row 2 .*row 4",
    ),
    (
        "a list among texts (JSON lines)",
        _set("text_true", ["제1화", "x", ["x"], "y"]),
        ".jsonl",
        r"column 'text_true': wrong type.* in 1 row: row 3",
    ),
    (
        "fractional text_episode",
        text_frame().assign(text_episode=[1.0, 2.5, np.nan, 4.0]),
        ".parquet",
        r"column 'text_episode': episode number must be a whole number or null.* in 1 row: "
        r"row 2 \(text_episode=2.5",
    ),
    (
        "infinite text_episode",
        text_frame().assign(text_episode=[1.0, np.inf, np.nan, 4.0]),
        ".parquet",
        r"column 'text_episode': .*whole number or null.* row 2",
    ),
    (
        "text in text_episode",
        _set("text_episode", ["1", "E2", None, "4"]),
        ".csv",
        r"column 'text_episode': wrong type: expected a whole episode number, got text.* row 2",
    ),
    (
        "boolean text_episode",
        text_frame().assign(text_episode=[True, False, True, True]),
        ".parquet",
        r"column 'text_episode': wrong type: expected a whole episode number, got bool",
    ),
    (
        "text_episode with no value",
        text_frame().assign(text_episode=[np.nan] * 4),
        ".parquet",
        r"column 'text_episode': the column is given but every value is missing.* in 4 rows",
    ),
    (
        "text_true with no value (CSV)",
        text_frame().assign(text_true=[None] * 4),
        ".csv",
        r"column 'text_true': the column is given but every value is missing \(no video is "
        r"transcribed.* in 4 rows: row 1",
    ),
    (
        "text_true without text_read",
        text_frame().drop(columns=["text_read"]),
        ".parquet",
        r"column 'text_read' is missing: with text_true the text metrics need",
    ),
]


@pytest.mark.parametrize(
    ("frame", "suffix", "message"),
    [case[1:] for case in BAD_TEXT_INPUTS],
    ids=[case[0] for case in BAD_TEXT_INPUTS],
)
def test_bad_text_input_is_refused_with_file_column_and_rows(
    tmp_path: Path, frame: pd.DataFrame, suffix: str, message: str
) -> None:
    path = write(frame, tmp_path / f"episodes{suffix}", ensure_ascii=False)
    with pytest.raises(InputError, match=message) as info:
        load_episode_table(path)
    assert str(info.value).startswith(str(path))


@pytest.mark.slow
def test_bad_text_input_exits_2_from_the_command_line(tmp_path: Path) -> None:
    path = write(text_frame().assign(text_true=[1, 2, 3, 4]), tmp_path / "e.parquet")
    result = run_cli(
        ["task=episode", f"data.episodes={path}", f"mlflow.tracking_uri=sqlite:///{tmp_path}/m.db"],
        tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert "column 'text_true': wrong type" in result.stderr
    assert not (tmp_path / "m.db").exists()
