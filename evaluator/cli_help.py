"""``--help`` of the Hydra commands in a fraction of a second.

Measured on the 2-core development machine: ``video-eval --help`` takes 0.4 s with
`listing_groups_once` and 1.25 s without it (docs/performance.md#help). Hydra offers no
public way to list the config groups faster, so the private function stays, guarded: with
another Hydra layout, help runs unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

HELP_FLAGS = ("--help", "-h", "--hydra-help")


@contextlib.contextmanager
def listing_groups_once() -> Iterator[None]:
    """While Hydra writes ``--help``: one copy of its config repository for all group lookups.

    Hydra's help lists every config group (its own and ours: about 100 lookups) and makes a
    fresh deep copy of the config repository for each, 0.6 s of a 1 s ``video-eval --help``.
    A lookup does the same as Hydra's `get_group_options` (parse the overrides, copy the
    repository, initialise its search path, list the group), but the copy for one primary
    config and overrides is made once: nothing is composed or mutated between the lookups of
    a help text, so the text is the same. Without that private Hydra function, help runs
    unchanged.
    """
    try:
        from hydra._internal.config_loader_impl import ConfigLoaderImpl
        from hydra.core.object_type import ObjectType
    except ImportError:  # another Hydra layout: its own help, unchanged
        yield
        return
    create = getattr(ConfigLoaderImpl, "_parse_overrides_and_create_caching_repo", None)
    original = ConfigLoaderImpl.get_group_options
    if create is None:
        yield
        return
    repos: dict[tuple[int, str | None, tuple[str, ...]], Any] = {}

    def get_group_options(
        self: Any,
        group_name: str,
        results_filter: ObjectType | None = ObjectType.CONFIG,
        config_name: str | None = None,
        overrides: list[str] | None = None,
    ) -> list[str]:
        key = (id(self), config_name, tuple(overrides or ()))
        try:
            if key not in repos:
                repos[key] = create(self, config_name, list(overrides or ()))[1]
            return list(repos[key].get_group_options(group_name, results_filter))
        except Exception:  # a Hydra that changed inside, or a bad override: its own lookup
            return original(self, group_name, results_filter, config_name, overrides)

    ConfigLoaderImpl.get_group_options = get_group_options  # type: ignore[method-assign]
    try:
        yield
    finally:
        ConfigLoaderImpl.get_group_options = original  # type: ignore[method-assign]
