"""The user docs cannot rot: links resolve, documented commands compose, every key is documented.

- every relative link and image in README.md and docs/*.md points at a file of the repository
  (and a ``#anchor`` at a heading of the target, by GitHub's slug rules); a link that leaves
  the repository fails;
- every command line of ``video-eval`` / ``video-eval-compare`` / ``video-eval-promote`` /
  ``video-eval-register`` in a fenced code block (also ``python -m evaluator ...`` and
  ``spark-submit ... SCRIPT.py ...``, whose script runs ``video-eval``) has its overrides
  composed with Hydra's compose API, so a misspelt or removed key fails here, not in a user's
  terminal; a line that shows an error on purpose says so with a ``# fails`` comment and must
  then fail to compose;
- README.md starts with exactly the two commands ``make demo`` and ``make test``;
- every leaf key of the composed default configs is named in docs/configuration.md, in the
  section of its command, so a new key cannot go undocumented; and every ``| key | default |``
  table row there states the composed default, so a changed default cannot go unnoticed.
"""

from __future__ import annotations

import ast
import re
import shlex
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from evaluator.config import register_configs

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CONFIG_DOC = ROOT / "docs" / "configuration.md"

# Program -> Hydra config name. A program in [project.scripts] that is missing here fails the
# command test (add its config name here when adding the program).
COMMAND_CONFIGS = {
    "video-eval": "evaluate",
    "video-eval-compare": "compare",
    "video-eval-promote": "promote",
    "video-eval-register": "register",
}
# Hydra flags that take a value (the value is not an override).
FLAGS_WITH_VALUE = {
    "--cfg",
    "-c",
    "--package",
    "-p",
    "--config-name",
    "-cn",
    "--config-path",
    "-cp",
    "--config-dir",
    "-cd",
    "--experimental-rerun",
}
# What composing a bad override raises (an unknown key, a bad value, an unknown group option).
COMPOSE_ERRORS = (HydraException, OmegaConfBaseException)
INFO_VALUES = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}
SHELL_OPERATORS = {"|", "||", "&&", ";", "&", ">", ">>", "2>", "2>&1", "<"}
PROGRAM = re.compile(r"video-eval(?:-[a-z]+)*")
# A documented command line that must fail to compose (an error shown on purpose).
EXPECT_FAILURE = re.compile(r"#\s*fails\b")


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _scripts() -> set[str]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return set(tomllib.load(f)["project"]["scripts"])


# ------------------------------------------------------------------------- markdown structure

FENCE = re.compile(r"^\s*(```+|~~~+)")


def _prose_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of the lines outside fenced code blocks, inline code removed."""
    fence: str | None = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        m = FENCE.match(line)
        if m:
            marker = m.group(1)
            if fence is None:
                fence = marker[0] * 3
            elif marker.startswith(fence):
                fence = None
            continue
        if fence is None:
            yield number, re.sub(r"`+[^`]*`+", "", line)


def _code_blocks(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number of the first content line, lines) of every fenced code block."""
    fence: str | None = None
    start, lines = 0, []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        m = FENCE.match(line)
        if m and fence is None:
            fence, start, lines = m.group(1)[0] * 3, number + 1, []
            continue
        if m and m.group(1).startswith(fence or "\0"):
            fence = None
            yield start, lines
            continue
        if fence is not None:
            lines.append(line)


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lowercased, punctuation removed."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links -> their text
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for _, line in _headings(path):
        slug = github_slug(line)
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def _headings(path: Path) -> Iterator[tuple[int, str]]:
    fence: str | None = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        m = FENCE.match(line)
        if m:
            if fence is None:
                fence = m.group(1)[0] * 3
            elif m.group(1).startswith(fence):
                fence = None
            continue
        h = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if fence is None and h:
            yield number, h.group(1)


# --------------------------------------------------------------------------------------- links

LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_SRC = re.compile(r"<(?:img|a)\b[^>]*\b(?:src|href)=\"([^\"]+)\"", re.IGNORECASE)


@dataclass(frozen=True)
class Link:
    source: Path
    line: int
    target: str

    @property
    def id(self) -> str:
        return f"{_rel(self.source)}:{self.line}:{self.target}"


def _links() -> list[Link]:
    out = []
    for doc in DOCS:
        for number, line in _prose_lines(doc):
            for m in [*LINK.finditer(line), *HTML_SRC.finditer(line)]:
                out.append(Link(doc, number, m.group(1)))
    return out


def link_problem(link: Link) -> str | None:
    """Why the link is broken, or None when it resolves inside the repository."""
    target = link.target
    if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, https:, mailto:
        return None
    path_part, _, anchor = target.partition("#")
    if path_part.startswith("/"):
        return "absolute path: use a path relative to the file"
    dest = (link.source.parent / path_part).resolve() if path_part else link.source
    if not dest.is_relative_to(ROOT):
        return f"leaves the repository ({dest}); users do not have files outside it"
    if not dest.exists():
        return f"no such file: {_rel(dest)}"
    if anchor:
        if dest.suffix != ".md":
            return f"anchor #{anchor} on a non-markdown file"
        if anchor not in _anchors(dest):
            return f"no heading with anchor #{anchor} in {_rel(dest)}"
    return None


LINKS = _links()


@pytest.mark.parametrize("link", LINKS, ids=[link.id for link in LINKS])
def test_link_resolves_inside_repository(link: Link) -> None:
    problem = link_problem(link)
    assert problem is None, f"{link.id}: {problem}"


def test_docs_exist_and_have_links() -> None:
    assert (ROOT / "docs").is_dir() and len(DOCS) > 1
    assert any(link.source.name == "README.md" for link in LINKS)


def test_link_checker_catches_bad_links(tmp_path: Path) -> None:
    readme = ROOT / "README.md"
    assert link_problem(Link(readme, 1, "../shared/SPEC.md")) is not None
    assert link_problem(Link(readme, 1, "docs/no-such-file.md")) is not None
    assert link_problem(Link(readme, 1, "docs/configuration.md#no-such-heading")) is not None
    assert link_problem(Link(readme, 1, "docs/configuration.md")) is None
    assert link_problem(Link(readme, 1, "https://mlflow.org")) is None


def test_github_slug() -> None:
    assert github_slug("What it does") == "what-it-does"
    assert github_slug("`video-eval-compare`: the paired comparison") == (
        "video-eval-compare-the-paired-comparison"
    )
    assert github_slug("Eligibility & the match rule (inclusive)") == (
        "eligibility--the-match-rule-inclusive"
    )
    assert github_slug("recall_at_k, TOP-k recall") == "recall_at_k-top-k-recall"


# ------------------------------------------------------------------------------------ commands


@dataclass(frozen=True)
class Found:
    """Where in the docs a thing to check was found; ``id`` is its test id."""

    source: Path
    line: int

    def __str__(self) -> str:
        return f"{_rel(self.source)}:{self.line}"

    id = property(__str__)


@dataclass(frozen=True)
class Command(Found):
    program: str
    overrides: tuple[str, ...]
    expect_failure: bool = False


def parse_command(tokens: list[str]) -> tuple[str, list[str]] | None:
    """(program, overrides) of a shell command line that runs one of the evaluator programs."""
    for i, token in enumerate(tokens):
        name = token.rsplit("/", 1)[-1]
        if PROGRAM.fullmatch(name):
            program, rest = name, tokens[i + 1 :]
            break
        if re.fullmatch(r"python[0-9.]*", name) and tokens[i + 1 : i + 3] == ["-m", "evaluator"]:
            program, rest = "video-eval", tokens[i + 3 :]
            break
        if name == "spark-submit":
            # spark-submit [its options] SCRIPT.py OVERRIDES: the docs' scripts run video-eval.
            scripts = [j for j in range(i + 1, len(tokens)) if tokens[j].endswith(".py")]
            if not scripts:
                return None
            program, rest = "video-eval", tokens[scripts[0] + 1 :]
            break
    else:
        return None
    overrides: list[str] = []
    skip_next = False
    for j, token in enumerate(rest):
        if skip_next:
            skip_next = False
            continue
        if token in SHELL_OPERATORS or token.startswith((">", "2>")):
            break
        if token.startswith("-"):
            flag = token.split("=", 1)[0]
            skip_next = "=" not in token and (
                flag in FLAGS_WITH_VALUE
                or (flag in {"--info", "-i"} and j + 1 < len(rest) and rest[j + 1] in INFO_VALUES)
            )
            continue
        overrides.append(token)
    return program, overrides


def _commands() -> list[Command]:
    out = []
    for doc in DOCS:
        for start, lines in _code_blocks(doc):
            logical, first = "", None
            for offset, line in enumerate(lines):
                if first is None:
                    first = start + offset
                if line.rstrip().endswith("\\"):
                    logical += line.rstrip()[:-1] + " "
                    continue
                logical += line
                try:
                    tokens = shlex.split(logical, comments=True)
                except ValueError:  # not shell (a Python snippet's quotes, ...)
                    tokens = []
                parsed = parse_command(tokens)
                if parsed:
                    fails = bool(EXPECT_FAILURE.search(logical))
                    out.append(Command(doc, first, parsed[0], tuple(parsed[1]), fails))
                logical, first = "", None
    return out


def _first_of_sweeps(overrides: tuple[str, ...]) -> list[str]:
    """Multirun lists (a,b,c) and other sweeps replaced by their first value."""
    out = []
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    for text, override in zip(overrides, parsed, strict=True):
        if override.is_sweep_override():
            value = next(iter(override.sweep_string_iterator()))
            text = f"{override.get_key_element()}={value}"
        out.append(text)
    return out


def compose_command(program: str, overrides: tuple[str, ...] | list[str]) -> DictConfig:
    """Compose the program's config with the overrides; raises on an unknown key or bad value."""
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="evaluator.conf", version_base=None):
        return compose(
            config_name=COMMAND_CONFIGS[program], overrides=_first_of_sweeps(tuple(overrides))
        )


COMMANDS = _commands()


@pytest.mark.parametrize("command", COMMANDS, ids=[c.id for c in COMMANDS])
def test_documented_command_composes(command: Command) -> None:
    if command.program not in _scripts():
        pytest.skip(
            f"{command.id}: {command.program} is not in pyproject's [project.scripts] in this tree"
        )
    if command.program == "video-eval-record":  # not a Hydra command: its own arguments
        from evaluator.cli import parse_record_args

        try:
            parse_record_args(list(command.overrides))
        except Exception as exc:  # a missing folder is fine here; an unknown key is not
            assert "no such folder" in str(exc), f"{command.id}: {exc}"
        return
    assert command.program in COMMAND_CONFIGS, (
        f"{command.id}: {command.program} is a console script but test_docs.COMMAND_CONFIGS "
        "does not name its config"
    )
    if command.expect_failure:
        with pytest.raises(COMPOSE_ERRORS):
            compose_command(command.program, command.overrides)
        return
    compose_command(command.program, command.overrides)


@dataclass(frozen=True)
class PythonCompose(Found):
    config_name: str
    overrides: tuple[str, ...]


def python_composes(text: str) -> list[tuple[int, str, list[str]]]:
    """(line, config_name, overrides) of every ``compose(config_name=..., overrides=[...])``
    call with literal arguments in a Python snippet; [] when the text is not Python."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return []
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        kwargs = {k.arg: k.value for k in node.keywords}
        if name != "compose" or "config_name" not in kwargs:
            continue
        config = ast.literal_eval(kwargs["config_name"])
        overrides = ast.literal_eval(kwargs["overrides"]) if "overrides" in kwargs else []
        out.append((node.lineno, str(config), [str(o) for o in overrides]))
    return out


def _python_composes() -> list[PythonCompose]:
    out = []
    for doc in DOCS:
        for start, lines in _code_blocks(doc):
            for line, config, overrides in python_composes("\n".join(lines)):
                out.append(PythonCompose(doc, start + line - 1, config, tuple(overrides)))
    return out


PYTHON_COMPOSES = _python_composes()


@pytest.mark.parametrize("call", PYTHON_COMPOSES, ids=[c.id for c in PYTHON_COMPOSES])
def test_documented_python_compose_composes(call: PythonCompose) -> None:
    programs = [p for p, name in COMMAND_CONFIGS.items() if name == call.config_name]
    assert programs, f"{call.id}: compose(config_name={call.config_name!r}) is no known config"
    compose_command(programs[0], call.overrides)


def test_python_compose_finder() -> None:
    text = 'cfg = compose(config_name="evaluate", overrides=["engine=spark", "a.b=1"])'
    assert python_composes(text) == [(1, "evaluate", ["engine=spark", "a.b=1"])]
    assert python_composes("make demo    # not python") == []
    assert PYTHON_COMPOSES, "docs/engines.md shows the Python API's compose call"


def test_every_program_is_documented() -> None:
    documented = {c.program for c in COMMANDS}
    assert set(COMMAND_CONFIGS) | {"video-eval-record"} <= documented
    assert set(_scripts()) <= documented


def test_command_helper_rejects_misspelt_key() -> None:
    good = ["data.experts=e.parquet", "data.predictions=a.parquet,b.parquet", "engine=spark"]
    cfg = compose_command("video-eval", good)
    assert cfg.data.predictions == "a.parquet" and cfg.engine.name == "spark"
    with pytest.raises(Exception, match="time_tolerence_s"):
        compose_command("video-eval", ["matching.time_tolerence_s=1.0"])
    with pytest.raises(Exception, match="min_detla"):
        compose_command("video-eval-promote", ["promote.min_detla=0.01"])
    with pytest.raises(COMPOSE_ERRORS):
        compose_command("video-eval-compare", ["candidate=a", "allow_mismatch=maybe"])
    with pytest.raises(COMPOSE_ERRORS):
        compose_command("video-eval", ["engine=sprak"])


def test_command_parser() -> None:
    line = ".venv/bin/video-eval -m --cfg job a=1 b=x,y | head"
    assert parse_command(shlex.split(line)) == ("video-eval", ["a=1", "b=x,y"])
    assert parse_command(shlex.split("python -m evaluator c=2 --info config")) == (
        "video-eval",
        ["c=2"],
    )
    assert parse_command(shlex.split("video-eval-promote '~promote.guardrails.x'")) == (
        "video-eval-promote",
        ["~promote.guardrails.x"],
    )
    assert parse_command(shlex.split("mlflow ui --backend-store-uri sqlite:///mlflow.db")) is None
    line = "spark-submit --master yarn --conf spark.x=1 job.py engine=spark d=1 2>&1"
    assert parse_command(shlex.split(line)) == ("video-eval", ["engine=spark", "d=1"])
    assert parse_command(shlex.split("spark-submit app.jar")) is None


def test_documented_failures_are_marked() -> None:
    """The parser sees the ``# fails`` marker, and such a line really fails to compose."""
    marked = [c for c in COMMANDS if c.expect_failure]
    assert marked, "docs/configuration.md shows a misspelt key marked '# fails'"
    for command in marked:
        with pytest.raises(COMPOSE_ERRORS):
            compose_command(command.program, command.overrides)


def test_readme_starts_with_the_two_commands() -> None:
    """The README's first code block holds exactly `make demo` and `make test`."""
    start, lines = next(_code_blocks(ROOT / "README.md"))
    commands = [shlex.split(line, comments=True) for line in lines]
    assert [c for c in commands if c] == [["make", "demo"], ["make", "test"]], (
        f"README.md:{start}: the first code block must be exactly `make demo` and `make test`"
    )


# ------------------------------------------------------------------------ documented config keys


def leaf_keys(node: Any, prefix: str = "") -> list[str]:
    """Dotted leaf keys of a composed config; free-form mappings (dict[str, X]) are leaves."""
    if isinstance(node, DictConfig) and (not prefix or OmegaConf.get_type(node) is not dict):
        keys = []
        for key in node.keys():
            child = node._get_node(key)
            keys.extend(leaf_keys(child, f"{prefix}{key}."))
        return keys
    assert not isinstance(node, ListConfig) or prefix  # lists are leaves
    return [prefix.rstrip(".")]


def _sections(path: Path) -> dict[str, str]:
    """Level-2 heading -> the text under it (up to the next level-2 heading)."""
    out: dict[str, str] = {}
    current = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            current = line[3:].strip()
            out[current] = ""
        elif current:
            out[current] += line + "\n"
    return out


def _section_of(program: str) -> str:
    sections = _sections(CONFIG_DOC)
    matches = [text for title, text in sections.items() if f"`{program}`" in title]
    assert len(matches) == 1, (
        f"docs/configuration.md needs exactly one '## ...' heading naming `{program}`, "
        f"found {len(matches)} among {list(sections)}"
    )
    return matches[0]


def test_leaf_keys_treat_mappings_as_leaves() -> None:
    keys = leaf_keys(compose_command("video-eval-promote", []))
    assert "promote.guardrails" in keys and "promote.floors" in keys
    assert not any(k.startswith("promote.guardrails.") for k in keys)
    assert "engine.conf" in leaf_keys(compose_command("video-eval", []))


@pytest.mark.parametrize("program", sorted(COMMAND_CONFIGS))
def test_every_config_key_is_documented(program: str) -> None:
    section = _section_of(program)
    keys = leaf_keys(compose_command(program, []))
    assert len(keys) >= 4
    missing = [k for k in keys if f"`{k}`" not in section and f"`{k}=" not in section]
    assert not missing, (
        f"keys of `{program}` not documented in its section of docs/configuration.md: {missing}"
    )


def yaml_text(value: Any) -> str:
    """A config value as the docs write it: null, true, 3.0, [0.0, 0.5], {recall_at_1: 0.02}."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(yaml_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {yaml_text(v)}" for k, v in value.items()) + "}"
    return str(value)


DEFAULT_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|\s*`([^`]*)`\s*\|")


def documented_defaults(section: str) -> list[tuple[str, str]]:
    """(key, default) of the rows of the section's ``| key | default | ... |`` tables."""
    out, in_table = [], False
    for line in section.splitlines():
        if re.match(r"^\|\s*key\s*\|\s*default\s*\|", line):
            in_table = True
            continue
        if not line.startswith("|"):
            in_table = False
            continue
        m = DEFAULT_ROW.match(line)
        if in_table and m:
            out.append((m.group(1), m.group(2)))
    return out


def test_yaml_text() -> None:
    assert yaml_text({"a": 0.02, "b": [1.0, None, True]}) == "{a: 0.02, b: [1.0, null, true]}"


@pytest.mark.parametrize("program", sorted(COMMAND_CONFIGS))
def test_documented_defaults_are_the_composed_ones(program: str) -> None:
    rows = documented_defaults(_section_of(program))
    assert rows, f"no '| key | default |' table in the `{program}` section"
    raw = OmegaConf.to_container(compose_command(program, []), resolve=False)
    wrong = []
    for key, documented in rows:
        node: Any = raw
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, f"`{program}`: no key {key}"
            node = node[part]
        if yaml_text(node) != documented:
            wrong.append(f"{key}: documented `{documented}`, composed `{yaml_text(node)}`")
    assert not wrong, f"docs/configuration.md, `{program}`: wrong defaults: {wrong}"
