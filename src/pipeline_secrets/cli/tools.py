"""The operator tools' commands: ``iam-policy``, ``paths``, ``check-access``, ``put``, ``invalidate``
and ``check``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ..config.roles import ROLE_TEMPLATE_FLAG, RoleTemplate
from ..errors import ConfigError, VarNameError
from ..pure.templates import LookupRules, check_scope
from ..pure.vars import parse_var
from ..tools.access import check_access, render as render_access
from ..tools.bulk import check_files, pipeline_files
from ..tools.bulk_output import print_table, progress as bulk_progress, to_json as bulk_json
from ..tools.policy import build_policy, role_policies
from ..tools.writing import check_value, read_value, secret_name, store as store_secret
from ..web.teams import load_teams_file
from .options import (
    aws_options,
    handle_errors,
    open_manager,
    scope_options,
    team_roles_option,
    template_options,
    template_rules,
)


@click.command("iam-policy")
@click.option("--team", "-t", default=None, help="Restrict the policy to this team's secrets.")
@click.option("--pipeline", "-p", default=None,
              help="Restrict it further to this pipeline of --team (its lookups read the team path too).")
@click.option("--batch", is_flag=True, help="Also allow secretsmanager:BatchGetSecretValue (batched reads).")
@click.option("--role", is_flag=True,
              help="With --team: the policies of the team's own IAM role (permission, trust, ABAC) and the node's.")
@click.option("--node-principal", default=None, metavar="ARN",
              help="With --role: the principal the node runs as, trusted to assume the team's role.")
@click.option("--external-id", default=None, help="With --role: the external id the trust policy asks for.")
@team_roles_option
@click.option(ROLE_TEMPLATE_FLAG, "role_template", default=None, metavar="TEMPLATE",
              envvar="PIPELINE_SECRETS_TEAM_ROLE_TEMPLATE",
              help="With --role: the role template, for the node's AssumeRole permission "
                   "[env: PIPELINE_SECRETS_TEAM_ROLE_TEMPLATE].")
@template_options
@handle_errors
def iam_policy(
    team: str | None, pipeline: str | None, batch: bool, role: bool, node_principal: str | None,
    external_id: str | None, role_template: str | None, team_roles_file: Path | None, **options: Any,
) -> None:
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
    if role:
        if team is None or pipeline is not None:
            raise ConfigError("--role needs --team (and no --pipeline): a role is a team's")
        if role_template is not None:
            try:
                RoleTemplate.parse(role_template)
            except ValueError as exc:
                raise ConfigError(f"{ROLE_TEMPLATE_FLAG}: {exc}") from None
        own_roles = load_teams_file(team_roles_file).roles if team_roles_file is not None else {}
        own = own_roles.get(team)
        policies = role_policies(template_rules(options), team=team, role_template=role_template,
                                 node_principal=node_principal, batch=batch,
                                 external_id=external_id or (own.external_id if own else None),
                                 own_roles=tuple(role.arn for role in own_roles.values()))
        for note in policies.pop("notes"):
            click.echo(f"note: {note}", err=True)
        click.echo(json.dumps(policies, indent=2))
        return
    generated = build_policy(template_rules(options), team=team, pipeline=pipeline, batch=batch)
    click.echo(json.dumps(generated.document, indent=2))
    for note in generated.notes:
        click.echo(f"note: {note}", err=True)


@click.command("paths")
@click.argument("var")
@scope_options
@click.option("--explain", is_flag=True, help="Also say, on stderr, which templates were skipped and why.")
@template_options
@handle_errors
def paths_command(var: str, team: str, pipeline: str | None, explain: bool, **options: Any) -> None:
    """Print the paths a lookup of VAR tries, in order, one per line.

    Nothing else goes to stdout, so scripts can read it. A var the lookup would refuse is an
    error (exit 1). No AWS call is made.

    \b
    Examples:
      pipeline-secrets paths db.password --team main --pipeline deploy
      pipeline-secrets paths api-token --team main --explain
    """
    rules = template_rules(options)
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


@click.command("check-access")
@click.argument("variables", nargs=-1, metavar="[VAR]...")
@scope_options
@aws_options
@team_roles_option
@click.pass_context
@handle_errors
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
    manager = open_manager(ctx, options)
    check_scope(team, pipeline)
    results = check_access(manager, variables, team=team, pipeline=pipeline)
    for line in render_access(results):
        click.echo(line)
    if not all(result.ok for result in results):
        sys.exit(1)


@click.command()
@click.argument("var")
@scope_options
@click.option("--team-level", is_flag=True, help="Store at the team path [default without --pipeline].")
@click.option("--shared", is_flag=True, help="Store at the shared path (needs a shared template).")
@click.option("--from-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Read the value from FILE, exactly as it is (keys, certificates).")
@click.option("--value-stdin", is_flag=True, help="Read the value from stdin; one trailing newline is dropped.")
@click.option("--json", "as_json", is_flag=True, help="The value must be a JSON object: its keys become fields.")
@aws_options
@team_roles_option
@click.pass_context
@handle_errors
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
    manager = open_manager(ctx, options)
    value = read_value(from_file=from_file, stdin=None if from_file else sys.stdin.buffer)
    for note in check_value(value, as_json=as_json):
        click.echo(f"note: {note}", err=True)
    path, arn = store_secret(manager, name, value, team=team, pipeline=pipeline, level=level)
    click.echo(f"path: {path}")
    click.echo(f"arn: {arn}")
    if dev:
        click.echo("note: --dev: the embedded emulator forgets this secret when the command ends", err=True)


@click.command()
@click.argument("var")
@scope_options
@aws_options
@team_roles_option
@click.pass_context
@handle_errors
def invalidate(ctx: click.Context, var: str, team: str, pipeline: str | None, **options: Any) -> None:
    """Make every web node of the fleet forget what it has cached of VAR for --team (and
    --pipeline): its candidate paths and where it was last found, from Redis and, within a
    second, from each node's memory; the next lookup reads AWS. Needs --redis-url (the same as the
    nodes', with their encryption key). Prints the paths forgotten.

    \b
    Example:
      pipeline-secrets invalidate db-password --team main --pipeline deploy \\
        --redis-url redis://redis:6379/0 --redis-encryption-key-file /etc/pipeline-secrets/redis.key
    """
    manager = open_manager(ctx, options)
    if manager.tier() is None:
        raise ConfigError("invalidate: --redis-url is required (without Redis each process has only its own cache)")
    for path in manager.invalidate(var, team=team, pipeline=pipeline):
        click.echo(f"invalidated: {path}")


@click.command()
@click.argument("paths", nargs=-1, required=True, metavar="DIR_OR_FILES...",
                type=click.Path(exists=True, path_type=Path))
@scope_options
@click.option("--pipeline-from-filename", is_flag=True,
              help="Each file's pipeline is its file name without the suffix (deploy.yml: deploy).")
@click.option("--json", "as_json", is_flag=True, help="Print the reports as JSON instead of a table.")
@aws_options
@team_roles_option
@click.pass_context
@handle_errors
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
    manager = open_manager(ctx, options)
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
