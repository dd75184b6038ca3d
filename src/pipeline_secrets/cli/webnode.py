"""``pipeline-secrets web``: the click command of the web node (the node itself is ``web``)."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from ..config.settings import duration_seconds
from ..errors import ConfigError
from .options import aws_options, handle_errors, open_manager

# The web stack (starlette, uvicorn, bcrypt) is imported when `web` runs, not with the CLI: every
# other command would pay ~50 ms for it.

ADD_LOCAL_USER_ENV = "CONCOURSE_ADD_LOCAL_USER"
MAIN_TEAM_LOCAL_USER_ENV = "CONCOURSE_MAIN_TEAM_LOCAL_USER"


def listed(given: tuple[str, ...], env: str) -> list[str]:
    """A repeatable flag's values, else its variable's comma-separated list (flags win)."""
    if given:
        return list(given)
    return [item.strip() for item in os.environ.get(env, "").split(",") if item.strip()]


@click.command()
@click.option("--bind-ip", envvar="CONCOURSE_BIND_IP", default=None, metavar="IP",
              help="Address to listen on [env: CONCOURSE_BIND_IP; default: 0.0.0.0, with --dev 127.0.0.1].")
@click.option("--bind-port", envvar="CONCOURSE_BIND_PORT", default=8080, show_default=True,
              type=click.IntRange(0, 65535), help="HTTP port; 0 picks a free one [env: CONCOURSE_BIND_PORT].")
@click.option("--tls-bind-port", envvar="CONCOURSE_TLS_BIND_PORT", default=None, type=click.IntRange(0, 65535),
              help="HTTPS port, served besides the HTTP one; needs --tls-cert and --tls-key "
                   "[env: CONCOURSE_TLS_BIND_PORT].")
@click.option("--tls-cert", envvar="CONCOURSE_TLS_CERT", default=None,
              type=click.Path(dir_okay=False, path_type=Path),
              help="PEM certificate (chain) for HTTPS [env: CONCOURSE_TLS_CERT].")
@click.option("--tls-key", envvar="CONCOURSE_TLS_KEY", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="PEM private key for HTTPS [env: CONCOURSE_TLS_KEY].")
@click.option("--add-local-user", "local_users", multiple=True, metavar="USER:PASSWORD",
              help="A local user; repeatable. The password may be a bcrypt hash "
                   f"[env: {ADD_LOCAL_USER_ENV}, comma-separated].")
@click.option("--main-team-local-user", "main_users", multiple=True, metavar="USER",
              help="A local user of team main, that is an admin; repeatable "
                   f"[env: {MAIN_TEAM_LOCAL_USER_ENV}, comma-separated].")
@click.option("--teams-file", envvar="PIPELINE_SECRETS_TEAMS_FILE", default=None,
              type=click.Path(dir_okay=False, path_type=Path),
              help="YAML file of the other teams, their local users and (optionally) their own IAM roles: "
                   "teams: {TEAM: {local_users: [USER, ...], role_arn: ARN, external_id: ID}} "
                   "[env: PIPELINE_SECRETS_TEAMS_FILE].")
@click.option("--token-duration", "--auth-duration", "token_duration", envvar="CONCOURSE_AUTH_DURATION",
              default="1h", show_default=True, metavar="DURATION",
              help="How long a bearer token from /sky/issuer/token is valid [env: CONCOURSE_AUTH_DURATION].")
@click.option("--health-cache-duration", envvar="PIPELINE_SECRETS_HEALTH_CACHE_DURATION", default="5s",
              show_default=True, metavar="DURATION",
              help="How long /api/v1/info/creds reuses a health check; 0: check on every poll "
                   "[env: PIPELINE_SECRETS_HEALTH_CACHE_DURATION].")
@click.option("--shutdown-timeout", envvar="PIPELINE_SECRETS_SHUTDOWN_TIMEOUT", default="30s", show_default=True,
              metavar="DURATION",
              help="On SIGTERM, how long requests in flight may take to finish "
                   "[env: PIPELINE_SECRETS_SHUTDOWN_TIMEOUT].")
@click.option("--max-connections", envvar="PIPELINE_SECRETS_MAX_CONNECTIONS", default=1024, show_default=True,
              type=click.IntRange(1), help="Open connections at most; more are closed as they come "
              "[env: PIPELINE_SECRETS_MAX_CONNECTIONS].")
@click.option("--max-connections-per-client", envvar="PIPELINE_SECRETS_MAX_CONNECTIONS_PER_CLIENT", default=128,
              show_default=True, type=click.IntRange(1),
              help="Open connections of one client address at most [env: PIPELINE_SECRETS_MAX_CONNECTIONS_PER_CLIENT].")
@click.option("--header-timeout", envvar="PIPELINE_SECRETS_HEADER_TIMEOUT", default="10s", show_default=True,
              metavar="DURATION", help="A request's headers must arrive within this, else the connection is closed "
              "[env: PIPELINE_SECRETS_HEADER_TIMEOUT].")
@click.option("--keep-alive-timeout", envvar="PIPELINE_SECRETS_KEEP_ALIVE_TIMEOUT", default="5s", show_default=True,
              metavar="DURATION", help="An idle kept-alive connection is closed after this "
              "[env: PIPELINE_SECRETS_KEEP_ALIVE_TIMEOUT].")
@click.option("--body-timeout", envvar="PIPELINE_SECRETS_BODY_TIMEOUT", default="30s", show_default=True,
              metavar="DURATION", help="A request body must arrive within this, else 408 "
              "[env: PIPELINE_SECRETS_BODY_TIMEOUT].")
@click.option("--send-timeout", envvar="PIPELINE_SECRETS_SEND_TIMEOUT", default="30s", show_default=True,
              metavar="DURATION", help="A client with an answer waiting must take all of it, or 256 KiB of it, within each such window, else it is dropped "
              "[env: PIPELINE_SECRETS_SEND_TIMEOUT].")
@click.option("--team-concurrency", envvar="PIPELINE_SECRETS_TEAM_CONCURRENCY", default=4, show_default=True,
              type=click.IntRange(1), help="Requests of one team doing AWS or document work at once; more wait "
              "[env: PIPELINE_SECRETS_TEAM_CONCURRENCY].")
@click.option("--team-queue", envvar="PIPELINE_SECRETS_TEAM_QUEUE", default=32, show_default=True,
              type=click.IntRange(0), help="Requests of one team waiting for that; more answer 429 "
              "[env: PIPELINE_SECRETS_TEAM_QUEUE].")
@click.option("--document-concurrency", envvar="PIPELINE_SECRETS_DOCUMENT_CONCURRENCY", default=4, show_default=True,
              type=click.IntRange(1), help="Documents read, parsed and interpolated at once (one team: half of "
              "them) [env: PIPELINE_SECRETS_DOCUMENT_CONCURRENCY].")
@click.option("--auth-queue", envvar="PIPELINE_SECRETS_AUTH_QUEUE", default=32, show_default=True,
              type=click.IntRange(1), help="Password checks in flight or waiting; more answer 503 "
              "[env: PIPELINE_SECRETS_AUTH_QUEUE].")
@click.option("--forwarded-allow-ips", envvar="FORWARDED_ALLOW_IPS", default=None, metavar="IPS",
              help="Trust X-Forwarded-For from these proxy addresses (comma-separated, or *), for the client "
                   "address that login throttling uses (connection caps count the connection's own peer) "
                   "[env: FORWARDED_ALLOW_IPS; default: trust none].")
@click.option("--workers", envvar="PIPELINE_SECRETS_WORKERS", default=1, show_default=True, type=click.IntRange(1),
              help="Server processes sharing the listening port (SO_REUSEPORT), to use more cores; more than 1 "
              "needs --redis-url (the workers share the cache, the rate budget and the tokens through it) "
              "[env: PIPELINE_SECRETS_WORKERS].")
@aws_options
@click.pass_context
@handle_errors
def web(
    ctx: click.Context, bind_ip: str | None, bind_port: int, tls_bind_port: int | None, tls_cert: Path | None,
    tls_key: Path | None, local_users: tuple[str, ...], main_users: tuple[str, ...], teams_file: Path | None,
    token_duration: str, health_cache_duration: str, shutdown_timeout: str, max_connections: int,
    max_connections_per_client: int, header_timeout: str, keep_alive_timeout: str, body_timeout: str,
    send_timeout: str,
    team_concurrency: int, team_queue: int, document_concurrency: int, auth_queue: int,
    forwarded_allow_ips: str | None, workers: int, **options: Any,
) -> None:
    """Serve lookups and interpolations over HTTP to authenticated users, scoped to their teams.

    \b
    Endpoints (JSON unless said otherwise):
      GET  /api/v1/info/creds                                   admins: region, templates, health
      POST /api/v1/teams/T/pipelines/P/vars/interpolate         YAML or JSON document in, same out
      POST /api/v1/teams/T/vars/interpolate                     team level (one-off builds)
      GET  /api/v1/teams/T/pipelines/P/vars/lookup?var=VAR      {"value": ...}
      GET  /api/v1/teams/T/vars/lookup?var=VAR
      POST /sky/issuer/token                                    password grant -> bearer token
      GET  /metrics                                             Prometheus, no authentication
      GET  /api/v1/health                                       liveness, no authentication
    Members of a team (and admins, the members of team main) may use its endpoints. Logs are
    JSON lines on stderr.

    \b
    Examples:
      pipeline-secrets web --dev
      pipeline-secrets web --aws-secretsmanager-region eu-west-1 \\
          --add-local-user admin:"$ADMIN_PASSWORD" --main-team-local-user admin --teams-file teams.yml
    """
    from ..web import devmode, logs
    from ..web.app import WebLimits, create_app
    from ..web.auth import MAX_TOKENS_PER_USER, Authenticator, hash_users, parse_local_user
    from ..web.server import ConnectionLimits, Listener, bind, raise_file_limit, run_workers, serve
    from ..web.teams import MAIN_TEAM, build_teams, load_teams_file

    dev = bool(options["dev"])
    token_seconds = duration_seconds(token_duration, "--token-duration", positive=True)
    health_ttl = duration_seconds(health_cache_duration, "--health-cache-duration")
    grace = duration_seconds(shutdown_timeout, "--shutdown-timeout")
    files = raise_file_limit(max_connections + 512)  # connections, AWS's pool, files, the loop
    usable = max(16, files - 256)
    if usable < max_connections:  # past the open-file limit the system refuses even the health check
        click.echo(f"note: --max-connections {max_connections} is lowered to {usable}: the open-file limit is "
                   f"{files}", err=True)
        max_connections = usable
    connection_limits = ConnectionLimits(
        max_connections=max_connections, max_per_client=max_connections_per_client,
        header_timeout=duration_seconds(header_timeout, "--header-timeout", positive=True),
        keep_alive_timeout=duration_seconds(keep_alive_timeout, "--keep-alive-timeout", positive=True),
        send_timeout=duration_seconds(send_timeout, "--send-timeout", positive=True),
        forwarded_allow_ips=forwarded_allow_ips or None,
    )
    web_limits = WebLimits(
        team_concurrency=team_concurrency, team_queue=team_queue, document_slots=document_concurrency,
        body_timeout=duration_seconds(body_timeout, "--body-timeout", positive=True), auth_queue=auth_queue,
    )
    tls = _tls(tls_bind_port, tls_cert, tls_key)

    specs = [parse_local_user(spec, "--add-local-user") for spec in listed(local_users, ADD_LOCAL_USER_ENV)]
    admins = listed(main_users, MAIN_TEAM_LOCAL_USER_ENV)
    password = None
    if dev:
        if devmode.DEMO_USER in {user for user, _ in specs}:
            raise ConfigError(f"--dev adds the demo user '{devmode.DEMO_USER}': give your local users other names")
        password = devmode.demo_password()
        specs.append((devmode.DEMO_USER, password))
        admins.append(devmode.DEMO_USER)
    teams_file_data = load_teams_file(teams_file) if teams_file is not None else None
    users = hash_users(specs)
    teams = build_teams(teams_file_data.members if teams_file_data else {}, admins, users)
    worker_ports = os.environ.get(WORKER_PORTS_ENV)  # set for the workers of a --workers N node
    if worker_ports is not None:
        workers = 1
        bind_port, *tls_port = (int(port) for port in worker_ports.split(","))
        if tls is not None and tls_port:
            tls = (tls_port[0], tls[1], tls[2])
    if workers > 1:
        if dev:
            raise ConfigError("--workers: --dev's emulator lives in one process; run --dev with one worker")
        if not options.get("redis_url") and not os.environ.get("PIPELINE_SECRETS_REDIS_URL"):
            raise ConfigError("--workers: more than one worker needs --redis-url: without it each worker would "
                              "have its own cache and its own bearer tokens (a token from one would be refused "
                              "by the next)")
    host = bind_ip or ("127.0.0.1" if dev else "0.0.0.0")
    shared = workers > 1 or worker_ports is not None
    listeners = [Listener(bind(host, bind_port, "--bind-port", reuse_port=shared))]
    if tls is not None:
        listeners.append(Listener(bind(host, tls[0], "--tls-bind-port", reuse_port=shared), (tls[1], tls[2])))
    for listener in listeners:
        ctx.call_on_close(listener.sock.close)
    if workers > 1:  # this process only holds the ports (bound, never listening) and its workers
        ports = ",".join(str(listener.port) for listener in listeners)
        logs.configure()
        sys.exit(run_workers(workers, {**os.environ, WORKER_PORTS_ENV: ports}, grace))

    dev_secrets = options.get("dev_secrets")
    manager = open_manager(ctx, options, team_roles=teams_file_data.roles if teams_file_data else None)
    # From here on, logs are JSON lines; everything before is validation, which exits 2 on error.
    logs.configure()
    if manager.settings.rules.ambiguous():
        logs.event("the secret templates can read one path as two teams' or pipelines' paths (fields not "
                   "separated by '/'): vars that would be read so are refused; see docs/lookup-rules.md",
                   logging.WARNING)
    if not users:
        logs.event("no local users (--add-local-user): every authenticated endpoint answers 401")
    elif not teams.members[MAIN_TEAM]:
        logs.event("no admin (--main-team-local-user): /api/v1/info/creds answers 403 to everyone")
    auth = Authenticator(users, token_duration=token_seconds, shared=manager.shared_tokens(MAX_TOKENS_PER_USER))
    app = create_app(manager, auth, teams, health_ttl=health_ttl,
                     limits=web_limits)

    def ready(bound: list[Any]) -> None:
        if dev and password is not None:
            click.echo(devmode.banner(bound[0], password, dev_secrets))
            sys.stdout.flush()

    serve(app, listeners, shutdown_timeout=grace, limits=connection_limits, on_ready=ready)


WORKER_PORTS_ENV = "PIPELINE_SECRETS_WORKER_PORTS"


def _tls(port: int | None, cert: Path | None, key: Path | None) -> tuple[int, Path, Path] | None:
    from ..web.server import check_tls

    if port is None and cert is None and key is None:
        return None
    if port is None:
        raise ConfigError("--tls-cert and --tls-key need --tls-bind-port")
    if cert is None or key is None:
        raise ConfigError("--tls-bind-port needs both --tls-cert and --tls-key")
    check_tls(cert, key)
    return port, cert, key
