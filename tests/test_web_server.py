"""The web node as a process: graceful SIGTERM with requests in flight, TLS (a trustme
certificate), ``web --dev`` and its printed curl commands, start-up validation (exit 2); and the
auth, teams and health-cache modules on their own."""

from __future__ import annotations

import asyncio
import json
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
import yaml
from click.testing import CliRunner, Result
from support.webclient import basic
from support.webserver import PASSWORDS, aws_flags, clean_environ, start_test_server, start_web_server

from pipeline_secrets.cli import main
from pipeline_secrets.cli.webnode import listed
from pipeline_secrets.errors import ConfigError
from pipeline_secrets.pure.vars import find_vars
from pipeline_secrets.web import auth as web_auth
from pipeline_secrets.web.health import CachedHealth
from pipeline_secrets.web.teams import Teams, build_teams, load_teams_file

pytest_plugins = ["support.webfixtures"]  # the web server fixtures: one server per module

README = Path(__file__).resolve().parents[1] / "README.md"


# --- SIGTERM ----------------------------------------------------------------------------------


def _in_flight(url: str) -> float:
    text = httpx.get(url + "/metrics", trust_env=False, timeout=5).text
    line = next(line for line in text.splitlines() if line.startswith("pipeline_secrets_http_requests_in_flight "))
    return float(line.split()[1])


def test_sigterm_finishes_requests_in_flight_and_takes_no_new_ones(_session_proxy, proxy, seed, teams_file):
    server = start_test_server(_session_proxy, teams_file)
    try:
        for n in range(20):
            seed(f"/concourse/alpha/deploy/s{n}", f"value-{n}")
        proxy.add_latency(1.0)
        results: dict[int, Any] = {}

        def fetch(n: int) -> None:
            try:
                with httpx.Client(base_url=server.url, trust_env=False, timeout=30) as http:
                    results[n] = http.get("/api/v1/teams/alpha/pipelines/deploy/vars/lookup",
                                          params={"var": f"s{n}"}, headers=basic("alice"))
            except Exception as exc:  # noqa: BLE001 - reported below
                results[n] = exc

        threads = [threading.Thread(target=fetch, args=(n,)) for n in range(20)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while _in_flight(server.url) < 21:  # the 20, and this /metrics request
            assert time.monotonic() < deadline, "requests never got in flight"
            time.sleep(0.02)

        server.signal(signal.SIGTERM)
        refused_at = None
        while refused_at is None and time.monotonic() < deadline:
            try:
                httpx.get(server.url + "/api/v1/health", trust_env=False, timeout=2)
            except httpx.ConnectError:
                refused_at = time.monotonic()
            except httpx.TransportError:
                pass  # accepted just before the listener closed, then closed unanswered: not served either
            else:
                time.sleep(0.01)
        assert refused_at is not None, "the listener stayed open after SIGTERM"
        assert len(results) < 20, "the requests in flight ended before the listener closed"

        for thread in threads:
            thread.join(15)
        assert sorted(results) == list(range(20))
        for n, response in results.items():
            assert isinstance(response, httpx.Response), response
            assert (response.status_code, response.json()) == (200, {"value": f"value-{n}"})
        assert server.process.wait(15) == 0
        messages = [entry["message"] for entry in server.logs()]
        assert "stopping: no new connections, finishing requests in flight" in messages
        assert messages[-1] == "stopped"
    finally:
        server.close()


# --- TLS --------------------------------------------------------------------------------------


def test_tls_with_a_test_certificate(_session_proxy, proxy, seed, teams_file, tmp_path):
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(key))
    seed("/concourse/alpha/token", "alpha-team-token")

    server = start_test_server(_session_proxy, teams_file, "--tls-bind-port", "0", "--tls-cert", str(cert),
                               "--tls-key", str(key))
    try:
        assert len(server.urls) == 2 and server.urls[0].startswith("http://")
        https = server.urls[1]
        assert https.startswith("https://127.0.0.1:")
        trusted = ssl.create_default_context()
        ca.configure_trust(trusted)
        with httpx.Client(base_url=https, verify=trusted, trust_env=False, timeout=10) as http:
            info = http.get("/api/v1/info/creds", headers=basic("admin"))
            assert info.status_code == 200 and info.json()["secretsmanager"]["aws_region"] == "us-east-1"
            lookup = http.get("/api/v1/teams/alpha/vars/lookup", params={"var": "token"}, headers=basic("alice"))
            assert lookup.json() == {"value": "alpha-team-token"}
            assert http.get("/api/v1/info/creds").status_code == 401
        with pytest.raises(httpx.ConnectError):  # a client that does not trust the CA
            httpx.get(https + "/api/v1/health", trust_env=False, verify=ssl.create_default_context())
        with pytest.raises(httpx.HTTPError):  # plain HTTP on the TLS port
            httpx.get(https.replace("https://", "http://") + "/api/v1/health", trust_env=False, timeout=5)
        assert server.stop() == 0
    finally:
        server.close()


# --- web --dev --------------------------------------------------------------------------------


def _run_printed(command: str, with_curl: bool) -> str:
    """Run a printed curl command: with curl, or the same request with httpx (same URL,
    credentials, headers and body) on machines without curl."""
    argv = shlex.split(command)
    assert argv[0] == "curl"
    if with_curl:
        done = subprocess.run(argv, capture_output=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout.decode()
    user = headers = body = url = None
    headers, args = {}, iter(argv[1:])
    for arg in args:
        if arg == "-u":
            user = tuple(next(args).split(":", 1))
        elif arg == "-H":
            name, _, value = next(args).partition(":")
            headers[name.strip()] = value.strip()
        elif arg == "--data-binary":
            body = Path(next(args).removeprefix("@")).read_bytes()
        elif not arg.startswith("-"):
            url = arg
    assert url and user
    response = httpx.request("POST" if body is not None else "GET", url, auth=user, headers=headers, content=body,
                             trust_env=False, timeout=60)
    response.raise_for_status()
    return response.text


def test_dev_mode_prints_url_credentials_and_working_curl_commands():
    server = start_web_server(["--dev"], clean_environ())
    try:
        deadline = time.monotonic() + 10
        while "Stop with Ctrl+C" not in server.stdout_text():
            assert time.monotonic() < deadline, server.stdout_text()
            time.sleep(0.02)
        lines = [line.strip() for line in server.stdout_text().splitlines()]
        fields = {line.split(":", 1)[0]: line.split(":", 1)[1].split()[0] for line in lines
                  if line.startswith(("URL:", "user:", "password:"))}
        assert fields["URL"] == server.url and fields["user"] == "admin" and fields["password"]
        curls = [line for line in lines if line.startswith("curl ")]
        assert len(curls) == 2
        assert all(f"admin:{fields['password']}" in line and server.url in line for line in curls)

        for with_curl in [True, False] if shutil.which("curl") else [False]:
            info = json.loads(_run_printed(curls[0], with_curl))
            assert info["secretsmanager"]["health"] == {"method": "GetSecretValue", "response": {"status": "UP"}}
            pipeline = yaml.safe_load(_run_printed(curls[1], with_curl))
            params = pipeline["jobs"][0]["plan"][1]["config"]["params"]
            assert params == {"DATABASE_URL": "postgres://hello_app:example-db-password@db.internal:5432/hello",
                              "API_TOKEN": "example-api-token-123"}
            assert find_vars(json.dumps(pipeline)) == []  # all resolved (the shell arithmetic is no var)
        assert server.stop() == 0
        assert fields["password"] not in server.log_text()
    finally:
        server.close()


def test_readme_main_job_is_the_dev_web_node():
    text = README.read_text()
    assert "pipeline-secrets web --dev" in text


# --- start-up validation ----------------------------------------------------------------------


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]  # click < 8.2
    except TypeError:
        return CliRunner()


def web_cli(*args: str, env: dict[str, str] | None = None) -> Result:
    return _runner().invoke(main, ["web", "--bind-port", "0", *args], env=env, catch_exceptions=False)


def assert_exit_2(result: Result, *needles: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    for needle in needles:
        assert needle in result.stderr


@pytest.mark.parametrize("content, needle", [
    ("", "must be a mapping with one key, 'teams'"),
    ("- alpha\n", "must be a mapping with one key, 'teams'"),
    ("teams: [alpha]\n", "must be a mapping with one key, 'teams'"),
    ("teams: {}\nextra: 1\n", "must be a mapping with one key, 'teams'"),
    ("teams:\n  alpha: [alice]\n", "team 'alpha' must be a mapping of local_users and, optionally, role_arn and external_id"),
    ("teams:\n  alpha:\n    local_users: alice\n", "local_users must be a list of user names"),
    ("teams:\n  alpha:\n    local_users: [alice]\n    admins: [bob]\n", "a mapping of local_users and, optionally"),
    ("teams:\n  alpha:\n    local_users: [alice]\n    role_arn: arn:aws:iam::1:role/x\n", "is not an IAM role ARN"),
    ("teams:\n  alpha:\n    local_users: [alice]\n    external_id: abc\n", "external_id needs a role_arn"),
    ("teams:\n  alpha:\n    local_users: [alice, 3]\n", "local_users must be a list of user names"),
    ("teams:\n  a/b:\n    local_users: [alice]\n", "invalid team name 'a/b'"),
    ("teams:\n  '..':\n    local_users: [alice]\n", "invalid team name '..'"),
    ("teams:\n  alpha:\n    local_users: [alise]\n", "team 'alpha': 'alise' is not a local user"),
    ("teams: [\n", "invalid YAML"),
])
def test_a_malformed_teams_file_stops_start_up(tmp_path, content, needle):
    path = tmp_path / "teams.yml"
    path.write_text(content)
    result = web_cli(*aws_flags(), "--add-local-user", "alice:pw-1", "--teams-file", str(path))
    assert_exit_2(result, "--teams-file", needle)


def test_a_malformed_teams_file_stops_the_real_process_with_2(tmp_path):
    path = tmp_path / "teams.yml"
    path.write_text("teams:\n  alpha: nobody\n")
    done = subprocess.run(
        [sys.executable, "-m", "pipeline_secrets", "web", "--bind-port", "0", *aws_flags(), "--teams-file", str(path)],
        capture_output=True, text=True, timeout=60, env=clean_environ(), check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: --teams-file") and "Traceback" not in done.stderr
    assert done.stdout == ""


def test_missing_teams_file(tmp_path):
    assert_exit_2(web_cli(*aws_flags(), "--teams-file", str(tmp_path / "nope.yml")), "--teams-file", "cannot read")


@pytest.mark.parametrize("args, needles", [
    (["--add-local-user", "s3cret-no-user"], ["--add-local-user", "USER:PASSWORD"]),
    (["--add-local-user", "alice:"], ["--add-local-user"]),
    (["--add-local-user", "alice:pw", "--add-local-user", "alice:pw2"], ["'alice' is given more than once"]),
    (["--add-local-user", "alice:" + "x" * 73], ["longer than 72 bytes"]),
    (["--main-team-local-user", "ghost"], ["--main-team-local-user", "'ghost' is not a local user"]),
    (["--tls-bind-port", "0"], ["--tls-bind-port needs both --tls-cert and --tls-key"]),
    (["--tls-cert", "cert.pem", "--tls-key", "key.pem"], ["need --tls-bind-port"]),
    (["--token-duration", "soon"], ["--token-duration"]),
    (["--token-duration", "0"], ["--token-duration: must be more than 0"]),
    (["--health-cache-duration", "-1s"], ["--health-cache-duration"]),
    (["--shutdown-timeout", "x"], ["--shutdown-timeout"]),
])
def test_invalid_web_flags_exit_2_naming_the_flag(args, needles):
    result = web_cli(*aws_flags(), *args)
    assert_exit_2(result, *needles)
    assert "s3cret-no-user" not in result.stderr


def test_unusable_tls_files_exit_2(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("not a certificate")
    key.write_text("not a key")
    result = web_cli(*aws_flags(), "--tls-bind-port", "0", "--tls-cert", str(cert), "--tls-key", str(key))
    assert_exit_2(result, "--tls-cert/--tls-key")


def test_aws_settings_are_validated_like_every_command():
    assert_exit_2(web_cli(), "--aws-secretsmanager-region is required")
    assert_exit_2(web_cli(*aws_flags(), "--aws-secretsmanager-team-secret-template", "/x"), "{{.Secret}}")


def test_a_port_in_use_exits_2():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _runner().invoke(main, ["web", "--bind-ip", "127.0.0.1", "--bind-port", str(port), *aws_flags()])
    assert_exit_2(result, f"--bind-port: cannot listen on 127.0.0.1:{port}")


def test_users_from_the_environment_are_comma_separated(monkeypatch):
    monkeypatch.setenv("CONCOURSE_ADD_LOCAL_USER", "alice:pw-1, bob:pw-2")
    monkeypatch.setenv("CONCOURSE_MAIN_TEAM_LOCAL_USER", "alice,bob")
    assert listed((), "CONCOURSE_ADD_LOCAL_USER") == ["alice:pw-1", "bob:pw-2"]
    assert listed(("carol:pw",), "CONCOURSE_ADD_LOCAL_USER") == ["carol:pw"]  # flags win
    result = web_cli("--aws-secretsmanager-region", "us-east-1", "--main-team-local-user", "carol")
    assert_exit_2(result, "'carol' is not a local user")
    result = web_cli()  # users and admins from the variables passed validation: the region is next
    assert_exit_2(result, "--aws-secretsmanager-region is required")


# --- the modules on their own -----------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_passwords_plain_and_hashed():
    hashed = web_auth.bcrypt.hashpw(b"hashed-pw", web_auth.bcrypt.gensalt(4)).decode()
    assert web_auth.bcrypt_cost(hashed) == 4
    assert web_auth.bcrypt_cost("plain-password") is None
    users = web_auth.hash_users([("plain", "plain-pw"), ("hashed", hashed)])
    assert users["hashed"] == hashed.encode() and users["plain"].startswith(b"$2b$10$")
    auth = web_auth.Authenticator(users, token_duration=60)
    assert auth.check_password("plain", "plain-pw") and auth.check_password("hashed", "hashed-pw")
    assert not auth.check_password("plain", "plain-pw ") and not auth.check_password("hashed", hashed)
    assert not auth.check_password("nobody", "plain-pw")
    assert not auth.check_password("plain", "plain-pw" + "x" * 70)  # past 72 bytes: refused, not truncated
    assert auth.users == ["hashed", "plain"]
    with pytest.raises(ConfigError):
        web_auth.parse_local_user("no-colon", "--add-local-user")
    assert web_auth.parse_local_user("u:pass:with:colons", "x") == ("u", "pass:with:colons")


def test_unknown_users_cost_one_bcrypt_check_like_wrong_passwords(monkeypatch):
    auth = web_auth.Authenticator(web_auth.hash_users([("alice", "alice-pw")]), token_duration=60)
    checks: list[bytes] = []
    real = web_auth.bcrypt.checkpw
    monkeypatch.setattr(web_auth.bcrypt, "checkpw", lambda pw, h: checks.append(h) or real(pw, h))
    assert not auth.check_password("nobody", "x")
    assert not auth.check_password("alice", "wrong")
    assert not auth.check_password("alice", "y" * 100)
    assert len(checks) == 3
    assert auth.check_password("alice", "alice-pw") and auth.check_password("alice", "alice-pw")
    assert len(checks) == 4  # a verified pair is remembered; failures never are


def test_tokens_expire():
    clock = Clock()
    auth = web_auth.Authenticator({}, token_duration=60, clock=clock)
    token = auth.issue_token("alice")
    assert auth.user_for_token(token) == "alice" and auth.user_for_token(token + "x") is None
    clock.now += 59.9
    assert auth.user_for_token(token) == "alice"
    clock.now += 0.2
    assert auth.user_for_token(token) is None


def test_teams(tmp_path):
    path = tmp_path / "teams.yml"
    path.write_text("teams:\n  alpha:\n    local_users: [alice, bob]\n  main:\n    local_users: [carol]\n")
    teams = build_teams(load_teams_file(path).members, ["admin"], ["admin", "alice", "bob", "carol"])
    assert isinstance(teams, Teams)
    assert teams.is_admin("admin") and teams.is_admin("carol") and not teams.is_admin("alice")
    assert teams.may_access("alice", "alpha") and not teams.may_access("alice", "beta")
    assert teams.may_access("admin", "beta") and not teams.may_access("dave", "alpha")


def test_the_health_cache():
    clock = Clock()
    calls: list[int] = []

    async def check() -> dict[str, Any]:
        calls.append(1)
        await asyncio.sleep(0.01)
        return {"n": len(calls)}

    async def scenario() -> list[Any]:
        health = CachedHealth(check, ttl=5, clock=clock)
        first = await asyncio.gather(*(health.get() for _ in range(10)))
        clock.now += 4.9
        cached = await health.get()
        clock.now += 0.2
        return [first, cached, await health.get()]

    first, cached, fresh = asyncio.run(scenario())
    assert first == [{"n": 1}] * 10 and cached == {"n": 1} and fresh == {"n": 2}


def test_passwords_in_the_test_setup_are_distinct():
    assert len(set(PASSWORDS.values())) == len(PASSWORDS)
