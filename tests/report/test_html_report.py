"""report.html: frame-level verdicts agree with the core, the page is self-contained, thumbnails."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evaluator.core.frames import exact_duplicate_mask
from evaluator.demo.images import render_frame
from evaluator.report.gallery import FRAME_STATUSES
from evaluator.report.html import gallery_videos
from evaluator.tasks.poster import run_poster
from tests.conftest import compose_config


def report_data(page: str) -> dict:
    blob = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)
    assert blob is not None
    return json.loads(blob.group(1))


@pytest.fixture(scope="module")
def outcome(demo_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    cfg = compose_config(
        [f"data.experts={demo_files['experts']}", f"data.predictions={demo_files['baseline']}"]
    )
    out = tmp_path_factory.mktemp("report")
    return run_poster(cfg, out, track=False)


def test_report_is_written_and_self_contained(outcome) -> None:
    page = (outcome.output_dir / "report.html").read_text()
    assert "http://" not in page and "https://" not in page
    static = page.split("<script", 1)[0]  # the JS builds its own (data:) src values
    for attr in re.findall(r'(?:src|href)="([^"]*)"', static):
        assert attr.startswith(("data:image/png;base64,", "#")), attr
    # recall@k, pairs, sweep heatmap and the similarity calibration (the run has vectors)
    assert page.count("data:image/png;base64,") == 4
    m = outcome.summary["metrics"]
    assert f"{m['recall_at_10']:.3f}" in page
    assert f"{m['recall_at_10_ci_low']:.3f} – {m['recall_at_10_ci_high']:.3f}" in page


def test_gallery_agrees_with_the_match_table(outcome) -> None:
    data = report_data((outcome.output_dir / "report.html").read_text())
    table = outcome.match_table[outcome.match_table["eligible"]].set_index("video_id")
    videos = gallery_videos(data)
    assert len(videos) == len(table)
    # Misses first, then hits.
    hits = [v["hit"] > 0 for v in videos]
    assert hits == sorted(hits)
    for v in videos:
        row = table.loc[v["id"]]
        expected_hit = 0 if pd.isna(row["first_hit_rank"]) else int(row["first_hit_rank"])
        assert v["hit"] == expected_hit
        assert v["why"] == row["miss_reason"]
        assert len(v["e"]) == row["n_expert_frames"]
        assert len(v["m"]) == row["n_model_frames"]
        statuses = [m[2] for m in v["m"]]
        first = next((m[0] for m in v["m"] if m[2] == 0), 0)
        assert first == expected_hit
        assert statuses.count(0) == row["n_matched_model_frames"]
        assert sum(e[1] for e in v["e"]) == row["n_matched_expert_frames"]
        if v["why"] == "no_predictions":
            assert v["m"] == []
    assert data["statuses"] == list(FRAME_STATUSES)


def test_frame_verdicts_follow_the_rule_pair_by_pair(outcome, demo_files) -> None:
    """Each status and its (dt, cosine) pair is checked against a plain loop over pairs."""
    from evaluator.io.poster import load_poster_inputs

    inputs = load_poster_inputs(demo_files["experts"], demo_files["baseline"], need_embeddings=True)
    result = outcome.result
    assert outcome.scored is not None
    gallery = outcome.scored.gallery  # judged while scoring (report.html is on)
    fm = None if gallery is None else gallery.frames
    assert fm is not None
    tau, theta = result.settings.time_tolerance_s, result.settings.min_cosine
    exp, mod = inputs.experts, inputs.model
    # The streamed result keeps no per-row state; the core's duplicate rule gives the rows kept.
    keep = ~exact_duplicate_mask(exp)
    for j in range(0, len(fm.model_row), 7):
        row = fm.model_row[j]
        rows = np.flatnonzero((exp.video == mod.video[row]) & keep)
        a = mod.embedding[row].astype(np.float64)
        pairs = []
        for r in rows:
            b = exp.embedding[r].astype(np.float64)
            cos = float(a @ b / np.sqrt((a @ a) * (b @ b)))
            dt = abs(mod.timestamp[row] - exp.timestamp[r])
            # Only candidate pairs (within the largest tolerance in use) have a cosine.
            pairs.append((dt, cos if dt <= result.settings.candidate_window_s else np.nan))
        in_time = [p for p in pairs if p[0] <= tau]
        similar = [p for p in pairs if p[1] >= theta]
        matched = [p for p in in_time if p[1] >= theta]
        status = FRAME_STATUSES[fm.model_status[j]]
        if matched:
            assert status == "hit"
            best = max(p[1] for p in matched)
            assert fm.model_cosine[j] == pytest.approx(best, abs=1e-12)
        elif in_time:
            assert status == "near_time"
            assert fm.model_cosine[j] == pytest.approx(max(p[1] for p in in_time), abs=1e-12)
        elif similar:
            assert status == "near_similarity"
            assert fm.model_dt[j] == pytest.approx(min(p[0] for p in similar))
        else:
            assert status == "far"


def test_report_can_be_switched_off(demo_files, tmp_path) -> None:
    cfg = compose_config(
        [
            f"data.experts={demo_files['experts']}",
            f"data.predictions={demo_files['baseline']}",
            "report.html=false",
        ]
    )
    run_poster(cfg, tmp_path, track=False)
    assert not (tmp_path / "report.html").exists()
    assert (tmp_path / "summary.json").exists()


def write_image_set(root: Path) -> tuple[Path, Path]:
    """Six videos with image frames, time-only matching; video v5's frame file is missing."""
    (root / "frames").mkdir(parents=True)
    experts, preds = [], []
    for v in range(6):
        for i, t in enumerate((2.0, 10.0, 20.0)):
            name = f"frames/v{v}_e{i}.jpg"
            render_frame(v, t, size=160).save(root / name)
            experts.append({"video_id": f"v{v}", "timestamp": t, "image": name})
        for rank, t in enumerate((30.0 - v, 10.5, 40.0), start=1):
            name = f"frames/v{v}_m{rank}.jpg"
            if v != 5:
                render_frame(v, t, size=160).save(root / name)
            preds.append({"video_id": f"v{v}", "timestamp": t, "rank": rank, "image": name})
    pd.DataFrame(experts).to_parquet(root / "experts.parquet")
    pd.DataFrame(preds).to_parquet(root / "preds.parquet")
    return root / "experts.parquet", root / "preds.parquet"


def test_thumbnails_are_embedded_downscaled_and_capped(tmp_path: Path) -> None:
    experts, preds = write_image_set(tmp_path / "set")
    cfg = compose_config(
        [
            f"data.experts={experts}",
            f"data.predictions={preds}",
            "matching.time_tolerance_s=1.0",
            "matching.min_cosine=null",
            "metrics.min_expert_frames=1",
            "report.thumbnail_px=48",
            "report.max_thumbnail_videos=4",
        ]
    )
    outcome = run_poster(cfg, tmp_path / "out", track=False)
    page = (outcome.output_dir / "report.html").read_text()
    data = report_data(page)
    assert all(uri.startswith("data:image/jpeg;base64,") for uri in data["thumbs"])
    videos = gallery_videos(data)
    with_thumbs = [v for v in videos if any(e[2] >= 0 for e in v["e"])]
    assert len(with_thumbs) == 4
    assert [v["id"] for v in with_thumbs] == [v["id"] for v in videos[:4]]
    # 4 videos x 3 distinct expert frames + model frames of those videos that exist.
    missing = {v["id"] for v in videos[:4]} & {"v5"}
    assert len(data["thumbs"]) == 4 * 3 + 4 * 3 - 3 * len(missing)
    import base64
    import io

    from PIL import Image

    img = Image.open(io.BytesIO(base64.b64decode(data["thumbs"][0].split(",", 1)[1])))
    assert img.height == 48
    # All videos hit at rank 2 (10.5 s vs 10 s), so the gallery is ordered hits only.
    assert all(v["hit"] == 2 for v in gallery_videos(data))


def test_capped_gallery_is_the_head_of_the_whole_gallery(demo_files, tmp_path, outcome) -> None:
    # The drawing worker gets only the gallery's videos (DrawnPoster): with a cap they are
    # still the first videos of the display order, each with its own verdicts.
    cfg = compose_config(
        [
            f"data.experts={demo_files['experts']}",
            f"data.predictions={demo_files['baseline']}",
            "report.max_gallery_videos=7",
        ]
    )
    capped = run_poster(cfg, tmp_path / "capped", track=False)
    head = gallery_videos(report_data((capped.output_dir / "report.html").read_text()))
    whole = gallery_videos(report_data((outcome.output_dir / "report.html").read_text()))
    assert len(head) == 7 < len(whole)
    assert head == whole[:7]
    table = outcome.match_table.set_index("video_id")
    for v in head:
        rank = table.loc[v["id"], "first_hit_rank"]
        assert v["hit"] == (0 if pd.isna(rank) else int(rank))
