"""SIGINT and SIGTERM at each phase of real `video-eval` (poster, episode), `video-eval-compare`
and `video-eval-promote` processes: exit 130 / 143, no crash, no run left RUNNING, no temporary
or staging file left (docs/reliability.md#signals).

One trial per phase here, SIGINT and SIGTERM taking turns over the phases (shifted by one from
one command to the next); `scripts/signal_probe.py` runs many trials per phase and signal. A
phase the command got past before it could be caught is tried again; the test fails if a phase
is never caught.
"""

from __future__ import annotations

import random
import signal
from pathlib import Path

import pytest

from tests.conftest import load_script

probe = load_script("signal_probe")
ATTEMPTS = 4
# Left to scripts/signal_probe.py, to keep this test to a few minutes: the poster's reading and
# scoring are instants between its other phases (the episode task has them), and compare /
# promote write their data files in the same all-or-nothing step as their plots (drawing).
SKIPPED = {
    ("poster", "reading"),
    ("poster", "scoring"),
    ("compare", "writing"),
    ("promote", "writing"),
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    return probe.prepare(tmp_path_factory.mktemp("signals"), n_videos=1000, n_episodes=40_000)


@pytest.mark.slow
@pytest.mark.parametrize("command", list(probe.PHASES))
def test_a_signal_in_each_phase_ends_the_command_cleanly(setup, command: str) -> None:
    rng = random.Random(command)
    shift = list(probe.PHASES).index(command)
    caught: list[str] = []
    n = 0
    for i, wanted in enumerate(probe.PHASES[command]):
        if (command, wanted) in SKIPPED:
            continue
        sig = probe.SIGNALS[(i + shift) % 2]
        for _ in range(ATTEMPTS):
            n += 1
            trial = probe.run_trial(setup, command, wanted, sig, n, rng)
            assert not trial.problems, trial
            if trial.phase is not None:
                assert trial.returncode == 128 + sig
                caught.append(trial.phase)
                break
        else:
            pytest.fail(f"{command}: phase {wanted} was never caught in {ATTEMPTS} tries")
    assert "start-up" in caught and "logging" in caught, caught


def test_the_phase_of_what_a_process_holds() -> None:
    """The probe's reading of /proc: the same observations give the same phase."""
    c = probe.classify
    assert c("poster", set(), set()) is None  # no handler yet
    assert c("poster", {"handler"}, set()) == "start-up"
    assert c("poster", {"handler", "input", "buckets_w"}, set()) == "partitioning"
    assert c("poster", {"handler"}, {"input", "buckets_w"}) == "scoring"
    assert c("poster", {"handler", "staging"}, {"input"}) == "writing"
    assert c("poster", {"handler", "staging", "plots"}, {"input"}) == "drawing"
    assert c("poster", {"handler"}, {"input"}) == "reading"
    assert c("episode", {"handler"}, {"input"}) == "scoring"
    assert c("poster", {"handler", "db"}, {"input", "buckets_w"}) == "logging"
    assert c("poster", {"handler"}, {"input", "staging"}) == "logging"
    assert c("compare", {"handler", "db"}, set()) == "reading"
    assert c("compare", {"handler", "db"}, {"staging"}) == "logging"


def test_an_unsignalled_trial_leaves_nothing_to_report(tmp_path: Path) -> None:
    """`check_ending` finds each kind of problem it is there to find."""
    (tmp_path / "out" / ".staging-x").mkdir(parents=True)
    (tmp_path / "tmp").mkdir()
    (tmp_path / "tmp" / "left.arrow").write_text("")
    problems = probe.check_ending(
        -11,
        signal.SIGTERM,
        "Fatal Python error: Segmentation fault",
        tmp_path / "none.db",
        tmp_path / "out",
        tmp_path / "tmp",
    )
    text = " ".join(problems)
    assert "exit status -11, expected 143" in text
    assert "Fatal Python error" in text
    assert ".staging-x" in text and "left.arrow" in text
