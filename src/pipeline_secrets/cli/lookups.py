"""The lookup commands: ``lookup``, ``interpolate`` and ``health``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ..pure.documents import dump_document, load_document
from ..tools.reading import read_text
from .options import aws_options, handle_errors, open_manager, scope_options, team_roles_option


@click.command()
@click.argument("var")
@scope_options
@click.option("--explain", is_flag=True, help="Write each path tried and its outcome to stderr (never the value).")
@aws_options
@team_roles_option
@click.pass_context
@handle_errors
def lookup(ctx: click.Context, var: str, team: str, pipeline: str | None, explain: bool, **options: Any) -> None:
    """Print the value of VAR, the text inside ((..)), e.g. 'creds.user'.

    A string prints as it is, any other value as JSON.

    \b
    Example:
      pipeline-secrets lookup creds.user --team main --pipeline deploy --aws-secretsmanager-region eu-west-1
    """
    manager = open_manager(ctx, options)
    value = manager.lookup(var, team=team, pipeline=pipeline, trace=explain_trace if explain else None)
    click.echo(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))


@click.command()
@click.argument("file", type=click.Path(allow_dash=True, dir_okay=False, path_type=Path))
@scope_options
@click.option("--allow-missing", is_flag=True, help="Leave undefined vars as written instead of failing.")
@click.option("--drop-var-sources", is_flag=True,
              help="Leave the document's var_sources block out of the output (kept by default: Concourse needs it).")
@click.option("--explain", is_flag=True, help="Write each path tried, per var source, and its outcome to stderr "
              "(never a value).")
@aws_options
@team_roles_option
@click.pass_context
@handle_errors
def interpolate(
    ctx: click.Context, file: Path, team: str, pipeline: str | None, allow_missing: bool, drop_var_sources: bool,
    explain: bool, **options: Any,
) -> None:
    """Print the YAML document FILE ('-' for stdin) with every ((var)) resolved.

    The document's var_sources are honoured: ((name:var)) reads through the source it declares
    (type secretsmanager or dummy); build-local ((.:var)) stay as written.

    \b
    Example:
      pipeline-secrets interpolate pipeline.yml --team main --pipeline deploy
    """
    manager = open_manager(ctx, options)
    limits = manager.settings.limits
    document = load_document(read_text(file, limits.max_bytes), limits)
    result = manager.interpolate(document, team=team, pipeline=pipeline, allow_missing=allow_missing,
                                 drop_var_sources=drop_var_sources, trace=explain_trace if explain else None)
    click.echo(dump_document(result, limits), nl=False)


def explain_trace(level: str, path: str, outcome: str) -> None:
    """One stderr line per path a lookup considers (``--explain``); never a value."""
    click.echo(f"{level:<8} {path}  {outcome}", err=True)


@click.command()
@aws_options
@team_roles_option
@click.pass_context
@handle_errors
def health(ctx: click.Context, **options: Any) -> None:
    """Read the health-check secret and print the result as JSON; exit 0 when UP.

    \b
    Example:
      pipeline-secrets health --aws-secretsmanager-region eu-west-1
    """
    result = open_manager(ctx, options).health()
    click.echo(json.dumps(result, sort_keys=True))
    if "error" in result:
        sys.exit(1)
