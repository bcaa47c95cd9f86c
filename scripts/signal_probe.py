"""Send SIGINT and SIGTERM to real commands at each phase of their work and check the ending.

Usage:
    python scripts/signal_probe.py                    # 30 trials per command, phase and signal
    python scripts/signal_probe.py --trials 5 --commands poster,episode --work /tmp/probe

Commands: ``poster`` (`video-eval`, a parquet input streamed through temporary buckets),
``episode`` (`video-eval task=episode`), ``compare`` (`video-eval-compare`) and ``promote``
(`video-eval-promote`), each against a sqlite store prepared once in ``--work``.

A trial starts the command, watches it from outside (its open files in /proc, its output
and temporary folders) until it is in the wanted phase, waits a random fraction of a second,
sends the signal and checks:

- the exit status is 130 (SIGINT) or 143 (SIGTERM), no crash, no traceback;
- no run is left RUNNING in the store;
- no temporary file is left (the command's TMPDIR and ``engine.temp_dir`` are empty, the
  output folder holds no staging folder and no ``.tmp`` file).

The phase is the one seen when the signal was sent: ``start-up`` (the signal handlers are
installed, nothing read yet), ``reading`` (an input file is open, or for compare / promote the
store, before any result file), ``partitioning`` (temporary buckets open for writing),
``scoring`` (after reading, before the first result file), ``writing`` (the data files'
staging folder), ``drawing`` (the plots and report in the staging folder), ``logging`` (the
store open after the files are written). A trial whose command ended before the phase came
is counted as missed, not as a failure. The table prints trials, failures and the slowest
exit after the signal per command, phase and signal.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

PHASES = {
    "poster": ("start-up", "reading", "partitioning", "scoring", "writing", "drawing", "logging"),
    "episode": ("start-up", "reading", "scoring", "writing", "drawing", "logging"),
    "compare": ("start-up", "reading", "writing", "drawing", "logging"),
    "promote": ("start-up", "reading", "writing", "drawing", "logging"),
}
SIGNALS = (signal.SIGINT, signal.SIGTERM)
MODEL = "probe-ranker"
# How long after the phase is seen the signal is sent (a random fraction of this, seconds).
JITTER_S = 0.15


@dataclass
class Setup:
    """The prepared inputs and stores of one probe folder."""

    work: Path
    experts: Path
    baseline: Path
    episodes: Path
    gate_db: Path
    runs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Trial:
    """One signal sent (or not) to one command."""

    command: str
    wanted: str
    phase: str | None  # seen when the signal was sent; None: the command ended first
    sig: int
    returncode: int | None
    seconds_to_exit: float
    problems: tuple[str, ...]


def _python() -> str:
    return sys.executable


def prepare(work: Path, n_videos: int = 3000, n_episodes: int = 200_000) -> Setup:
    """Write the inputs and a store with two evaluated, registered versions (once)."""
    from evaluator.demo.episode_data import make_episode_demo
    from evaluator.demo.poster_data import make_demo_set

    work.mkdir(parents=True, exist_ok=True)
    data = work / "data"
    data.mkdir(exist_ok=True)
    setup = Setup(
        work,
        data / "experts.parquet",
        data / "baseline.parquet",
        data / "episodes.csv",
        work / "gate.db",
    )
    if not setup.experts.exists():
        demo = make_demo_set(n_videos, dim=32, seed=7)
        demo.experts.to_parquet(setup.experts, index=False)
        demo.models["baseline"].to_parquet(setup.baseline, index=False)
        demo.models["candidate"].to_parquet(data / "candidate.parquet", index=False)
    if not setup.episodes.exists():
        table = next(iter(make_episode_demo(n_episodes, seed=7).models.values()))
        table.to_csv(setup.episodes, index=False)
    if not setup.gate_db.exists():
        _prepare_gate(setup, data / "candidate.parquet")
    return setup


def _prepare_gate(setup: Setup, candidate: Path) -> None:
    uri = f"sqlite:///{setup.gate_db}"
    for version, predictions in (("1", setup.baseline), ("2", candidate)):
        done = subprocess.run(
            [
                _python(),
                "-m",
                "evaluator",
                f"data.experts={setup.experts}",
                f"data.predictions={predictions}",
                f"mlflow.tracking_uri={uri}",
                f"model.name={MODEL}",
                f"model.version={version}",
                "plots=false",
                "report.html=false",
                f"hydra.run.dir={setup.work / 'gate' / version}",
            ],
            cwd=setup.work,
            env=_env(setup.work / "gate-tmp"),
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            sys.exit(f"signal_probe: preparing the store failed:\n{done.stderr[-3000:]}")
    code = (
        "from evaluator.integrations.register_command import register_poster_versions\n"
        f"register_poster_versions({uri!r}, {MODEL!r}, ['1', '2'], champion='1')\n"
    )
    done = subprocess.run([_python(), "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"signal_probe: registering the versions failed:\n{done.stderr[-3000:]}")


def _env(tmp: Path) -> dict[str, str]:
    tmp.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["TMPDIR"] = str(tmp)
    env["MPLCONFIGDIR"] = str(tmp.parent / "mplconfig")
    return env


def command_line(setup: Setup, command: str, db: Path, out: Path, tmp: Path) -> list[str]:
    """The argv of one trial of ``command`` (a fresh output folder, the given store)."""
    common = [f"mlflow.tracking_uri=sqlite:///{db}", f"hydra.run.dir={out}"]
    if command == "poster":
        return [
            _python(),
            "-m",
            "evaluator",
            f"data.experts={setup.experts}",
            f"data.predictions={setup.baseline}",
            "engine.memory_budget_mb=1",
            f"engine.temp_dir={tmp}",
            *common,
        ]
    if command == "episode":
        return [_python(), "-m", "evaluator", "task=episode", f"data.episodes={setup.episodes}"] + (
            common
        )
    bin_dir = Path(_python()).parent
    if command == "compare":
        refs = [f"candidate=models:/{MODEL}/2", f"baseline=models:/{MODEL}/1"]
        return [str(bin_dir / "video-eval-compare"), *refs, *common]
    return [
        str(bin_dir / "video-eval-promote"),
        f"model.name={MODEL}",
        "model.version=2",
        *common,
    ]


# ----------------------------------------------------------------------------- watching


def _caught_sigterm(pid: int) -> bool:
    """True once the process handles SIGTERM (its lifecycle is installed)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


def _exited(pid: int) -> bool:
    """True when the process has ended (a zombie waiting to be reaped) or is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX"
    except (OSError, IndexError):
        return True


def _open_files(pid: int) -> list[tuple[str, bool]]:
    """(path, opened for writing) of the process's open files."""
    out = []
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return out
    for fd in fds:
        try:
            target = os.readlink(fd_dir / fd)
            flags = Path(f"/proc/{pid}/fdinfo/{fd}").read_text().split("flags:")[1].split()[0]
        except (OSError, IndexError):
            continue
        out.append((target, bool(int(flags, 8) & (os.O_WRONLY | os.O_RDWR))))
    return out


def observe(pid: int, inputs: list[Path], db: Path, out: Path, tmp: Path) -> set[str]:
    """What the process holds now: handler, input, db, buckets_w, staging, plots."""
    seen: set[str] = set()
    if _caught_sigterm(pid):
        seen.add("handler")
    names = {str(p.resolve()) for p in inputs}
    for path, writing in _open_files(pid):
        if path in names:
            seen.add("input")
        elif path == str(db.resolve()):
            seen.add("db")
        elif path.startswith(str(tmp.resolve())) and path.endswith(".arrow") and writing:
            seen.add("buckets_w")
    staging = list(out.glob(".staging-*")) if out.is_dir() else []
    if staging:
        seen.add("staging")
        if any((s / "plots").exists() or (s / "report.html").exists() for s in staging):
            seen.add("plots")
    return seen


def classify(command: str, seen: set[str], history: set[str]) -> str | None:
    """The phase of what was seen (with what was seen before), or None before the handler."""
    if "staging" in seen:
        return "drawing" if "plots" in seen else "writing"
    if "staging" in history or ("db" in seen and command in ("poster", "episode")):
        return "logging"  # the files are written: what is left is the MLflow run
    if "db" in seen:
        return "reading"  # compare / promote read the evaluations from the store
    if "buckets_w" in seen:
        return "partitioning"
    if "input" in seen:
        return "reading"
    if "buckets_w" in history or (command == "episode" and "input" in history):
        return "scoring"
    if "input" in history:
        return "reading"  # between the input's metadata and its rows
    return "start-up" if "handler" in seen else None


def run_trial(
    setup: Setup, command: str, wanted: str, sig: int, n: int, rng: random.Random
) -> Trial:
    """One trial: start, watch until ``wanted``, signal, check the ending."""
    base = setup.work / "trials" / command
    db = base / "mlflow.db"
    if not db.exists():
        base.mkdir(parents=True, exist_ok=True)
        if command in ("compare", "promote"):
            shutil.copy(setup.gate_db, db)
    out, tmp = base / f"out-{n}", base / f"tmp-{n}"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(tmp, ignore_errors=True)
    env = _env(tmp)
    inputs = [setup.experts, setup.baseline] if command == "poster" else [setup.episodes]
    err_path = base / f"stderr-{n}.txt"
    with open(err_path, "w") as err:
        proc = subprocess.Popen(
            command_line(setup, command, db, out, tmp),
            cwd=base,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            # The probe may run as a background job (SIGINT ignored): give the child Ctrl-C back.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        history: set[str] = set()
        order = PHASES[command]
        due: float | None = None
        phase = None
        sent_at = 0.0
        while proc.poll() is None:
            seen = observe(proc.pid, inputs, db, out, tmp)
            phase = classify(command, seen, history)
            history |= seen
            if due is None and phase in order:
                if order.index(phase) > order.index(wanted):
                    break  # the wanted phase went by between two looks: missed
                if phase == wanted:
                    due = time.monotonic() + rng.uniform(0, JITTER_S)
            if due is not None and time.monotonic() >= due:
                if _exited(proc.pid):
                    break  # it ended between two looks (a zombie has its status): missed
                sent_at = time.monotonic()
                proc.send_signal(sig)
                break
            time.sleep(0.005)
        if sent_at == 0.0:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for path in (out, tmp):
                shutil.rmtree(path, ignore_errors=True)
            err_path.unlink()
            return Trial(command, wanted, None, sig, proc.returncode, 0.0, ())
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        took = time.monotonic() - sent_at
    stderr = err_path.read_text()
    problems = check_ending(proc.returncode, sig, stderr, db, out, tmp)
    if not problems:
        err_path.unlink()
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return Trial(command, wanted, phase, sig, proc.returncode, took, problems)


def check_ending(
    returncode: int | None, sig: int, stderr: str, db: Path, out: Path, tmp: Path
) -> tuple[str, ...]:
    """What is wrong with how a signalled command ended (empty: nothing)."""
    problems = []
    if returncode != 128 + sig:
        problems.append(f"exit status {returncode}, expected {128 + sig}")
    for marker in ("Traceback", "Fatal Python error", "Segmentation fault"):
        if marker in stderr:
            problems.append(f"stderr has {marker!r}: {stderr[-1500:]}")
    if db.exists():
        with sqlite3.connect(db, timeout=30) as conn:
            running = conn.execute("SELECT run_uuid FROM runs WHERE status = 'RUNNING'").fetchall()
        if running:
            problems.append(f"runs left RUNNING: {[r[0] for r in running]}")
    left = [str(p) for p in tmp.rglob("*")] if tmp.exists() else []
    if out.exists():
        left += [str(p) for p in out.glob(".staging-*")]
        left += [str(p) for p in out.rglob("*.tmp")]
    if left:
        problems.append(f"temporary files left: {left[:5]}")
    return tuple(problems)


# ----------------------------------------------------------------------------- the table


def probe(
    setup: Setup, commands: list[str], trials: int, seed: int = 0, log: bool = True
) -> list[Trial]:
    """``trials`` rounds of one trial per command, phase and signal; with ``log``, a line per
    trial and the table so far after each round (a long probe can be stopped any time)."""
    rng = random.Random(seed)
    done: list[Trial] = []
    n = 0
    for round_ in range(trials):
        for command in commands:
            for wanted in PHASES[command]:
                for sig in SIGNALS:
                    n += 1
                    t = run_trial(setup, command, wanted, sig, n, rng)
                    done.append(t)
                    if log:
                        status = "missed" if t.phase is None else ("FAILED" if t.problems else "ok")
                        print(
                            f"trial {n}: {command} wanted {wanted} seen {t.phase} "
                            f"{signal.Signals(sig).name} -> {t.returncode} in "
                            f"{t.seconds_to_exit:.2f} s: {status} {' | '.join(t.problems)}",
                            flush=True,
                        )
        if log:
            print(f"after round {round_ + 1}:\n{table(done)}", flush=True)
    return done


def table(trials: list[Trial]) -> str:
    """Per command, phase (as seen when signalled) and signal: trials, failures, slowest exit."""
    rows: dict[tuple[str, str, int], list[Trial]] = defaultdict(list)
    missed: dict[str, int] = defaultdict(int)
    for t in trials:
        if t.phase is None:
            missed[t.command] += 1
        else:
            rows[(t.command, t.phase, t.sig)].append(t)
    lines = [
        f"{'command':<9} {'phase':<13} {'signal':<8} {'trials':>6} {'failed':>6} "
        f"{'exit codes':<14} {'slowest exit':>12}"
    ]
    for command in PHASES:
        for phase in PHASES[command]:
            for sig in SIGNALS:
                got = rows.get((command, phase, sig), [])
                if not got:
                    continue
                codes = sorted({str(t.returncode) for t in got})
                lines.append(
                    f"{command:<9} {phase:<13} {signal.Signals(sig).name:<8} {len(got):>6} "
                    f"{sum(1 for t in got if t.problems):>6} {','.join(codes):<14} "
                    f"{max(t.seconds_to_exit for t in got):>10.2f} s"
                )
    for command, n in missed.items():
        lines.append(f"{command}: {n} trials missed their phase (the command got past it first)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--commands", default=",".join(PHASES))
    parser.add_argument("--work", type=Path, default=Path(".signal_probe"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    commands = [c for c in args.commands.split(",") if c]
    unknown = [c for c in commands if c not in PHASES]
    if unknown:
        sys.exit(f"signal_probe: unknown commands {unknown}; known: {', '.join(PHASES)}")
    setup = prepare(args.work.resolve())
    started = time.monotonic()
    trials = probe(setup, commands, args.trials, args.seed)
    print(table(trials))
    print(f"{len(trials)} trials in {time.monotonic() - started:.0f} s")
    if any(t.problems for t in trials):
        sys.exit(1)


if __name__ == "__main__":
    main()
