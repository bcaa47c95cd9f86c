"""A run's params: resolved config groups flattened to dotted MLflow param keys."""

from __future__ import annotations

from typing import Any


def flat_params(prefix: str, node: Any) -> dict[str, str]:
    """``node`` (a resolved config container) as params: one dotted key per leaf.

    Args:
        prefix: the key of ``node`` (e.g. ``"episode"``); empty: its keys stand alone.
        node: a dict (walked into) or a leaf value.

    Returns:
        Dotted key -> the leaf as a string (``"null"`` for None).

    Example:
        >>> flat_params("episode", {"bootstrap": {"seed": 0}, "group_by": None})
        {'episode.bootstrap.seed': '0', 'episode.group_by': 'null'}
    """
    if not isinstance(node, dict):
        return {prefix: "null" if node is None else str(node)}
    flat: dict[str, str] = {}
    for key, value in node.items():
        flat.update(flat_params(f"{prefix}.{key}" if prefix else str(key), value))
    return flat
