"""Who may call what on the web node: the auth matrix on every endpoint (HTTP Basic and bearer
tokens), the token endpoint, and team scoping (a member of alpha never reads beta's secrets, URL
tricks included). One real server process (uvicorn) for the module, in front of the fault proxy."""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from support.webclient import basic, bearer, login, token_for
from support.webserver import CAROL_HASH, PASSWORDS, WebServer, start_test_server

pytest_plugins = ["support.webfixtures"]  # the web server fixtures: one server per module

ALPHA_PIPELINE = "/concourse/alpha/deploy/token"
ALPHA_TEAM = "/concourse/alpha/token"
BETA_SECRET = "/concourse/beta/token"
BETA_VALUE = "beta-secret-value-7731"
NOT_AUTHORIZED = {"error": "not authorized"}
FORBIDDEN = {"error": "forbidden"}


@pytest.fixture
def secrets(seed: Any) -> None:
    seed(ALPHA_PIPELINE, "alpha-pipeline-token")
    seed(ALPHA_TEAM, "alpha-team-token")
    seed(BETA_SECRET, BETA_VALUE)
    seed("/concourse/beta/deploy/token", BETA_VALUE)


# (method, path, body, what a member or an admin gets back)
ENDPOINTS: list[tuple[str, str, str | None, Any]] = [
    ("GET", "/api/v1/teams/alpha/pipelines/deploy/vars/lookup?var=token", None, {"value": "alpha-pipeline-token"}),
    ("GET", "/api/v1/teams/alpha/vars/lookup?var=token", None, {"value": "alpha-team-token"}),
    ("POST", "/api/v1/teams/alpha/pipelines/deploy/vars/interpolate", '{"t": "((token))"}',
     {"t": "alpha-pipeline-token"}),
    ("POST", "/api/v1/teams/alpha/vars/interpolate", '{"t": "((token))"}', {"t": "alpha-team-token"}),
]
INFO = ("GET", "/api/v1/info/creds", None, None)


def call(http: httpx.Client, endpoint: tuple[str, str, str | None, Any], headers: dict[str, str]) -> httpx.Response:
    method, path, body, _ = endpoint
    if body is not None:
        headers = {**headers, "Content-Type": "application/json"}
    return http.request(method, path, content=body, headers=headers)


def assert_status(response: httpx.Response, status: int, body: Any = None) -> None:
    assert response.status_code == status, (response.request.url, response.text)
    if body is not None:
        assert response.json() == body
    assert response.headers["content-type"].startswith("application/json")


# --- the matrix -------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS + [INFO], ids=lambda e: f"{e[0]} {e[1]}")
def test_no_or_bad_credentials_get_401_with_one_answer(endpoint, client, secrets, proxy):
    token = token_for(client, "alice")
    attempts = {
        "none": {},
        "wrong password": basic("alice", "not-alices-password"),
        "unknown user": basic("mallory", "alice-pw-Lm27"),
        "empty password": basic("alice", ""),
        "not base64": {"Authorization": "Basic %%%"},
        "no colon": {"Authorization": "Basic YWxpY2U="},
        "unknown token": bearer("x" * 43),
        "token as Basic password": basic("alice", token),
        "other scheme": {"Authorization": f"Token {token}"},
        "bearer without token": {"Authorization": "Bearer"},
    }
    proxy.clear_log()
    for name, headers in attempts.items():
        response = call(client, endpoint, headers)
        assert_status(response, 401, NOT_AUTHORIZED)
        assert "Basic" in response.headers["www-authenticate"], name
    assert proxy.log == []  # nothing reached AWS


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e[0]} {e[1]}")
def test_team_endpoints_answer_members_and_admins_only(endpoint, client, secrets):
    tokens = {user: token_for(client, user) for user in ("alice", "carol", "admin", "dave")}
    for user in ("alice", "bob", "admin"):  # members of alpha, and the admin
        assert_status(call(client, endpoint, basic(user)), 200, endpoint[3])
    for user in ("alice", "admin"):
        assert_status(call(client, endpoint, bearer(tokens[user])), 200, endpoint[3])
    for user in ("carol", "dave"):  # member of beta only; member of no team
        assert_status(call(client, endpoint, basic(user)), 403, FORBIDDEN)
        assert_status(call(client, endpoint, bearer(tokens[user])), 403, FORBIDDEN)


def test_info_creds_is_for_admins_only(client, secrets):
    for user in ("alice", "carol", "dave"):
        assert_status(call(client, INFO, basic(user)), 403, FORBIDDEN)
        assert_status(call(client, INFO, bearer(token_for(client, user))), 403, FORBIDDEN)
    assert_status(call(client, INFO, basic("admin")), 200)
    assert_status(call(client, INFO, bearer(token_for(client, "admin"))), 200)


def test_a_password_given_as_a_bcrypt_hash_works(client, seed):
    seed("/concourse/beta/token", BETA_VALUE)
    response = client.get("/api/v1/teams/beta/vars/lookup", params={"var": "token"}, headers=basic("carol"))
    assert_status(response, 200, {"value": BETA_VALUE})
    # The hash itself is not a password.
    assert_status(client.get("/api/v1/teams/beta/vars/lookup?var=token", headers=basic("carol", CAROL_HASH)), 401)


def test_unauthenticated_endpoints(client, proxy):
    assert client.get("/api/v1/health").json() == {"status": "ok"}
    assert client.get("/metrics").status_code == 200
    assert proxy.log == []


# --- tokens -----------------------------------------------------------------------------------


def test_token_endpoint_issues_bearer_tokens(client):
    response = login(client, "bob")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600  # the default --token-duration, 1h
    assert len(body["access_token"]) >= 40
    assert response.headers["cache-control"] == "no-store"
    assert login(client, "bob").json()["access_token"] != body["access_token"]  # fresh every time


def test_token_endpoint_refuses_bad_credentials_with_one_answer(client):
    wrong = login(client, "bob", "not-bobs-password")
    unknown = login(client, "nobody", "whatever-password")
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert response.json() == {"error": "invalid_grant", "error_description": "invalid username or password"}
    assert client.post("/sky/issuer/token", data={"grant_type": "client_credentials"}).status_code == 400
    assert client.post("/sky/issuer/token", data={"grant_type": "password", "username": "bob"}).status_code == 400
    as_json = client.post("/sky/issuer/token",
                          json={"grant_type": "password", "username": "bob", "password": PASSWORDS["bob"]})
    assert as_json.status_code == 200


@pytest.fixture(scope="module")
def short_tokens(_session_proxy, teams_file) -> Iterator[WebServer]:
    server = start_test_server(_session_proxy, teams_file, "--token-duration", "2s")
    yield server
    server.close()


def test_expired_tokens_get_401_on_every_endpoint(short_tokens, secrets):
    with httpx.Client(base_url=short_tokens.url, trust_env=False, timeout=30) as http:
        assert login(http, "admin").json()["expires_in"] == 2  # (and the passwords are verified once)
        tokens = {user: token_for(http, user) for user in ("admin", "alice")}
        assert_status(call(http, ENDPOINTS[0], bearer(tokens["alice"])), 200)
        time.sleep(2.05)
        for endpoint in ENDPOINTS + [INFO]:
            for token in tokens.values():
                assert_status(call(http, endpoint, bearer(token)), 401, NOT_AUTHORIZED)
        # Basic still works, and a new token does.
        assert_status(call(http, ENDPOINTS[0], basic("alice")), 200)
        assert_status(call(http, ENDPOINTS[0], bearer(token_for(http, "alice"))), 200)


# --- scoping: alpha never reaches beta --------------------------------------------------------


def raw_get(url: str, path: str, headers: dict[str, str]) -> tuple[int, str]:
    """A GET with the path sent exactly as written (HTTP clients normalise '..' and escapes)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


@pytest.mark.parametrize("path", [
    "/api/v1/teams/beta/vars/lookup?var=token",
    "/api/v1/teams/beta/pipelines/deploy/vars/lookup?var=token",
    "/api/v1/teams/%62eta/vars/lookup?var=token",
    "/api/v1/teams/BETA/vars/lookup?var=token",
    "/api/v1/teams/alpha%2F..%2Fbeta/vars/lookup?var=token",
    "/api/v1/teams/alpha/../beta/vars/lookup?var=token",
    "/api/v1/teams/alpha/pipelines/..%2F..%2Fbeta/vars/lookup?var=token",
    "/api/v1/teams/alpha/pipelines/../vars/lookup?var=token",
    "/api/v1/teams/alpha/pipelines/./vars/lookup?var=token",
    "/api/v1/teams/beta%2Fpipelines%2Fdeploy/vars/lookup?var=token",
    "/api/v1/teams/../vars/lookup?var=beta/token",
    "/api/v1/teams/alpha/vars/lookup?var=../beta/token",
    "/api/v1/teams/alpha/vars/lookup?var=..%2Fbeta%2Ftoken",
    "/api/v1/teams/alpha/vars/lookup?var=/concourse/beta/token",
    "/api/v1/teams/alpha/pipelines/deploy/vars/lookup?var=../../beta/token",
    "/api/v1/teams/alpha/vars/lookup?var=beta/token",
])
def test_a_member_of_alpha_never_reads_betas_secrets(path, web, secrets, proxy):
    for user in ("alice", "bob"):
        status, body = raw_get(web.url, path, basic(user))
        assert status in (400, 403, 404, 422), (path, status, body)
        assert BETA_VALUE not in body
    assert proxy.calls(secret_id=BETA_SECRET) == []
    assert proxy.calls(secret_id="/concourse/beta/deploy/token") == []


def test_interpolation_cannot_reach_another_team(client, secrets, proxy):
    document = '{"a": "((../beta/token))", "b": "((beta/token))"}'
    for path in ("/api/v1/teams/alpha/vars/interpolate", "/api/v1/teams/alpha/pipelines/deploy/vars/interpolate"):
        response = client.post(path, content=document,
                               headers={**basic("alice"), "Content-Type": "application/json"})
        assert response.status_code in (422, 502), response.text
        assert BETA_VALUE not in response.text
    assert proxy.calls(secret_id=BETA_SECRET) == []


def test_the_admin_reads_any_team(client, secrets):
    response = client.get("/api/v1/teams/beta/vars/lookup", params={"var": "token"}, headers=basic("admin"))
    assert_status(response, 200, {"value": BETA_VALUE})


def test_invalid_team_or_pipeline_names_are_refused_for_the_admin(web, secrets, proxy):
    for path in ("/api/v1/teams/../vars/lookup?var=token", "/api/v1/teams/alpha/pipelines/../vars/lookup?var=token",
                 "/api/v1/teams/a%20b/vars/lookup?var=token"):
        status, body = raw_get(web.url, path, basic("admin"))
        assert status == 400, (path, body)
    assert proxy.log == []
