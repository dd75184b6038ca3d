"""What every command shares: the AWS and template flags (from the settings' option table), the
team and pipeline flags, opening a manager (``--dev`` included), reading input files, and turning
our errors into one line on stderr and an exit status."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click

from ..config.roles import TeamRole
from ..config.settings import OPTIONS, resolve_settings
from ..errors import PipelineSecretsError, ScopeNameError
from ..manager import Manager, build_manager
from ..pure.templates import LookupRules, check_scope

_SETTING_NAMES = [option.name for option in OPTIONS]


def aws_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the flags of spec section 1 and ``--dev`` to a command that talks to AWS."""
    for option in reversed(OPTIONS):
        default = option.default if option.kind != "template" or option.default else '""'
        extra = f" [env: {option.env}" + ("" if default is None else f"; default: {default}") + "]"
        if option.kind == "bool":
            flag = f"{option.flag}/--no-{option.flag[2:]}"
            command = click.option(flag, option.name, default=None, help=option.help + extra)(command)
        elif option.kind == "keyfiles":
            extra = f" [env: {option.env}, comma-separated]"
            command = click.option(option.flag, option.name, multiple=True, metavar="FILE",
                                   help=option.help + extra)(command)
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
    return {"duration": "DURATION", "count": "N", "template": "TEMPLATE", "choice": "auto|on|off",
            "size": "SIZE", "url": "URL", "rate": "RATE", "role": "TEMPLATE"}.get(kind, "TEXT")


def _scope_name(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Refuse a team or pipeline name that cannot be one path segment, naming the flag. An empty
    --pipeline is refused too (the library reads pipeline="" as a one-off build): on the command
    line it is most often an unset shell variable, and a one-off build is asked by leaving it out."""
    if value == "" and param.name == "pipeline":
        raise click.BadParameter("must not be empty; leave --pipeline out for a one-off build (no pipeline)")
    if value is not None:
        try:
            check_scope(value, None) if param.name == "team" else check_scope("team", value)
        except ScopeNameError as exc:
            raise click.BadParameter(str(exc)) from None
    return value


def team_roles_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--team-roles-file``: the teams' own roles (``role_arn``) from a web node's teams file."""
    return click.option(
        "--team-roles-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
        envvar="PIPELINE_SECRETS_TEAMS_FILE",
        help="The web node's teams file, for the teams' own role_arn (over the role template) "
             "[env: PIPELINE_SECRETS_TEAMS_FILE].",
    )(command)


def scope_options(command: Callable[..., Any]) -> Callable[..., Any]:
    command = click.option("--pipeline", "-p", default=None, callback=_scope_name,
                           help="Pipeline name; omit for team-level (one-off) lookups.")(command)
    return click.option("--team", "-t", required=True, callback=_scope_name, help="Team name.")(command)


def handle_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Our errors become one line on stderr and their exit status; never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except PipelineSecretsError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_status)
        except BrokenPipeError:  # the reader went away (`| head`): nothing more to say
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(1)
        except Exception as exc:  # a bug of ours: say so without printing what it held
            if os.environ.get("PIPELINE_SECRETS_DEBUG"):
                raise
            click.echo(
                f"internal error ({type(exc).__name__}); set PIPELINE_SECRETS_DEBUG=1 to see a traceback",
                err=True,
            )
            sys.exit(1)

    return wrapper


def open_manager(ctx: click.Context, options: dict[str, Any], team_roles: Mapping[str, TeamRole] | None = None) -> Manager:
    """The manager of a command's flags; ``team_roles`` are the teams file's own roles (the web
    node's ``--teams-file``, or ``--team-roles-file`` of the other commands)."""
    dev = options.pop("dev")
    dev_secrets = options.pop("dev_secrets")
    roles_file = options.pop("team_roles_file", None)
    if roles_file is not None:
        from ..web.teams import load_teams_file

        team_roles = load_teams_file(roles_file).roles
    given = {name: options.pop(name) for name in _SETTING_NAMES}
    given = {name: (value or None) if name == "redis_encryption_key_files" else value for name, value in given.items()}
    settings = resolve_settings(given, require_region=not dev, team_roles=team_roles)
    if dev:
        from ..dev import start_emulator

        emulator = start_emulator(settings, dev_secrets)
        ctx.call_on_close(emulator.stop)
        settings = emulator.settings
    manager = build_manager(settings)
    ctx.call_on_close(manager.close)
    return manager


def template_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Only the template flags, for commands that work out paths without talking to AWS."""
    for option in reversed([o for o in OPTIONS if o.kind == "template"]):
        default = option.default or '""'
        command = click.option(option.flag, option.name, default=None, metavar="TEMPLATE",
                               help=f"{option.help} [env: {option.env}; default: {default}]")(command)
    return command


def template_rules(options: dict[str, Any]) -> LookupRules:
    """The lookup rules from the template flags and their environment variables alone: no region
    and no credentials are needed (or validated) to work out paths."""
    templates = [o for o in OPTIONS if o.kind == "template"]
    environ = {o.env: os.environ[o.env] for o in templates if o.env in os.environ}
    given = {o.name: options.pop(o.name) for o in templates}
    return resolve_settings(given, environ, require_region=False).rules
