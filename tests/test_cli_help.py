"""Every console script and every sub-command answers --help (sqlite-utils habit)."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from agent.cli import main as agent_main
from fleet.cli import main as fleet_main
from provisioning.cli import main as provision_main
from sim.cli import main as sim_main

GROUPS = {"agent": agent_main, "fleet": fleet_main, "provisioning": provision_main, "sim": sim_main}


def _walk(cmd: click.Command, path: tuple[str, ...] = ()):
    yield path
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            yield from _walk(sub, (*path, name))


@pytest.mark.parametrize("package", sorted(GROUPS))
def test_every_command_has_help(package: str) -> None:
    group = GROUPS[package]
    runner = CliRunner()
    for path in _walk(group):
        result = runner.invoke(group, [*path, "--help"])
        assert result.exit_code == 0, (package, path, result.output)
        assert "Usage:" in result.output
        command = group
        for name in path:
            assert isinstance(command, click.Group)
            command = command.commands[name]
        assert command.help or command.short_help, f"{package} {' '.join(path)} has no help text"


@pytest.mark.parametrize("package", sorted(GROUPS))
def test_python_dash_m_runs(package: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", package, "--help"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "Usage:" in out.stdout
