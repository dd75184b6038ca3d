"""The ``pipeline-secrets`` command: parse flags, call the manager, render the answer.

Exit status: 0 success, 1 undefined var or lookup failure, 2 usage or configuration error.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ._version import __version__
from .documents import dump_document, load_document
from .errors import DocumentError, PipelineSecretsError
from .manager import Manager, build_manager
from .settings import OPTIONS, resolve_settings

_SETTING_NAMES = [option.name for option in OPTIONS]


def _aws_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the flags of spec section 1 and ``--dev`` to a command that talks to AWS."""
    for option in reversed(OPTIONS):
        default = option.default if option.kind != "template" or option.default else '""'
        extra = f" [env: {option.env}" + ("" if default is None else f"; default: {default}") + "]"
        if option.kind == "bool":
            flag = f"{option.flag}/--no-{option.flag[2:]}"
            command = click.option(flag, option.name, default=None, help=option.help + extra)(command)
        else:
            command = click.option(option.flag, option.name, default=None, metavar=_metavar(option.kind),
                                   help=option.help + extra)(command)
    command = click.option(
        "--dev-secrets", type=click.Path(dir_okay=False, path_type=Path), default=None,
        help="With --dev: YAML file of secret path -> value to seed the emulator with "
             "[default: the shipped example].",
    )(command)
    return click.option(
        "--dev", is_flag=True, envvar="PIPELINE_SECRETS_DEV",
        help="Use the embedded Secrets Manager emulator instead of AWS [env: PIPELINE_SECRETS_DEV=1].",
    )(command)


def _metavar(kind: str) -> str:
    return {"duration": "DURATION", "count": "N", "template": "TEMPLATE", "choice": "auto|on|off"}.get(kind, "TEXT")


def _scope_options(command: Callable[..., Any]) -> Callable[..., Any]:
    command = click.option("--pipeline", "-p", default=None, help="Pipeline name; omit for team-level (one-off) lookups.")(command)
    return click.option("--team", "-t", required=True, help="Team name.")(command)


def _handle_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Our errors become one line on stderr and their exit status; never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except PipelineSecretsError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_status)
        except Exception as exc:  # a bug of ours: say so without printing what it held
            if os.environ.get("PIPELINE_SECRETS_DEBUG"):
                raise
            click.echo(
                f"internal error ({type(exc).__name__}); set PIPELINE_SECRETS_DEBUG=1 to see a traceback",
                err=True,
            )
            sys.exit(1)

    return wrapper


def _open_manager(ctx: click.Context, options: dict[str, Any]) -> Manager:
    dev = options.pop("dev")
    dev_secrets = options.pop("dev_secrets")
    settings = resolve_settings({name: options.pop(name) for name in _SETTING_NAMES}, require_region=not dev)
    if dev:
        from .dev import start_emulator

        emulator = start_emulator(settings, dev_secrets)
        ctx.call_on_close(emulator.stop)
        settings = emulator.settings
    manager = build_manager(settings)
    ctx.call_on_close(manager.close)
    return manager


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="pipeline-secrets")
def main() -> None:
    """Resolve ((var)) placeholders in CI pipeline configuration from AWS Secrets Manager, with
    Concourse's lookup rules: the pipeline path first, then the team path (then a shared path,
    when configured)."""


@main.command()
@click.argument("var")
@_scope_options
@click.option("--explain", is_flag=True, help="Write each path tried and its outcome to stderr (never the value).")
@_aws_options
@click.pass_context
@_handle_errors
def lookup(ctx: click.Context, var: str, team: str, pipeline: str | None, explain: bool, **options: Any) -> None:
    """Print the value of VAR, the text inside ((..)), e.g. 'creds.user'.

    A string prints as it is, any other value as JSON.

    \b
    Example:
      pipeline-secrets lookup creds.user --team main --pipeline deploy --aws-secretsmanager-region eu-west-1
    """
    manager = _open_manager(ctx, options)

    def trace(level: str, path: str, outcome: str) -> None:
        click.echo(f"{level:<8} {path}  {outcome}", err=True)

    value = manager.lookup(var, team=team, pipeline=pipeline, trace=trace if explain else None)
    click.echo(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))


@main.command()
@click.argument("file", type=click.Path(allow_dash=True, dir_okay=False, path_type=Path))
@_scope_options
@click.option("--allow-missing", is_flag=True, help="Leave undefined vars as written instead of failing.")
@_aws_options
@click.pass_context
@_handle_errors
def interpolate(
    ctx: click.Context, file: Path, team: str, pipeline: str | None, allow_missing: bool, **options: Any
) -> None:
    """Print the YAML document FILE ('-' for stdin) with every ((var)) resolved.

    \b
    Example:
      pipeline-secrets interpolate pipeline.yml --team main --pipeline deploy
    """
    document = load_document(_read_text(file))
    manager = _open_manager(ctx, options)
    result = manager.interpolate(document, team=team, pipeline=pipeline, allow_missing=allow_missing)
    click.echo(dump_document(result), nl=False)


@main.command()
@_aws_options
@click.pass_context
@_handle_errors
def health(ctx: click.Context, **options: Any) -> None:
    """Read the health-check secret and print the result as JSON; exit 0 when UP."""
    result = _open_manager(ctx, options).health()
    click.echo(json.dumps(result, sort_keys=True))
    if "error" in result:
        sys.exit(1)


def _read_text(file: Path) -> str:
    try:
        if str(file) == "-":
            return sys.stdin.buffer.read().decode("utf-8")
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DocumentError(f"'{file}' is not UTF-8 text") from None
    except OSError as exc:
        raise DocumentError(f"cannot read '{file}': {exc.strerror}") from None
