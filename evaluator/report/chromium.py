"""Headless Debian Chromium (``/usr/bin/chromium``) for screenshots and rendered-DOM checks.

Always started offline-safe: no background networking, no component updates, no sync, no
first-run, a fresh profile, so it never reaches the network on its own. Never a downloaded
browser.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

CHROMIUM = os.environ.get("VIDEO_EVAL_CHROMIUM", "/usr/bin/chromium")
SAFE_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
)


def chromium_available() -> bool:
    """Whether the Chromium binary exists and is executable."""
    return shutil.which(CHROMIUM) is not None


def run_chromium(
    url: str,
    *,
    dump_dom: bool = False,
    screenshot: Path | None = None,
    window: tuple[int, int] = (1600, 1200),
    virtual_time_ms: int = 30000,
    timeout_s: float = 120,
) -> str:
    """Load ``url`` headless; return the rendered DOM (``dump_dom``) or save a screenshot.

    Raises:
        RuntimeError: Chromium is missing or failed.
    """
    if not chromium_available():
        raise RuntimeError(f"{CHROMIUM} not found: apt-get install -y chromium")
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        args = [
            CHROMIUM,
            *SAFE_FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={window[0]},{window[1]}",
            f"--virtual-time-budget={virtual_time_ms}",
        ]
        if dump_dom:
            args.append("--dump-dom")
        if screenshot is not None:
            args.append(f"--screenshot={Path(screenshot).resolve()}")
        proc = subprocess.run(
            [*args, url], capture_output=True, text=True, timeout=timeout_s, check=False
        )
    if proc.returncode != 0:
        raise RuntimeError(f"chromium failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc.stdout
