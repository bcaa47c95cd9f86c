"""Synthetic video frames for demos and tests: scenes that a CNN can tell apart.

Run ``python scripts/demo_images.py [out_dir]`` to write a few example frames and a tiny mp4.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw


def _scene_layout(scene_id: int, seed: int) -> dict:
    # Everything that makes a scene recognisable is drawn from a generator keyed by the scene,
    # so a scene looks the same in every frame and every run.
    rng = np.random.default_rng([seed, scene_id, 7919])
    n_shapes = int(rng.integers(3, 6))
    return {
        "top": rng.integers(0, 256, 3),
        "bottom": rng.integers(0, 256, 3),
        "shapes": [
            {
                "kind": ("ellipse", "rectangle", "triangle")[int(rng.integers(0, 3))],
                "colour": tuple(int(c) for c in rng.integers(0, 256, 3)),
                "centre": rng.uniform(0.15, 0.85, 2),
                "radius": float(rng.uniform(0.08, 0.22)),
                "velocity": rng.uniform(-0.04, 0.04, 2),  # fraction of the frame per second
            }
            for _ in range(n_shapes)
        ],
    }


def render_frame(scene_id: int, t: float, size: int = 128, seed: int = 0) -> Image.Image:
    """Render one frame of a synthetic scene.

    A scene is a vertical colour gradient with 3-5 coloured shapes that drift slowly with ``t``,
    plus a little pixel noise, so frames of one scene look alike and scenes differ.

    Args:
        scene_id: Which scene (any int).
        t: Time in seconds; shapes move a few percent of the frame per second.
        size: Width and height in pixels.
        seed: Varies all scenes at once.

    Returns:
        An RGB image of ``size`` x ``size`` pixels.
    """
    layout = _scene_layout(scene_id, seed)
    ramp = np.linspace(0.0, 1.0, size)[:, None, None]
    background = (1 - ramp) * layout["top"] + ramp * layout["bottom"]
    pixels = np.broadcast_to(background, (size, size, 3)).astype(np.uint8)
    image = Image.fromarray(np.ascontiguousarray(pixels))
    draw = ImageDraw.Draw(image)
    for shape in layout["shapes"]:
        cx, cy = (shape["centre"] + shape["velocity"] * t) % 1.0 * size
        r = shape["radius"] * size
        if shape["kind"] == "ellipse":
            draw.ellipse((cx - r, cy - r * 0.7, cx + r, cy + r * 0.7), fill=shape["colour"])
        elif shape["kind"] == "rectangle":
            draw.rectangle((cx - r, cy - r, cx + r, cy + r * 0.5), fill=shape["colour"])
        else:
            draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=shape["colour"])
    noise_rng = np.random.default_rng([seed, scene_id, round(t * 1000)])
    noisy = np.asarray(image, dtype=np.int16) + noise_rng.normal(0, 4, (size, size, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def write_video(
    path: str | Path,
    frames: Sequence[Image.Image | np.ndarray],
    fps: int = 10,
    gop: int = 5,
    bframes: int = 0,
    codec: str = "libx264",
) -> Path:
    """Encode frames as an mp4 with PyAV.

    Args:
        path: Output file.
        frames: RGB images of one size (even width and height).
        fps: Frames per second; frame i is shown at time i / fps.
        gop: Keyframe interval in frames (small, so that seeking is exercised).
        bframes: Maximum consecutive B-frames; with B-frames, decode order differs from
            presentation order. (libx264 may decide to use none; ``mpeg4`` uses them.)
        codec: FFmpeg encoder name; ``libx264`` (H.264) or ``mpeg4``.

    Returns:
        The written path.
    """
    import av

    path = Path(path)
    first = np.asarray(frames[0])
    with av.open(str(path), mode="w") as container:
        stream: Any = container.add_stream(codec, rate=fps)  # a VideoStream; av's stubs say union
        stream.width, stream.height = first.shape[1], first.shape[0]
        stream.pix_fmt = "yuv420p"
        stream.gop_size = gop
        stream.codec_context.max_b_frames = bframes
        # High quality keeps flat colours within +-1 grey level, which the tests read back.
        stream.options = {"crf": "10"} if codec == "libx264" else {"qscale": "1"}
        for image in frames:
            frame = av.VideoFrame.from_ndarray(np.asarray(image, dtype=np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_demo_video(
    path: str | Path,
    duration_s: float = 3.0,
    fps: int = 10,
    size: int = 64,
    scene_s: float = 1.0,
    seed: int = 0,
) -> list[int]:
    """Write a tiny mp4 whose scene changes every ``scene_s`` seconds.

    Args:
        path: Output file.
        duration_s: Length in seconds.
        fps: Frames per second.
        size: Width and height in pixels (even).
        scene_s: Seconds per scene; frame i shows scene ``int(i / fps / scene_s)``.
        seed: Passed to `render_frame`.

    Returns:
        The scene id of every frame, in order.
    """
    n = round(duration_s * fps)
    scenes = [int(i / fps / scene_s) for i in range(n)]
    frames = [render_frame(s, i / fps, size=size, seed=seed) for i, s in enumerate(scenes)]
    write_video(path, frames, fps=fps)
    return scenes
