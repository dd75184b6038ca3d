"""Usability of the whole command: examples in every --help, click's shell completion."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from pipeline_secrets.cli import main


@pytest.mark.parametrize("command", sorted(main.commands))
def test_every_command_has_help_with_an_example(command):
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output
    assert f"pipeline-secrets {command}" in result.output.split("Example", 1)[1]


def test_shell_completion_script_and_command_names():
    runner = CliRunner()
    script = runner.invoke(main, [], prog_name="pipeline-secrets", env={"_PIPELINE_SECRETS_COMPLETE": "bash_source"})
    assert script.exit_code == 0
    assert "_PIPELINE_SECRETS_COMPLETE=bash_complete" in script.output
    env = {"_PIPELINE_SECRETS_COMPLETE": "bash_complete", "COMP_WORDS": "pipeline-secrets ch", "COMP_CWORD": "1"}
    completed = runner.invoke(main, [], prog_name="pipeline-secrets", env=env)
    assert completed.output.split() == ["plain,check", "plain,check-access"]
