"""Frame references and the readers that turn them into RGB arrays.

Video is decoded with PyAV rather than torchcodec. PyAV's manylinux wheels bundle their own
FFmpeg libraries, so ``pip install av`` is enough on a machine without a system FFmpeg (the
machine this was written on has none: ``ldconfig -p`` lists no libavcodec). torchcodec does not
ship FFmpeg: its install notes ask for a system (or conda) FFmpeg of a supported major version,
and each torchcodec release is built against one torch release, so it would tie this package to
a matching torch build and an external FFmpeg. PyAV has neither constraint and its
``container.seek`` + ``decode`` is all the nearest-frame lookup below needs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
from PIL import Image, UnidentifiedImageError

from evaluator.embed.decode import DecodeCounts, FrameTable, decode_in_order
from evaluator.embed.errors import FrameReadError, WeightsUnavailableError

__all__ = [
    "FrameReadError",
    "FrameRef",
    "WeightsUnavailableError",
    "decode_nearest_frames",
    "read_image",
]


@dataclass(frozen=True)
class FrameRef:
    """One frame to embed: an image file, or a video file and a time in it.

    Attributes:
        image: Absolute path of an image file.
        video: Absolute path of a video file.
        timestamp: Seconds from the start of ``video``; the frame nearest this time is used.
    """

    image: str | None = None
    video: str | None = None
    timestamp: float | None = None

    def __post_init__(self) -> None:
        has_image = self.image is not None
        has_video = self.video is not None or self.timestamp is not None
        if has_image == has_video:
            raise ValueError(
                "FrameRef needs exactly one of image=... or (video=..., timestamp=...), got "
                f"image={self.image!r}, video={self.video!r}, timestamp={self.timestamp!r}"
            )
        if has_video:
            if self.video is None or self.timestamp is None:
                raise ValueError(
                    "FrameRef for a video needs both video and timestamp, got "
                    f"video={self.video!r}, timestamp={self.timestamp!r}"
                )
            ts = float(self.timestamp)
            if not math.isfinite(ts) or ts < 0:
                raise ValueError(
                    f"FrameRef timestamp must be finite and >= 0, got {self.timestamp!r} "
                    f"for video {self.video}"
                )

    @property
    def path(self) -> str:
        """The image or video file this frame comes from."""
        # __post_init__ guarantees that exactly one of the two is set.
        return cast(str, self.image if self.image is not None else self.video)


def read_image(path: str | Path, index: int = -1) -> Image.Image:
    """Read an image file as RGB.

    Args:
        path: The image file.
        index: Position of the frame in the caller's list, carried by the error.

    Returns:
        The decoded image in RGB mode.

    Raises:
        FrameReadError: The file is missing or is not a readable image.
    """
    try:
        with Image.open(path) as img:
            # convert() forces the full decode here, so truncated files fail now, not later.
            return img.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
        raise FrameReadError(
            f"cannot read image {path} (frame #{index}): {exc}", index=index, path=str(path)
        ) from exc


def decode_nearest_frames(
    path: str | Path,
    timestamps: Sequence[float],
    indices: Sequence[int] | None = None,
    counts: DecodeCounts | None = None,
    table: FrameTable | None = None,
) -> Iterator[tuple[int, np.ndarray, float]]:
    """Decode, for each requested time, the video frame nearest to it.

    The file is opened once and decoded once, forward only, in time order
    (`evaluator.embed.decode`). Nearest means the smallest ``|pts_time - t|``; on a tie the
    earlier frame wins; a time past the end gives the last frame.

    Args:
        path: The video file.
        timestamps: Requested times in seconds, in any order.
        indices: Caller positions of the requests (default ``range(len(timestamps))``), echoed
            back so results can be matched to requests and named in errors.
        counts: Where the frames decoded and the seeks are counted (added to).
        table: The video's frames when already read (`evaluator.embed.decode.probe_video`), so
            the index or the packets are not read again.

    Yields:
        ``(index, rgb, frame_time)`` per request, in ascending time order: ``rgb`` is an
        ``(H, W, 3)`` uint8 array and ``frame_time`` the chosen frame's time in seconds.

    Raises:
        FrameReadError: The file is missing, is not a video, has no video stream or no frames.
    """
    import av  # imported lazily: image-only users need no FFmpeg

    path = str(path)
    if indices is None:
        indices = range(len(timestamps))
    order = sorted(range(len(timestamps)), key=lambda i: (float(timestamps[i]), i))
    if not order:
        return
    first_index = indices[order[0]]

    def fail(reason: str) -> FrameReadError:
        return FrameReadError(
            f"cannot read video {path} (frame #{first_index}): {reason}",
            index=first_index,
            path=path,
        )

    try:
        container = av.open(path)
    except (OSError, av.error.FFmpegError, ValueError) as exc:
        raise fail(str(exc)) from exc
    with container:
        if not container.streams.video:
            raise fail("no video stream")
        stream = container.streams.video[0]
        # Let FFmpeg decode with threads; frames still come out in presentation order.
        stream.thread_type = "AUTO"
        try:
            yield from decode_in_order(
                container, stream, timestamps, indices, order, path, counts or DecodeCounts(), table
            )
        except (av.error.FFmpegError, ValueError) as exc:
            if isinstance(exc, FrameReadError):
                raise
            raise fail(str(exc)) from exc
