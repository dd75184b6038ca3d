"""``exec``: run a command with secrets in its environment, and redact them from its output."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from ..config.durations import parse_duration
from ..errors import DocumentError
from ..pure.documents import load_document
from ..pure.environment import check_env_name, env_mapping
from ..pure.redaction import DEFAULT_MIN_LENGTH, Redactor
from ..tools.environment import resolve_environment
from ..tools.reading import read_text
from ..tools.running import HOLD_SECONDS, command_environment, run_command
from .options import aws_options, handle_errors, open_manager, scope_options, team_roles_option


def _env_flags(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    """``NAME=VAR`` flags as ``{NAME: "((VAR))"}``; a name given twice is refused."""
    mapping: dict[str, str] = {}
    for flag in values:
        name, sep, var = flag.partition("=")
        if var.startswith("((") and var.endswith("))"):  # -e TOKEN='((api-token))' means the same
            var = var[2:-2]
        if not sep or not var:
            raise click.BadParameter(f"'{flag}' is not NAME=VAR (VAR is what stands inside ((..)), e.g. db.password)")
        try:
            check_env_name(name)
        except DocumentError as exc:
            raise click.BadParameter(str(exc)) from None
        if name in mapping:
            raise click.BadParameter(f"{name} is given twice")
        mapping[name] = f"(({var}))"
    return mapping


def _not_stdin(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    if value is not None and str(value) == "-":
        raise click.BadParameter("'-' is not allowed: stdin is the command's")
    return value


def _duration(ctx: click.Context, param: click.Parameter, value: str) -> float:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if seconds <= 0:
        raise click.BadParameter("must be more than 0")
    return seconds


@click.command("exec", context_settings={"allow_interspersed_args": False})
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED, metavar="-- COMMAND [ARGS]...")
@scope_options
@click.option("--env", "-e", "env_flags", multiple=True, metavar="NAME=VAR", callback=_env_flags,
              help="Set NAME to the value of ((VAR)), e.g. DB_PASS=database.password (or "
                   "DB_PASS='((database.password))'); repeatable.")
@click.option("--env-file", type=click.Path(dir_okay=False, path_type=Path), default=None, callback=_not_stdin,
              help="YAML mapping of NAME to a string with ((vars)) in it, e.g. "
                   "'DATABASE_URL: postgres://((db.user)):((db.password))@host/db'; --env wins over it.")
@click.option("--clear-env", is_flag=True,
              help="Give the command only these variables and PATH=/usr/local/bin:/usr/bin:/bin, "
                   "not our environment.")
@click.option("--no-redact", is_flag=True, help="Do not redact the values from the command's output "
              "(stdout and stderr are then the command's own).")
@click.option("--redact-min-length", type=click.IntRange(min=1), default=DEFAULT_MIN_LENGTH, show_default=True,
              metavar="N", help="Values shorter than N characters are not redacted (a warning names them).")
@click.option("--redact-hold", default=f"{int(HOLD_SECONDS * 1000)}ms", show_default=True, callback=_duration,
              metavar="DURATION", help="Output that could be the start of a value is held back at most this "
              "long when the command writes nothing more; a value whose halves are written further apart leaks.")
@aws_options
@team_roles_option
@click.pass_context
@handle_errors
def exec_command(
    ctx: click.Context, command: tuple[str, ...], team: str, pipeline: str | None, env_flags: dict[str, str],
    env_file: Path | None, clear_env: bool, no_redact: bool, redact_min_length: int, redact_hold: float,
    **options: Any,
) -> None:
    """Run COMMAND with secrets in its environment, redacting them from its stdout and stderr.

    Every var is resolved first, in one batched lookup; an undefined var or a failed lookup
    stops here (exit 1) and COMMAND never runs. Otherwise the exit status is COMMAND's (128+N
    when signal N killed it); SIGINT, SIGTERM and SIGHUP are forwarded to it. A var whose value
    is not a string (a mapping, a number) is given as JSON. What is redacted and what is not:
    docs/exec.md.

    \b
    Example:
      pipeline-secrets exec --team main --pipeline deploy -e DB_PASS=db.password -- ./migrate.sh
    """
    manager = open_manager(ctx, options)
    limits = manager.settings.limits
    mapping = {}
    if env_file is not None:
        mapping = env_mapping(load_document(read_text(env_file, limits.max_bytes), limits), f"'{env_file}'")
    mapping.update(env_flags)
    environment = resolve_environment(manager, mapping, team=team, pipeline=pipeline, with_secrets=not no_redact)
    ctx.close()  # the manager (and a --dev emulator) are not needed while the command runs
    redactor = None
    if not no_redact:
        redactor = Redactor(environment.secrets, min_length=redact_min_length)
        if redactor.skipped:
            click.echo(f"warning: not redacted, shorter than {redact_min_length} characters: "
                       + ", ".join(redactor.skipped), err=True)
    env = command_environment(environment.values, clear=clear_env, parent=os.environ)
    sys.exit(run_command(command, env, redactor, hold=redact_hold))
