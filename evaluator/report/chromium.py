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


def chart_view(
    url: str,
    *,
    wait_for_title: str = "recall_at_k",
    search: str | None = None,
    screenshot: Path | None = None,
    window: tuple[int, int] = (1600, 1000),
    timeout_s: float = 180,
) -> str:
    """Open MLflow's chart compare view and wait until a chart titled ``wait_for_title`` drew.

    The chart view fetches metric histories after the page loads and draws only the charts in
    view, which a fixed-time ``--dump-dom`` / ``--screenshot`` may catch half done.

    Args:
        url: the ``#/experiments/ID/runs?compareRunsMode=CHART`` address.
        wait_for_title: the chart title to wait for.
        search: text typed into the chart search box first (filters the charts).
        screenshot: where to save a PNG of the view, or None.
        window: the viewport; a tall one keeps every chart in view.
        timeout_s: how long to wait for the chart.

    Returns:
        The rendered DOM.
    """
    return rendered_dom(
        url,
        selector=f'[title="{wait_for_title}"]',
        fill=None if search is None else ("Search metric charts", search),
        screenshot=screenshot,
        window=window,
        timeout_s=timeout_s,
    )


def rendered_dom(
    url: str,
    *,
    selector: str,
    fill: tuple[str, str] | None = None,
    screenshot: Path | None = None,
    window: tuple[int, int] = (1600, 1000),
    timeout_s: float = 180,
) -> str:
    """Load ``url`` in headless Chromium, wait for ``selector``, return the rendered DOM.

    Playwright's Python API drives the same Debian Chromium (never a downloaded browser), so a
    page that draws after its data arrives (the MLflow UI) is read once it has drawn.

    Args:
        url: the page.
        selector: a CSS selector that appears once the page has drawn what matters.
        fill: (placeholder, text): type text into the input with that placeholder first.
        screenshot: where to save a PNG, or None.
        window: the viewport size.
        timeout_s: how long to wait.

    Raises:
        RuntimeError: Chromium is missing.
    """
    if not chromium_available():
        raise RuntimeError(f"{CHROMIUM} not found: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, args=[f for f in SAFE_FLAGS if f != "--headless"]
        )
        try:
            page = browser.new_page(viewport={"width": window[0], "height": window[1]})
            page.goto(url, timeout=timeout_s * 1000)
            if fill is not None:
                box = page.get_by_placeholder(fill[0])
                box.wait_for(timeout=timeout_s * 1000)
                box.fill(fill[1])
            page.wait_for_selector(selector, timeout=timeout_s * 1000)
            # Give the rest of the view a moment to draw as well.
            page.wait_for_timeout(3000)
            if screenshot is not None:
                page.screenshot(path=str(screenshot))
            return page.content()
        finally:
            browser.close()
