"""Small embedded thumbnails of frame images, for the HTML report's gallery."""

from __future__ import annotations

import base64
import io
from pathlib import Path

from PIL import Image, UnidentifiedImageError


def resolve_image(root: Path, relative: str) -> Path | None:
    """The image file ``relative`` under ``root``, or None when it leaves the root or is missing.

    The report shows a placeholder instead of failing: the evaluation already checked the
    paths it needed (an image embedder refuses bad ones), and a report is never the reason a
    run fails.
    """
    root = root.resolve()
    path = (root / relative).resolve()
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
    width = max(1, round(rgb.width * height_px / max(rgb.height, 1)))
    rgb.thumbnail((width, height_px), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    rgb.save(buffer, format="JPEG", quality=quality, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
