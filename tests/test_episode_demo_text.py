"""The episode demo's text side: its own draws, so the episode columns stay what they were."""

from __future__ import annotations

import pandas as pd
import pytest

from evaluator.demo import episode_data
from evaluator.demo.episode_data import make_episode_demo
from evaluator.io.episode_text import OPTIONAL_TEXT_COLUMNS


def test_text_draws_leave_the_episode_columns_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    before = make_episode_demo(200, seed=3)
    # Other text settings draw other texts (and a different number of draws of the text side).
    monkeypatch.setattr(episode_data, "NOT_TRANSCRIBED", 0.7)
    monkeypatch.setattr(episode_data, "TEXT_SKILL", {k: 3.0 for k in episode_data.TEXT_SKILL})
    after = make_episode_demo(200, seed=3)
    for key, table in before.models.items():
        episode_columns = [c for c in table.columns if c not in OPTIONAL_TEXT_COLUMNS]
        pd.testing.assert_frame_equal(table[episode_columns], after.models[key][episode_columns])
        assert not table["text_read"].equals(after.models[key]["text_read"])


def test_the_demo_carries_every_kind_of_text() -> None:
    demo = make_episode_demo(600, seed=0)
    table = demo.models["episode_baseline"]
    truth = table["text_true"]
    assert truth.isna().any() and (truth.dropna() != "").all()  # missing, never empty
    reads = table["text_read"]
    assert (reads == "").any()  # read nothing
    assert reads.str.contains("[０-９]", regex=True).any()  # full-width digits
    assert reads.str.contains("[\t\u00a0\u3000]", regex=True).any()  # odd spacing
    assert table["text_episode"].isna().any()
    assert set(demo.cases.columns) == {"video_id", "burn_in", "font", "language"}
