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
from .access import check_access, render as render_access
from .bulk import check_files, pipeline_files
from .bulk_output import print_table, progress as bulk_progress, to_json as bulk_json
from .documents import check_size, dump_document, load_document
from .errors import ConfigError, DocumentError, PipelineSecretsError, ScopeNameError, VarNameError
from .limits import DocumentLimits
from .manager import Manager, build_manager
from .policy import build_policy
from .settings import OPTIONS, resolve_settings
from .templates import LookupRules, check_scope
from .vars import parse_var
from .writing import check_value, read_value, secret_name, store as store_secret

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
    return {"duration": "DURATION", "count": "N", "template": "TEMPLATE", "choice": "auto|on|off",
            "size": "SIZE"}.get(kind, "TEXT")


def _scope_name(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Refuse a team or pipeline name that cannot be one path segment, naming the flag."""
    if value is not None:
        try:
            check_scope(value, None) if param.name == "team" else check_scope("team", value)
        except ScopeNameError as exc:
            raise click.BadParameter(str(exc)) from None
    return value


def _scope_options(command: Callable[..., Any]) -> Callable[..., Any]:
    command = click.option("--pipeline", "-p", default=None, callback=_scope_name,
                           help="Pipeline name; omit for team-level (one-off) lookups.")(command)
    return click.option("--team", "-t", required=True, callback=_scope_name, help="Team name.")(command)


def _handle_errors(command: Callable[..., Any]) -> Callable[..., Any]:
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
    manager = _open_manager(ctx, options)
    limits = manager.settings.limits
    document = load_document(_read_text(file, limits.max_bytes), limits)
    result = manager.interpolate(document, team=team, pipeline=pipeline, allow_missing=allow_missing)
    click.echo(dump_document(result), nl=False)


@main.command()
@_aws_options
@click.pass_context
@_handle_errors
def health(ctx: click.Context, **options: Any) -> None:
    """Read the health-check secret and print the result as JSON; exit 0 when UP.

    \b
    Example:
      pipeline-secrets health --aws-secretsmanager-region eu-west-1
    """
    result = _open_manager(ctx, options).health()
    click.echo(json.dumps(result, sort_keys=True))
    if "error" in result:
        sys.exit(1)


def _read_text(file: Path, max_bytes: int) -> str:
    """The text of ``file`` ('-': stdin), reading no more than ``max_bytes`` + 1 bytes of it."""
    try:
        if str(file) == "-":
            data = sys.stdin.buffer.read(max_bytes + 1)
        else:
            with file.open("rb") as stream:
                data = stream.read(max_bytes + 1)
        check_size(len(data), DocumentLimits(max_bytes=max_bytes))
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise DocumentError(f"'{file}' is not UTF-8 text") from None
    except OSError as exc:
        raise DocumentError(f"cannot read '{file}': {exc.strerror}") from None


# --- operator tools: iam-policy, paths, check-access, put, check ------------------------------------


def _template_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Only the template flags, for commands that work out paths without talking to AWS."""
    for option in reversed([o for o in OPTIONS if o.kind == "template"]):
        default = option.default or '""'
        command = click.option(option.flag, option.name, default=None, metavar="TEMPLATE",
                               help=f"{option.help} [env: {option.env}; default: {default}]")(command)
    return command


def _template_rules(options: dict[str, Any]) -> LookupRules:
    """The lookup rules from the template flags and their environment variables alone: no region
    and no credentials are needed (or validated) to work out paths."""
    templates = [o for o in OPTIONS if o.kind == "template"]
    environ = {o.env: os.environ[o.env] for o in templates if o.env in os.environ}
    given = {o.name: options.pop(o.name) for o in templates}
    return resolve_settings(given, environ, require_region=False).rules


@main.command("iam-policy")
@click.option("--team", "-t", default=None, help="Restrict the policy to this team's secrets.")
@click.option("--pipeline", "-p", default=None,
              help="Restrict it further to this pipeline of --team (its lookups read the team path too).")
@click.option("--batch", is_flag=True, help="Also allow secretsmanager:BatchGetSecretValue (batched reads).")
@_template_options
@_handle_errors
def iam_policy(team: str | None, pipeline: str | None, batch: bool, **options: Any) -> None:
    """Print the IAM policy (JSON) that lookups with the configured templates need.

    It is derived from the templates: ListSecrets on "*", GetSecretValue and DescribeSecret on
    the paths the templates make (for --team/--pipeline when given) and on the health-check
    secret. Notes about what IAM cannot express go to stderr. No AWS call is made.

    \b
    Examples:
      pipeline-secrets iam-policy > policy.json
      pipeline-secrets iam-policy --team main --pipeline deploy --batch
      aws iam put-user-policy --user-name concourse --policy-name pipeline-secrets \\
          --policy-document "$(pipeline-secrets iam-policy --team main)"
    """
    generated = build_policy(_template_rules(options), team=team, pipeline=pipeline, batch=batch)
    click.echo(json.dumps(generated.document, indent=2))
    for note in generated.notes:
        click.echo(f"note: {note}", err=True)


@main.command("paths")
@click.argument("var")
@_scope_options
@click.option("--explain", is_flag=True, help="Also say, on stderr, which templates were skipped and why.")
@_template_options
@_handle_errors
def paths_command(var: str, team: str, pipeline: str | None, explain: bool, **options: Any) -> None:
    """Print the paths a lookup of VAR tries, in order, one per line.

    Nothing else goes to stdout, so scripts can read it. A var the lookup would refuse is an
    error (exit 1). No AWS call is made.

    \b
    Examples:
      pipeline-secrets paths db.password --team main --pipeline deploy
      pipeline-secrets paths api-token --team main --explain
    """
    rules = _template_rules(options)
    name = parse_var(var).path
    try:
        candidates = rules.candidate_paths(name, team, pipeline)
    except VarNameError:
        if explain:
            _explain_paths(rules, name, team, pipeline, None)
        raise
    if explain:
        _explain_paths(rules, name, team, pipeline, candidates)
    for _, path in candidates:
        click.echo(path)


def _explain_paths(
    rules: LookupRules, name: str, team: str, pipeline: str | None, candidates: list[tuple[str, str]] | None
) -> None:
    """One stderr line per template, in lookup order: candidate, skipped, not configured, or
    refused (``candidates`` is None: the var is refused whole, the error says for which path)."""
    order = {path: index for index, (_, path) in enumerate(candidates or [], 1)}
    for level, template in (("pipeline", rules.pipeline), ("team", rules.team), ("shared", rules.shared)):
        if template is None:
            line = "not configured (--aws-secretsmanager-shared-secret-template is empty)"
        elif template.pipeline_dependent and not pipeline:
            line = f"{template.text}  skipped: no pipeline (one-off build)"
        else:
            path = template.render(team=team, pipeline=pipeline, secret=name)
            line = f"{path}  " + (f"candidate {order[path]}" if path in order else "refused with the var (below)")
        click.echo(f"{level:<8}  {line}", err=True)


@main.command("check-access")
@click.argument("variables", nargs=-1, metavar="[VAR]...")
@_scope_options
@_aws_options
@click.pass_context
@_handle_errors
def check_access_command(
    ctx: click.Context, variables: tuple[str, ...], team: str, pipeline: str | None, **options: Any
) -> None:
    """Say, for each candidate path of each VAR, whether the configured credentials may read it.

    Each path is readable, not found or ACCESS DENIED; each var gets the verdict its lookup
    would have (a denied pipeline path fails team-level secrets too) and what to do next.
    Without VAR, a name nobody stores is probed. Values are read, never printed. Exit 1 when
    any lookup would fail.

    \b
    Examples:
      pipeline-secrets check-access --team main --pipeline deploy
      pipeline-secrets check-access db.password api-token --team main --pipeline deploy
    """
    manager = _open_manager(ctx, options)
    check_scope(team, pipeline)
    results = check_access(manager, variables, team=team, pipeline=pipeline)
    for line in render_access(results):
        click.echo(line)
    if not all(result.ok for result in results):
        sys.exit(1)


@main.command()
@click.argument("var")
@_scope_options
@click.option("--team-level", is_flag=True, help="Store at the team path [default without --pipeline].")
@click.option("--shared", is_flag=True, help="Store at the shared path (needs a shared template).")
@click.option("--from-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Read the value from FILE, exactly as it is (keys, certificates).")
@click.option("--value-stdin", is_flag=True, help="Read the value from stdin; one trailing newline is dropped.")
@click.option("--json", "as_json", is_flag=True, help="The value must be a JSON object: its keys become fields.")
@_aws_options
@click.pass_context
@_handle_errors
def put(
    ctx: click.Context, var: str, team: str, pipeline: str | None, team_level: bool, shared: bool,
    from_file: Path | None, value_stdin: bool, as_json: bool, **options: Any,
) -> None:
    """Create or update the secret VAR at exactly the path its lookup reads, as plaintext.

    The level is the pipeline's with --pipeline, else the team's; --team-level and --shared
    choose. Names a lookup would refuse are refused. Prints the path and the ARN, never the
    value; the value is never an argument, so it stays out of shell history.

    \b
    Examples:
      printf %s "$TOKEN" | pipeline-secrets put api-token --team main --pipeline deploy --value-stdin
      pipeline-secrets put db --team main --team-level --json --from-file db.json
      pipeline-secrets put git-key --team main --from-file id_ed25519
    """
    if team_level and shared:
        raise ConfigError("--team-level and --shared exclude each other")
    if (from_file is None) == (not value_stdin):
        raise ConfigError("give the value with exactly one of --from-file FILE or --value-stdin")
    level = "shared" if shared else "team" if team_level or not pipeline else "pipeline"
    name = secret_name(var)
    dev = options["dev"]
    manager = _open_manager(ctx, options)
    value = read_value(from_file=from_file, stdin=None if from_file else sys.stdin.buffer)
    for note in check_value(value, as_json=as_json):
        click.echo(f"note: {note}", err=True)
    path, arn = store_secret(manager, name, value, team=team, pipeline=pipeline, level=level)
    click.echo(f"path: {path}")
    click.echo(f"arn: {arn}")
    if dev:
        click.echo("note: --dev: the embedded emulator forgets this secret when the command ends", err=True)


@main.command()
@click.argument("paths", nargs=-1, required=True, metavar="DIR_OR_FILES...",
                type=click.Path(exists=True, path_type=Path))
@_scope_options
@click.option("--pipeline-from-filename", is_flag=True,
              help="Each file's pipeline is its file name without the suffix (deploy.yml: deploy).")
@click.option("--json", "as_json", is_flag=True, help="Print the reports as JSON instead of a table.")
@_aws_options
@click.pass_context
@_handle_errors
def check(
    ctx: click.Context, paths: tuple[Path, ...], team: str, pipeline: str | None, pipeline_from_filename: bool,
    as_json: bool, **options: Any,
) -> None:
    """Check that every var of many pipeline files resolves.

    Directories are searched for *.yml and *.yaml files. A progress bar shows on a terminal,
    one line per file otherwise (on stderr); then a table (file, vars, undefined, errors), or
    JSON with --json. A file that cannot be read counts as a failed file. Exit 1 on any
    undefined var or error.

    \b
    Examples:
      pipeline-secrets check ci/pipelines --team main --pipeline-from-filename
      pipeline-secrets check deploy.yml --team main --pipeline deploy --json
    """
    if pipeline and pipeline_from_filename:
        raise ConfigError("--pipeline and --pipeline-from-filename exclude each other")
    files = pipeline_files(paths)
    manager = _open_manager(ctx, options)
    check_scope(team, pipeline)
    with bulk_progress(len(files), sys.stderr) as on_done:
        reports = check_files(manager, files, team=team, pipeline=pipeline,
                              pipeline_from_filename=pipeline_from_filename, on_done=on_done)
    if as_json:
        click.echo(bulk_json(reports))
    else:
        looked_at = manager.settings.rules.lookup_paths(team, "{{.Pipeline}}" if pipeline_from_filename else pipeline)
        print_table(reports, sys.stdout, lookup_paths=looked_at)
    if not all(report.ok for report in reports):
        sys.exit(1)


from .web.command import web  # noqa: E402

main.add_command(web)
