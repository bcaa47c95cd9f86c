"""Nearest-frame video decoding that reads each file once, forward only.

The frames' presentation times and keyframe flags are known before decoding: from the
container's index when it lists every frame and the codec has no B-frames (MP4, MOV), else
from one pass over the packets (demuxing, no decoding). So the frame nearest to each requested
time is known in advance, and the file is decoded once in time order: the decoder seeks only
when the next needed frame lies in a later group of pictures (GOP: a keyframe and the frames up
to the next one) and otherwise decodes on, never back onto frames already decoded. Decoding
stops at the last needed frame of a GOP, so nothing is decoded past it.

The chosen frames equal `evaluator.embed.frames`' rule: the smallest ``|frame_time - t|``,
ties to the earlier frame, a time past the end gives the last frame. Should a decoded frame not
be where the table says (a stream whose packets disagree with its frames), the remaining
requests fall back to the decode-and-compare walk (`nearest_by_walking`, below).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evaluator.embed.errors import FrameReadError

# When the next requested timestamp lies further ahead than this, seeking (to the keyframe
# before it) is cheaper than decoding every frame in between.
SEEK_AHEAD_S = 2.0


@dataclass
class DecodeCounts:
    """What decoding did (summed over files when shared).

    Attributes:
        frames_decoded: frames the decoder produced.
        seeks: seeks made (each lands on a keyframe ahead of the frames already decoded).
        backward_seeks: seeks onto a position at or before a frame already decoded (0 here).
    """

    frames_decoded: int = 0
    seeks: int = 0
    backward_seeks: int = 0


@dataclass(frozen=True)
class FrameTable:
    """A video stream's frames in presentation order, known without decoding.

    Attributes:
        pts: int64 presentation timestamps in ``time_base`` units, ascending.
        times: float64 seconds (``pts * time_base``, as a decoded frame's time is computed).
        keyframe: bool per frame.
        time_base: the stream's time base as (numerator, denominator).
    """

    pts: np.ndarray
    times: np.ndarray
    keyframe: np.ndarray
    time_base: tuple[int, int]

    def __len__(self) -> int:
        return int(self.pts.shape[0])

    @property
    def end_s(self) -> float:
        """The end of the last frame: its time plus one frame's duration (the median step)."""
        if len(self) == 0:
            return 0.0
        step = float(np.median(np.diff(self.times))) if len(self) > 1 else 0.0
        return float(self.times[-1]) + step

    def nearest(self, timestamps: Sequence[float]) -> np.ndarray:
        """Index of the frame nearest each time (ties to the earlier frame, past the end: last)."""
        t = np.asarray(timestamps, dtype=np.float64)
        after = np.searchsorted(self.times, t, side="left")  # first frame at or after t
        before = np.maximum(after - 1, 0)
        after = np.minimum(after, len(self) - 1)
        take_before = np.abs(self.times[before] - t) <= np.abs(self.times[after] - t)
        take_before |= self.times[after] < t  # past the end
        return np.where(take_before & (self.times[before] <= t), before, after)

    def gop_start(self, index: np.ndarray) -> np.ndarray:
        """Index of the keyframe that starts the GOP holding each frame."""
        keys = np.flatnonzero(self.keyframe)
        if not keys.size or keys[0] != 0:
            keys = np.r_[0, keys]
        return keys[np.searchsorted(keys, index, side="right") - 1]


def minimum_decodes(table: FrameTable, timestamps: Sequence[float]) -> int:
    """The fewest frames any nearest-frame decoder must decode for these times.

    Per GOP holding a needed frame: from its keyframe to its last needed frame, inclusive.
    """
    if not len(timestamps):
        return 0
    needed = np.unique(table.nearest(timestamps))
    starts = table.gop_start(needed)
    last = {}
    for s, j in zip(starts.tolist(), needed.tolist(), strict=True):
        last[s] = j
    return int(sum(j - s + 1 for s, j in last.items()))


def _table(pts: list[int], keys: list[bool], time_base: Any) -> FrameTable:
    p = np.asarray(pts, dtype=np.int64)
    order = np.argsort(p, kind="stable")
    p, k = p[order], np.asarray(keys, dtype=bool)[order]
    num, den = int(time_base.numerator), int(time_base.denominator)
    # Exact products divided once: the same float as float(pts * Fraction(num, den)).
    times = (p.astype(np.float64) * num) / den
    return FrameTable(p, times, k, (num, den))


def frame_table(container: Any, stream: Any, *, scan: bool = False) -> FrameTable:
    """The frames of ``stream``: from the index when complete (and no B-frames), else packets.

    Args:
        container: an open PyAV input container.
        stream: its video stream.
        scan: always read the packets (the benchmark's ground truth).
    """
    entries = stream.index_entries
    n = int(stream.frames or 0)
    reorders = bool(getattr(stream.codec_context, "has_b_frames", True))
    if not scan and n and len(entries) == n and not reorders:
        return _table(
            [e.timestamp for e in entries], [e.is_keyframe for e in entries], stream.time_base
        )
    pts, keys = [], []
    for packet in container.demux(stream):
        if packet.pts is not None and packet.size:
            pts.append(packet.pts)
            keys.append(packet.is_keyframe)
    container.seek(0)
    return _table(pts, keys, stream.time_base)


def video_end_s(path: str | Path) -> float:
    """The end of a video's last frame in seconds (`FrameTable.end_s`).

    Raises:
        FrameReadError: the file is missing, not a video, or has no frames.
    """
    return probe_video(path).end_s


def probe_video(path: str | Path) -> FrameTable:
    """The frames of a video's first video stream, read without decoding (`frame_table`).

    Raises:
        FrameReadError: the file is missing, not a video, or has no frames.
    """
    import av

    path = str(path)
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise FrameReadError(f"cannot read video {path}: no video stream", path=path)
            table = frame_table(container, container.streams.video[0])
    except (OSError, av.error.FFmpegError, ValueError) as exc:
        if isinstance(exc, FrameReadError):
            raise
        raise FrameReadError(f"cannot read video {path}: {exc}", path=path) from exc
    if not len(table):
        raise FrameReadError(f"cannot read video {path}: no frames", path=path)
    return table


class _Mismatch(Exception):
    """A decoded frame is not where the frame table says."""


def decode_in_order(
    container: Any,
    stream: Any,
    timestamps: Sequence[float],
    indices: Sequence[int],
    order: list[int],
    path: str,
    counts: DecodeCounts,
    table: FrameTable | None = None,
) -> Iterator[tuple[int, np.ndarray, float]]:
    """Yield ``(index, rgb, frame_time)`` per request in time order (see the module docstring).

    ``table``: the stream's frames when already read (`probe_video`), else read here.
    """
    if table is None:
        table = frame_table(container, stream)
    if not len(table):
        raise FrameReadError(
            f"cannot read video {path} (frame #{indices[order[0]]}): no decodable frames",
            index=indices[order[0]],
            path=path,
        )
    wanted = table.nearest([float(timestamps[i]) for i in order])
    gop = table.gop_start(wanted)
    frames: Iterator | None = None
    pos = -1  # table index of the last decoded frame
    current: tuple[np.ndarray, float] | None = None
    done = 0
    try:
        for n, i in enumerate(order):
            j = int(wanted[n])
            landed_after = None
            if frames is None or int(gop[n]) > pos + 1:
                container.seek(int(table.pts[gop[n]]), stream=stream, backward=True)
                counts.seeks += 1
                frames = container.decode(stream)
                landed_after, pos = pos, int(gop[n]) - 1
                current = None
            while pos < j:
                frame = next(frames, None)
                if frame is None or frame.pts is None:
                    raise _Mismatch
                counts.frames_decoded += 1
                k = int(np.searchsorted(table.pts, frame.pts))
                if k >= len(table) or table.pts[k] != frame.pts or k > j:
                    raise _Mismatch
                if landed_after is not None:
                    counts.backward_seeks += int(k <= landed_after)
                    landed_after = None
                if k <= pos:
                    continue  # the seek landed a little early: decode on to where we were
                pos = k
                if k == j:
                    current = (frame.to_ndarray(format="rgb24"), float(table.times[k]))
            if current is None:
                raise _Mismatch
            yield indices[i], current[0], current[1]
            done = n + 1
    except _Mismatch:
        rest = order[done:]
        yield from nearest_by_walking(container, stream, timestamps, indices, rest, path, counts)


def _frame_time(frame, path: str, index: int) -> float:
    if frame.pts is None or frame.time_base is None:
        raise FrameReadError(
            f"cannot read video {path} (frame #{index}): decoded frames carry no timestamps",
            index=index,
            path=path,
        )
    return float(frame.pts * frame.time_base)


def nearest_by_walking(container, stream, timestamps, indices, order, path, counts):
    """Walk the stream in time order comparing decoded frames (`decode_nearest_frames`' rule).

    The fallback of `decode_in_order` for streams whose frames it cannot
    know in advance: it seeks to the keyframe before a time when the time is more than
    ``SEEK_AHEAD_S`` ahead, and decodes one frame past each time to compare the two around it.
    """
    if not order:
        return
    frames: Iterator | None = None
    prev = None  # (time, frame): the last decoded frame before `cur`
    cur = None  # (time, frame): the first decoded frame not yet known to be too early

    def next_frame():
        frame = next(frames, None)
        if frame is None:
            return None
        counts.frames_decoded += 1
        return (_frame_time(frame, path, indices[order[0]]), frame)

    def seek_to(t: float) -> None:
        nonlocal frames, prev, cur
        target = t
        while True:
            counts.seeks += 1
            if target > 0:
                container.seek(int(target / stream.time_base), stream=stream, backward=True)
            else:
                container.seek(0)
            frames = container.decode(stream)
            prev, cur = None, next_frame()
            # A seek that lands after t would hide a nearer earlier frame: step further back.
            if cur is None or cur[0] <= t or target <= 0:
                return
            target = max(0.0, t - 2.0 * max(1.0, t - target))

    for i in order:
        t = float(timestamps[i])
        if frames is None or (cur is not None and t - cur[0] > SEEK_AHEAD_S):
            seek_to(t)
        while cur is not None and cur[0] < t:
            prev, cur = cur, next_frame()
        # Once the stream is exhausted `prev` holds the last frame, so times past the end
        # resolve to it.
        if cur is None and prev is None:
            raise FrameReadError(
                f"cannot read video {path} (frame #{indices[i]}): no decodable frames",
                index=indices[i],
                path=path,
            )
        if cur is None or (prev is not None and abs(prev[0] - t) <= abs(cur[0] - t)):
            chosen = prev
        else:
            chosen = cur
        yield indices[i], chosen[1].to_ndarray(format="rgb24"), chosen[0]
