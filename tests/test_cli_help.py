"""``--help``: Hydra's own text, written with one copy of the config repository."""

from __future__ import annotations

import contextlib
import sys

import pytest
from hydra._internal.config_loader_impl import ConfigLoaderImpl

from evaluator import cli

COMMANDS = ["_evaluate_main", "_compare_main", "_promote_main", "_register_main"]


@pytest.mark.parametrize("flag", ["--help", "--hydra-help"])
@pytest.mark.parametrize("command", COMMANDS)
def test_help_text_is_hydras_own(
    command: str, flag: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = getattr(cli, command)
    monkeypatch.setattr(sys, "argv", [command, flag])
    copies: list[object] = []
    create = ConfigLoaderImpl._parse_overrides_and_create_caching_repo

    def counted(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        copies.append(args)
        return create(self, *args, **kwargs)

    monkeypatch.setattr(ConfigLoaderImpl, "_parse_overrides_and_create_caching_repo", counted)
    with pytest.raises(SystemExit, match="0"):
        run()  # Hydra unchanged: a fresh repository copy per group lookup
    plain = capsys.readouterr().out
    plain_copies, copies[:] = len(copies), []
    original = ConfigLoaderImpl.get_group_options
    with pytest.raises(SystemExit, match="0"), cli.listing_groups_once():
        assert ConfigLoaderImpl.get_group_options is not original
        run()
    assert ConfigLoaderImpl.get_group_options is original
    assert capsys.readouterr().out == plain
    # One copy for all the help's lookups (plus the one composing the config), not one each.
    assert plain_copies > 20
    assert 1 <= len(copies) <= 3
    # The groups are listed with their options (a listing that found nothing would match too).
    if flag == "--help" and command == "_evaluate_main":
        assert "engine: base_engine, local, spark" in plain
        assert "task: base_task, episode, poster" in plain
    if flag == "--hydra-help":
        assert "hydra/launcher: basic" in plain


def test_the_command_line_help_uses_it(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    original = cli.listing_groups_once

    def spy():  # type: ignore[no-untyped-def]
        calls.append("help")
        return original()

    monkeypatch.setattr(cli, "listing_groups_once", spy)
    monkeypatch.setattr(sys, "argv", ["video-eval", "--help"])
    with pytest.raises(SystemExit, match="0"):
        cli.main()
    monkeypatch.setattr(sys, "argv", ["video-eval", "--cfg", "job"])
    with contextlib.suppress(SystemExit):
        cli.main()
    assert calls == ["help"]
