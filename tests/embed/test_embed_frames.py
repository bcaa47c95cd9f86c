"""Frame references, nearest-frame video decoding and unreadable inputs."""

from __future__ import annotations

import numpy as np
import pytest
from embed_testkit import INDEX_FPS, INDEX_FRAMES, build_quietly, read_index, small_spec

from evaluator.embed import FrameReadError, FrameRef, decode, embed_frames
from evaluator.embed.frames import decode_nearest_frames


def expected_index(t: float) -> int:
    """Reference rule: smallest |i / fps - t|, ties to the earlier frame, past the end = last."""
    return min(range(INDEX_FRAMES), key=lambda i: (abs(i / INDEX_FPS - t), i))


# seek_ahead_s=0 makes the decoder seek before nearly every request instead of decoding forward.
@pytest.mark.parametrize("seek_ahead_s", [2.0, 0.0])
def test_nearest_frame_is_decoded(index_videos, seek_ahead_s, monkeypatch):
    monkeypatch.setattr(decode, "SEEK_AHEAD_S", seek_ahead_s)
    rng = np.random.default_rng(0)
    # Exact frame times, exact midpoints (ties), the start, past the end, and random times in
    # shuffled order with gaps large enough to force re-seeking.
    times = [0.0, 0.05, 0.15, 1.25, 0.9, 2.4, 2.45, 2.5, 3.0, 100.0]
    times += rng.uniform(0, 2.6, 30).round(3).tolist()
    order = rng.permutation(len(times))
    times = [times[i] for i in order]
    seen = {}
    for index, rgb, frame_time in decode_nearest_frames(index_videos, times):
        seen[index] = (read_index(rgb), frame_time)
    assert sorted(seen) == list(range(len(times)))
    for i, t in enumerate(times):
        want = expected_index(t)
        assert seen[i] == (want, pytest.approx(want / INDEX_FPS)), f"t={t}"


def test_video_frames_embed_like_the_decoded_images(index_video):
    embedder = build_quietly(small_spec())
    times = [1.04, 0.0, 2.46]
    vectors, _ = embed_frames(
        [FrameRef(video=str(index_video), timestamp=t) for t in times], embedder, None
    )
    decoded = {i: rgb for i, rgb, _ in decode_nearest_frames(index_video, times)}
    direct = embedder.embed_images([decoded[i] for i in range(len(times))])
    np.testing.assert_allclose(vectors, direct, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("num_workers", [0, 1])
@pytest.mark.parametrize(
    "kind", ["garbage_image", "missing_image", "garbage_video", "missing_video"]
)
def test_unreadable_input_names_file_and_index(tmp_path, scene_images, kind, num_workers):
    bad = tmp_path / ("bad.png" if "image" in kind else "bad.mp4")
    if kind.startswith("garbage"):
        bad.write_bytes(b"this is not media" * 10)
    good = [FrameRef(image=str(p)) for p in scene_images[:2]]
    bad_ref = (
        FrameRef(image=str(bad)) if "image" in kind else FrameRef(video=str(bad), timestamp=1.0)
    )
    embedder = build_quietly(small_spec(num_workers=num_workers))
    with pytest.raises(FrameReadError, match=f"cannot read .*{bad.name}") as info:
        embed_frames([*good, bad_ref], embedder, None)
    assert info.value.index == 2
    assert info.value.path == str(bad)


def test_truncated_image_is_a_read_error(tmp_path, scene_images, small_embedder):
    cut = tmp_path / "cut.png"
    data = scene_images[0].read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(FrameReadError, match=r"cut\.png") as info:
        embed_frames([FrameRef(image=str(cut))], small_embedder, None)
    assert info.value.index == 0


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({}, "exactly one of image"),
        ({"image": "/a.png", "video": "/v.mp4", "timestamp": 1.0}, "exactly one of image"),
        ({"video": "/v.mp4"}, "needs both video and timestamp"),
        ({"timestamp": 1.0}, "needs both video and timestamp"),
        ({"video": "/v.mp4", "timestamp": -0.5}, "finite and >= 0"),
        ({"video": "/v.mp4", "timestamp": float("nan")}, "finite and >= 0"),
    ],
)
def test_bad_frame_refs(fields, match):
    with pytest.raises(ValueError, match=match):
        FrameRef(**fields)


def test_workers_return_rows_in_input_order(index_video, scene_images):
    refs = [FrameRef(video=str(index_video), timestamp=t) for t in (2.0, 0.1, 1.3, 0.1)]
    refs += [FrameRef(image=str(p)) for p in scene_images]
    refs.insert(3, FrameRef(image=str(scene_images[4])))
    serial, stats = embed_frames(refs, build_quietly(small_spec(num_workers=0)), None)
    parallel, _ = embed_frames(refs, build_quietly(small_spec(num_workers=2)), None)
    assert stats.n_computed == 9  # 11 rows, two repeats
    np.testing.assert_allclose(parallel, serial, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(serial[1], serial[4])  # the repeated video frame
    np.testing.assert_array_equal(serial[3], serial[9])  # the repeated image
