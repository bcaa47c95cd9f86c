"""Forward-only decoding: the same nearest frames as the walking decoder, decoded once."""

from __future__ import annotations

import av
import numpy as np
import pytest
from embed_testkit import INDEX_FPS, INDEX_FRAMES, index_frame, read_index

from evaluator.demo.images import write_video
from evaluator.embed import decode
from evaluator.embed.decode import DecodeCounts, frame_table, minimum_decodes, video_end_s
from evaluator.embed.frames import decode_nearest_frames


def walked(path, times):
    """The frames the decode-and-compare walk chooses (the rule before forward-only decoding)."""
    order = sorted(range(len(times)), key=lambda i: (times[i], i))
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        found = decode.nearest_by_walking(
            container, stream, times, range(len(times)), order, str(path), DecodeCounts()
        )
        return {i: (read_index(rgb), t) for i, rgb, t in found}


@pytest.fixture(scope="module")
def long_gop_video(tmp_path_factory):
    """25 frames at 10 fps with a keyframe at most every 8 frames (x264 adds some at cuts)."""
    path = tmp_path_factory.mktemp("decode") / "gop8.mp4"
    write_video(path, [index_frame(i) for i in range(INDEX_FRAMES)], fps=INDEX_FPS, gop=8)
    return path


def naive_minimum(keyframes: list[int], needed: set[int]) -> int:
    """Per GOP holding a needed frame: its keyframe to its last needed frame (plain loops)."""
    last: dict[int, int] = {}
    for j in sorted(needed):
        start = max(k for k in keyframes if k <= j)
        last[start] = j
    return sum(j - s + 1 for s, j in last.items())


@pytest.mark.parametrize("seed", range(6))
def test_same_frames_as_the_walking_decoder(index_videos, seed):
    rng = np.random.default_rng(seed)
    times = rng.uniform(0, 3.0, int(rng.integers(1, 12))).round(2).tolist()
    times += [0.0, 0.05, 2.45, 2.5]  # the start, a tie, the last frame, past it
    counts = DecodeCounts()
    got = {
        i: (read_index(rgb), t)
        for i, rgb, t in decode_nearest_frames(index_videos, times, counts=counts)
    }
    assert got == walked(index_videos, times)
    assert counts.backward_seeks == 0


def test_decoding_is_forward_only_and_minimal(long_gop_video):
    # Needed frames: 2 and 5 (GOP 0), 9 (GOP 8), 17 and 20 (GOP 16); requested out of order.
    times = [2.0, 0.9, 1.7, 0.5, 0.2, 2.04]
    counts = DecodeCounts()
    got = {
        i: read_index(rgb)
        for i, rgb, _ in decode_nearest_frames(long_gop_video, times, counts=counts)
    }
    assert got == {0: 20, 1: 9, 2: 17, 3: 5, 4: 2, 5: 20}
    with av.open(str(long_gop_video)) as c:
        table = frame_table(c, c.streams.video[0], scan=True)
    keyframes = table.keyframe.nonzero()[0].tolist()
    assert keyframes[0] == 0 and len(keyframes) < INDEX_FRAMES / 2
    minimum = naive_minimum(keyframes, {20, 9, 17, 5, 2})
    assert minimum_decodes(table, times) == minimum
    assert counts.frames_decoded == minimum
    assert counts.backward_seeks == 0
    assert counts.seeks == len({max(k for k in keyframes if k <= j) for j in (2, 5, 9, 17, 20)})


def test_the_walking_decoder_decodes_more(long_gop_video):
    """The reference the benchmark compares against: same frames, more decoding."""
    counts = DecodeCounts()
    times = [2.0, 0.9, 1.7, 0.5, 0.2]
    order = sorted(range(len(times)), key=lambda i: times[i])
    with av.open(str(long_gop_video)) as container:
        list(
            decode.nearest_by_walking(
                container, container.streams.video[0], times, range(5), order, "v", counts
            )
        )
    with av.open(str(long_gop_video)) as c:
        table = frame_table(c, c.streams.video[0], scan=True)
    assert counts.frames_decoded > minimum_decodes(table, times)


def test_video_end_is_the_last_frame_plus_one_frame(index_video):
    assert video_end_s(index_video) == pytest.approx(INDEX_FRAMES / INDEX_FPS)


def test_decoding_workers_give_the_same_vectors(tmp_path):
    """Each video file goes to one worker process; the vectors equal those decoded in-process."""
    from embed_testkit import build_quietly, small_spec

    from evaluator.embed import FrameRef, embed_frames

    frames_a = [index_frame(i) for i in range(INDEX_FRAMES)]
    write_video(tmp_path / "a.mp4", frames_a, fps=INDEX_FPS, gop=5)
    write_video(tmp_path / "b.mp4", frames_a[::-1], fps=INDEX_FPS, gop=5)
    refs = [
        FrameRef(video=str(tmp_path / v), timestamp=t)
        for v in ("a.mp4", "b.mp4")
        for t in (2.0, 0.1, 1.3, 0.7, 1.9)
    ]
    serial, s0 = embed_frames(refs, build_quietly(small_spec(num_workers=0)), None)
    parallel, s2 = embed_frames(refs, build_quietly(small_spec(num_workers=2)), None)
    np.testing.assert_array_equal(parallel, serial)
    assert s0.n_decoded == s2.n_decoded > 0
