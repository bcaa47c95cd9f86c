"""Small embedded thumbnails of frame images, for the HTML report's gallery."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

from PIL import Image, UnidentifiedImageError


def resolve_image(root: Path, relative: str) -> Path | None:
    """The image file ``relative`` under ``root``, or None when it leaves the root or is missing.

    The report shows a placeholder instead of failing: the evaluation already checked the
    paths it needed (an image embedder refuses bad ones), and a report is never the reason a
    run fails.
    """
    # Lexically, as the evaluation checks it: a symbolic link inside the root is followed.
    root = Path(os.path.normpath(os.path.abspath(root)))
    path = Path(os.path.normpath(os.path.abspath(root / relative)))
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


def thumbnail_data_uri(path: Path, height_px: int, quality: int = 70) -> str | None:
    """A ``data:image/jpeg;base64,...`` URI of the image scaled to ``height_px`` (None: unreadable).

    Args:
        path: an image file PIL can read.
        height_px: the thumbnail's height; the width keeps the aspect ratio.
        quality: JPEG quality (70 keeps a 96 px frame near 3 kB).
    """
    try:
        with Image.open(path) as img:
            img.draft("RGB", (height_px * 4, height_px))  # JPEG: decode at a reduced size
            rgb = img.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError):
        return None
    return _jpeg_uri(rgb, height_px, quality)


# A video frame in the report's path arrays: "<video path>#t=<seconds>" (a media fragment).
VIDEO_TIME = "#t="


def video_frame_ref(path: str, timestamp: float) -> str:
    """The report's name of the frame nearest ``timestamp`` in the video ``path``."""
    return f"{path}{VIDEO_TIME}{float(timestamp)!r}"


def video_thumbnails(root: Path, refs: list[str], height_px: int) -> dict[str, str | None]:
    """Thumbnails of video frames (`video_frame_ref` names), each file decoded once.

    A frame whose file leaves the root or cannot be read gets None (a placeholder).
    """
    from evaluator.embed.frames import FrameReadError, decode_nearest_frames

    by_file: dict[Path, list[tuple[str, float]]] = {}
    out: dict[str, str | None] = dict.fromkeys(refs)
    for ref in dict.fromkeys(refs):
        relative, _, t = ref.rpartition(VIDEO_TIME)
        path = resolve_image(root, relative)
        if path is not None:
            by_file.setdefault(path, []).append((ref, float(t)))
    for path, frames in by_file.items():
        try:
            for i, rgb, _ in decode_nearest_frames(path, [t for _, t in frames]):
                out[frames[i][0]] = _jpeg_uri(Image.fromarray(rgb), height_px, 70)
        except FrameReadError:
            continue
    return out


def _jpeg_uri(rgb: Image.Image, height_px: int, quality: int) -> str:
    width = max(1, round(rgb.width * height_px / max(rgb.height, 1)))
    rgb.thumbnail((width, height_px), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    rgb.save(buffer, format="JPEG", quality=quality, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
