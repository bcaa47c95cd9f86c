"""Reading and validating the slice metadata (data.slices): good files and bad ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evaluator.errors import InputError
from evaluator.io.slices import load_slice_table
from tests.io.tables_kit import write_table

TEXTS = ["드라마", "Action & Adventure", "SF/Fantasy", "kids show"]


def _write(frame: pd.DataFrame, path: Path) -> Path:
    return write_table(frame, path, ensure_ascii=False)  # JSON lines keep the raw UTF-8


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_any_text_is_a_value_and_numbers_are_binned(tmp_path: Path, suffix: str) -> None:
    frame = pd.DataFrame(
        {
            "video_id": ["007", "7", "a", "b"],
            "genre": TEXTS,
            "duration_s": [0.0, 600.0, 1799.5, 3600.0],
            "season": [1, 2, 2, 1],
        }
    )
    path = _write(frame, tmp_path / f"meta{suffix}")
    t = load_slice_table(
        path, bins={"duration_s": [0, 600, 1800, float("inf")]}, categorical=["season"]
    )
    assert t.video_id.tolist() == ["007", "7", "a", "b"]  # ids stay text, zeros kept
    genre, duration, season = t.columns
    assert [genre.values[c] for c in genre.codes] == TEXTS
    assert duration.values == ("[0, 600)", "[600, 1800)", "[1800, inf)")
    assert duration.codes.tolist() == [0, 1, 1, 2]
    assert duration.segments == ("0-600", "600-1800", "1800-inf")
    assert season.values == ("1", "2") and season.codes.tolist() == [0, 1, 1, 0]


def test_columns_select_and_empty_cells_are_missing(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("video_id,genre,lang,extra\nv1,anime,ko,1\nv2,,en,2\nv3,  ,ko,3\n")
    t = load_slice_table(path, columns=["lang", "genre"])
    assert [c.name for c in t.columns] == ["lang", "genre"]
    assert t.columns[1].codes.tolist() == [0, -1, -1]


def test_a_folder_of_part_files_is_one_table(tmp_path: Path) -> None:
    folder = tmp_path / "meta"
    folder.mkdir()
    _write(pd.DataFrame({"video_id": ["a", "b"], "genre": ["x", "y"]}), folder / "part-0.csv")
    _write(pd.DataFrame({"video_id": ["c"], "genre": ["x"]}), folder / "part-1.parquet")
    (folder / "_SUCCESS").write_text("")
    t = load_slice_table(folder)
    assert t.video_id.tolist() == ["a", "b", "c"] and t.columns[0].codes.tolist() == [0, 1, 0]
    _write(pd.DataFrame({"video_id": ["b"], "genre": ["z"]}), folder / "part-2.csv")
    with pytest.raises(
        InputError, match=r"duplicate video id .*part='part-0.csv:2'.*part='part-2.csv:1'"
    ):
        load_slice_table(folder)


def _bad(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    return path


BAD = [
    ("genre\nanime\n", {}, r"bad.csv: missing column 'video_id' required in the slices table"),
    (
        "video_id,genre\na,x\nb,y\na,z\n",
        {},
        r"bad.csv: column 'video_id': duplicate video id \(the slices table needs one row per "
        r"video\) in 2 rows: row 1 \(video_id='a'\), row 3 \(video_id='a'\)",
    ),
    (
        "video_id,duration_s\na,12.5\n",
        {},
        r"column 'duration_s' is numeric \(double\): give its bins, e.g\. "
        r"slices.bins=\{duration_s: \[0, 600, 1800, inf\]\}, or make it categorical with "
        r"slices.categorical=\[duration_s\]",
    ),
    (
        "video_id,duration_s\na,12\nb,long\n",
        {"bins": {"duration_s": [0, 100]}},
        r"column 'duration_s': wrong type: expected a number \(the column has bins\), got text in "
        r"1 row: row 2",
    ),
    (
        "video_id,duration_s\na,12\nb,100\nc,100.5\n",
        {"bins": {"duration_s": [0, 100]}},
        r"column 'duration_s': value outside the bins \[0, 100\] .* in 1 row: row 3",
    ),
    ("video_id,genre\na,x\n", {"columns": ["lang"]}, r"slices.columns names \['lang'\]"),
    (
        "video_id,genre\na,x\n",
        {"bins": {"genre": [0, 1], "x": [0, 1]}},
        r"slices.bins names \['x'\]",
    ),
    ("video_id\na\n", {}, "no column besides video_id"),
    (
        "video_id,n\na,1\n",
        {"bins": {"n": [0, 1]}, "categorical": ["n"]},
        r"in both slices.bins and slices.categorical",
    ),
    ("video_id,n\na,1\n", {"bins": {"n": [1, 0]}}, r"config: slices.bins.n: bins must be"),
    ("video_id,genre\n,x\n", {}, r"column 'video_id': missing video id in 1 row: row 1"),
]


@pytest.mark.parametrize(("text", "kw", "message"), BAD)
def test_bad_input(tmp_path: Path, text: str, kw: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        load_slice_table(_bad(tmp_path, text), **kw)


def test_missing_file_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        load_slice_table(tmp_path / "nope.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no part files"):
        load_slice_table(tmp_path / "empty")


def test_many_rows_are_vectorized(tmp_path: Path) -> None:
    n = 50_000
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"video_id": [f"v{i}" for i in range(n)], "series": rng.integers(0, 5000, n).astype(str)}
    )
    t = load_slice_table(_write(frame, tmp_path / "big.parquet"))
    assert len(t.columns[0].values) == len(set(frame["series"]))
