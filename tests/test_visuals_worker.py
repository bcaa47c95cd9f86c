"""The drawing thread: it draws every file, or (cancelled) stops before the next one."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from evaluator.tasks.poster_files import DrawingCancelled, VisualsWorker


class _TwoFiles:
    """A stand-in for `Visuals`: two files, the first held until ``release`` is set."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.drawn: list[str] = []

    def writers(self):  # type: ignore[no-untyped-def]
        def first(path: Path) -> None:
            self.started.set()
            assert self.release.wait(30)
            path.write_text("first")
            self.drawn.append("first")

        def second(path: Path) -> None:
            path.write_text("second")
            self.drawn.append("second")

        return {"plots/first.txt": first, "second.txt": second}


def test_closing_waits_for_every_file(tmp_path: Path) -> None:
    worker = VisualsWorker()
    visuals = _TwoFiles()
    visuals.release.set()
    done = worker.submit(visuals, tmp_path)  # type: ignore[arg-type]
    worker.close()
    assert done.result() == [tmp_path / "plots/first.txt", tmp_path / "second.txt"]
    assert visuals.drawn == ["first", "second"]
    assert (tmp_path / "second.txt").read_text() == "second"


def test_cancelling_stops_before_the_next_file_and_leaves_none(tmp_path: Path) -> None:
    worker = VisualsWorker()
    visuals = _TwoFiles()
    done = worker.submit(visuals, tmp_path)  # type: ignore[arg-type]
    assert visuals.started.wait(30)
    closer = threading.Thread(target=worker.close, kwargs={"cancel": True})
    closer.start()
    assert worker._stop.wait(30)  # cancelled while the first file is being drawn
    visuals.release.set()
    closer.join(30)
    assert not closer.is_alive()
    with pytest.raises(DrawingCancelled):
        done.result()
    assert visuals.drawn == ["first"]  # the file under way ends; the next never starts
    assert sorted(p.name for p in tmp_path.rglob("*")) == []  # all-or-nothing
