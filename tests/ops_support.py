"""Helpers shared by the operator-tool tests (iam-policy, paths, check-access, put, check): run the
CLI in-process against the fault proxy, and check that a failure is clean."""

from __future__ import annotations

from click.testing import CliRunner, Result
from conftest import ACCESS_KEY, REGION, SECRET_KEY
from support.faultproxy import FaultProxy

from pipeline_secrets.cli import main

TEMPLATE_FLAGS = {
    "pipeline": "--aws-secretsmanager-pipeline-secret-template",
    "team": "--aws-secretsmanager-team-secret-template",
    "shared": "--aws-secretsmanager-shared-secret-template",
}
AWS_FLAGS = ["--aws-secretsmanager-region", REGION, "--aws-secretsmanager-access-key", ACCESS_KEY,
             "--aws-secretsmanager-secret-key", SECRET_KEY, "--secret-retry-interval", "1ms"]


class Cli:
    """``cli(*args, flags=AWS_FLAGS, env=None, input=None)``: the CLI in-process, AWS at the proxy."""

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy

    def __call__(self, *args: str, flags: list[str] | None = None, env: dict[str, str] | None = None,
                 input: str | bytes | None = None) -> Result:
        argv = [*args, *(AWS_FLAGS if flags is None else flags)]
        environ = {"AWS_ENDPOINT_URL_SECRETS_MANAGER": self.proxy.url, **(env or {})}
        return _runner().invoke(main, argv, env=environ, input=input, catch_exceptions=False)


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]  # click < 8.2
    except TypeError:
        return CliRunner()  # click >= 8.2 keeps stdout and stderr apart


def assert_fails_cleanly(result: Result, status: int) -> None:
    """Exit ``status``, an ``error:`` line on stderr, no traceback, no internal error."""
    assert result.exit_code == status, (result.exit_code, result.stdout, result.stderr)
    assert "error: " in result.stderr.lower()  # ours, or click's usage "Error: "
    assert "Traceback" not in result.stderr + result.stdout
    assert "internal error" not in result.stderr
