"""One validation of ``record.json`` before `video-eval-record` uses any of it.

``record.json`` is a file in a folder the user controls: it may be edited, truncated, or
written by another version. Before anything is read from it, `validate_record_file` checks
its whole shape (every field, its type and the types inside it) and its containment: every
file it names (artifacts and tables) must resolve to a file inside the output folder, so a
record can never upload a file from elsewhere (``../../etc/hostname``). A refusal names the
file and the field; the command exits with status 2. No store is contacted: MLflow is loaded
only for its own name rules (`evaluator.tracking.preflight.check_names`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from evaluator.errors import InputError
from evaluator.tracking.preflight import check_names

Check = Callable[[Any], bool]


def _text(value: Any) -> bool:
    return isinstance(value, str)


def _text_or_null(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _step(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], int)
        and not isinstance(value[0], bool)
        and _number(value[1])
    )


def _pair(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and _text(value[0]) and _text(value[1])


def _artifact(value: Any) -> bool:
    return (
        isinstance(value, list) and len(value) == 2 and _text(value[0]) and _text_or_null(value[1])
    )


class _Refusal(Exception):
    def __init__(self, field: str, expected: str, got: Any) -> None:
        super().__init__(field, expected, got)
        self.field, self.expected, self.got = field, expected, got


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "text", bool: "true/false"}.get(
        type(value), f"{type(value).__name__} {value!r}"[:60]
    )


def _require(field: str, value: Any, ok: Check, expected: str) -> None:
    if not ok(value):
        raise _Refusal(field, expected, value)


def _mapping(field: str, value: Any, ok: Check, expected: str) -> None:
    _require(field, value, lambda v: isinstance(v, dict), f"an object of {expected}")
    for key, item in value.items():
        _require(f"{field}.{key}", item, ok, expected)


def _listing(field: str, value: Any, ok: Check, expected: str) -> None:
    _require(field, value, lambda v: isinstance(v, list), f"a list of {expected}")
    for i, item in enumerate(value):
        _require(f"{field}[{i}]", item, ok, expected)


def _object(field: str, value: Any, fields: Mapping[str, tuple[Check, str]], *, null: bool) -> None:
    if value is None and null:
        return
    _require(
        field, value, lambda v: isinstance(v, dict), "an object" + (" or null" if null else "")
    )
    for name, (ok, expected) in fields.items():
        if name not in value and ok(None):  # an optional field
            continue
        if name not in value:
            raise _Refusal(f"{field}.{name}", expected, "nothing (the field is missing)")
        _require(f"{field}.{name}", value[name], ok, expected)


DESTINATION = {
    "tracking_uri": (_text, "text"),
    "experiment": (_text, "text"),
    "artifact_location": (_text_or_null, "text or null"),
    "run_name": (_text, "text"),
    "parent_run_id": (_text_or_null, "text or null"),
}
DATASET = {
    "path": (_text, "text"),
    "name": (_text, "text"),
    "digest": (_text, "text"),
    "columns": (
        lambda v: isinstance(v, list) and all(_pair(c) for c in v),
        "a list of [name, type]",
    ),
    "spark_location": (_text_or_null, "text or null"),
}
LOGGED_MODEL = {
    "name": (_text, "text"),
    "tags": (lambda v: isinstance(v, dict) and all(_scalar(x) for x in v.values()), "an object"),
    "params": (lambda v: isinstance(v, dict) and all(_scalar(x) for x in v.values()), "an object"),
}


def _schema(m: Any, expected_format: int) -> None:
    _require("(the file)", m, lambda v: isinstance(v, dict), "a JSON object")
    _require("format", m.get("format"), lambda v: v == expected_format, f"{expected_format}")
    _require("record_id", m.get("record_id"), lambda v: _text(v) and bool(v), "non-empty text")
    _object("destination", m.get("destination"), DESTINATION, null=False)
    _mapping("params", m.get("params"), _scalar, "name -> value")
    _mapping("tags", m.get("tags"), _scalar, "name -> value")
    _mapping("metrics", m.get("metrics"), _number, "name -> number")
    _mapping(
        "stepped",
        m.get("stepped"),
        lambda v: isinstance(v, list) and all(_step(p) for p in v),
        "name -> list of [step, number]",
    )
    _listing("artifacts", m.get("artifacts"), _artifact, "[file, folder or null]")
    _mapping("tables", m.get("tables"), _text, "name -> parquet file")
    _object("dataset", m.get("dataset"), DATASET, null=True)
    _object("logged_model", m.get("logged_model"), LOGGED_MODEL, null=True)


def _inside(root: Path, rel: str) -> bool:
    """Whether ``rel`` resolves (links followed) to a path inside ``root``."""
    if not rel or os.path.isabs(rel):
        return False
    try:
        return (root / rel).resolve().is_relative_to(root)
    except (OSError, RuntimeError):  # a symlink loop
        return False


def validate_record_file(path: Path, m: Any, expected_format: int) -> None:
    """Refuse a ``record.json`` whose shape is wrong or that names a file outside its folder.

    Args:
        path: the ``record.json`` file (its folder is the output folder).
        m: its parsed JSON.
        expected_format: the format number this version writes.

    Raises:
        InputError: ``FILE: not a valid record file: field F must be E, got G`` or
            ``FILE: field F names 'X', which lies outside the output folder``.
    """
    try:
        _schema(m, expected_format)
    except _Refusal as bad:
        got = bad.got if isinstance(bad.got, str) and "missing" in bad.got else _kind(bad.got)
        raise InputError(
            f"{path}: not a valid record file: field '{bad.field}' must be {bad.expected}, got "
            f"{got}. Record the output folder written by video-eval as it is (or run the "
            f"evaluation again)."
        ) from None
    model = (m["logged_model"] or {}).get("name")
    names = {"mlflow": {"experiment": m["destination"]["experiment"]}, "model": {"name": model}}
    try:  # a name MLflow refuses would fail every later attempt the same way
        check_names(OmegaConf.create(names))
    except InputError as exc:
        raise InputError(f"{path}: {str(exc).removeprefix('config: ')}") from None
    root = path.parent.resolve()
    named = [(f"artifacts[{i}]", a[0]) for i, a in enumerate(m["artifacts"])]
    named += [(f"tables.{k}", v) for k, v in m["tables"].items()]
    for field, rel in named:
        if not _inside(root, rel):
            raise InputError(
                f"{path}: field '{field}' names {rel!r}, which lies outside the output folder "
                f"{root}; a record uploads only the files of its own folder. Refused: nothing "
                f"was recorded."
            )
