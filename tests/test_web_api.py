"""The web node's endpoints over a real socket: /api/v1/info/creds (exact body, health errors,
health caching), interpolation in JSON and YAML, lookups, 422 vs 502, /metrics, liveness,
hundreds of concurrent requests, and logs that never carry a secret."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import httpx
import pytest
import yaml
from conftest import SEED_POLICY, restricted_policy
from support.webclient import basic, bearer, token_for
from support.webserver import ACCESS_KEY, HEALTH_TTL, PASSWORDS, REGION, SECRET_KEY

pytest_plugins = ["support.webfixtures"]  # the web server fixtures: one server per module

HEALTH_ID = "__concourse-health-check"
PIPELINE = "/api/v1/teams/alpha/pipelines/deploy/vars"
TEAM = "/api/v1/teams/alpha/vars"
DB = {"user": "app", "password": "db-pw-Zz81", "port": 5432}


@pytest.fixture
def secrets(seed: Any) -> None:
    seed("/concourse/alpha/deploy/database", DB)
    seed("/concourse/alpha/deploy/api-token", "pipeline-token-Qw12")
    seed("/concourse/alpha/api-token", "team-token-Er34")
    seed("/concourse/alpha/channel", "#alpha")
    seed("/concourse/beta/api-token", "beta-token-Ty56")


def wait_for_fresh_health() -> None:
    """The shared server caches the health result for HEALTH_TTL seconds: outlive it."""
    time.sleep(HEALTH_TTL + 0.05)


def post(http: httpx.Client, path: str, body: str, content_type: str, user: str = "alice", **params: str) -> httpx.Response:
    return http.post(path, content=body, params=params, headers={**basic(user), "Content-Type": content_type})


# --- /api/v1/info/creds -----------------------------------------------------------------------


def test_info_creds_exact_body(client, proxy):
    wait_for_fresh_health()
    response = client.get("/api/v1/info/creds", headers=basic("admin"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    expected = {"secretsmanager": {
        "aws_region": REGION,
        "health": {"method": "GetSecretValue", "response": {"status": "UP"}},
        "pipeline_secret_template": "/concourse/{{.Team}}/{{.Pipeline}}/{{.Secret}}",
        "shared_secret_template": "",
        "team_secret_template": "/concourse/{{.Team}}/{{.Secret}}",
    }}
    assert response.text == json.dumps(expected, sort_keys=True) + "\n"  # keys sorted, all the way down
    for credential in (ACCESS_KEY, SECRET_KEY, ACCESS_KEY[:4] + "*"):
        assert credential not in response.text
    assert [record.secret_ids for record in proxy.calls("GetSecretValue")] == [(HEALTH_ID,)]


def test_info_creds_reports_a_denied_health_secret(client, proxy):
    policy = json.loads(json.dumps(SEED_POLICY))
    policy["Statement"][1]["Resource"] = policy["Statement"][1]["Resource"][:1]  # no health-check secret
    proxy.set_policy(policy)
    wait_for_fresh_health()
    response = client.get("/api/v1/info/creds", headers=basic("admin"))
    assert response.status_code == 200
    body = response.json()
    health = body["secretsmanager"].pop("health")
    assert body == {"secretsmanager": {
        "aws_region": REGION,
        "pipeline_secret_template": "/concourse/{{.Team}}/{{.Pipeline}}/{{.Secret}}",
        "shared_secret_template": "",
        "team_secret_template": "/concourse/{{.Team}}/{{.Secret}}",
    }}
    assert list(health) == ["error", "method"] and health["method"] == "GetSecretValue"
    assert health["error"].startswith("AccessDeniedException: User: arn:aws:iam::")
    assert f"perform: secretsmanager:GetSecretValue on resource: {HEALTH_ID}" in health["error"]
    assert len(proxy.calls("GetSecretValue", secret_id=HEALTH_ID)) == 1  # no retry


def test_polling_info_creds_costs_one_aws_call_per_cache_period(client, proxy):
    wait_for_fresh_health()
    started = time.monotonic()
    for _ in range(50):
        assert client.get("/api/v1/info/creds", headers=basic("admin")).status_code == 200
    elapsed = time.monotonic() - started
    calls = len(proxy.calls("GetSecretValue", secret_id=HEALTH_ID))
    assert calls <= 1 + int(elapsed / HEALTH_TTL)
    if elapsed < HEALTH_TTL:
        assert calls == 1


def test_concurrent_polls_share_one_health_check(web, proxy):
    proxy.add_latency(0.3, operations="GetSecretValue")
    wait_for_fresh_health()

    async def poll_all() -> list[int]:
        async with httpx.AsyncClient(base_url=web.url, trust_env=False, timeout=30) as http:
            responses = await asyncio.gather(*(http.get("/api/v1/info/creds", headers=basic("admin"))
                                               for _ in range(40)))
        return [r.status_code for r in responses]

    assert asyncio.run(poll_all()) == [200] * 40
    assert len(proxy.calls("GetSecretValue", secret_id=HEALTH_ID)) == 1


# --- interpolation ----------------------------------------------------------------------------


def test_interpolates_json_to_json(client, secrets):
    document = {"z": "((api-token))", "db": "((database))", "url": "postgres://((database.user)):((database.password))@h:((database.port))/x",
                "port": "((database.port))", "list": ["((channel))", 1, None], "((channel))": "as a key"}
    response = post(client, f"{PIPELINE}/interpolate", json.dumps(document), "application/json")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.text.endswith("\n")
    result = response.json()
    assert result == {"z": "pipeline-token-Qw12", "db": DB, "url": "postgres://app:db-pw-Zz81@h:5432/x",
                      "port": 5432, "list": ["#alpha", 1, None], "#alpha": "as a key"}
    assert list(result) == ["z", "db", "url", "port", "list", "#alpha"]  # input key order kept


def test_interpolates_yaml_to_yaml(client, secrets):
    document = "jobs:\n- name: deploy  # a comment\n  params:\n    TOKEN: ((api-token))\n    DB: ((database))\n"
    for content_type in ("application/yaml", "application/x-yaml", "text/yaml", "application/x-www-form-urlencoded"):
        response = post(client, f"{PIPELINE}/interpolate", document, content_type)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/yaml")
        assert yaml.safe_load(response.text) == {"jobs": [{"name": "deploy", "params": {
            "TOKEN": "pipeline-token-Qw12", "DB": DB}}]}


def test_team_level_interpolation_skips_the_pipeline_path(client, secrets, proxy):
    response = post(client, f"{TEAM}/interpolate", '{"t": "((api-token))"}', "application/json")
    assert response.json() == {"t": "team-token-Er34"}
    assert not any("/deploy/" in secret_id for record in proxy.log for secret_id in record.secret_ids)


def test_allow_missing_leaves_undefined_vars(client, secrets):
    body = '{"a": "((nope))", "b": "((channel))"}'
    assert post(client, f"{TEAM}/interpolate", body, "application/json", allow_missing="true").json() == {
        "a": "((nope))", "b": "#alpha"}
    assert post(client, f"{TEAM}/interpolate", body, "application/json", allow_missing="maybe").status_code == 400


@pytest.mark.parametrize("document, message", [
    ('{"a": "((nope))", "b": "((also-nope))", "c": "((nope))"}', "undefined vars: also-nope, nope"),
    ('{"a": "((\\"unterminated))"}', "invalid var '\"unterminated': unterminated quote"),
    ('{"a": "((database.missing))"}', "missing field 'missing' in var: database.missing"),
    ('{"a": "((api-token.field))"}', "cannot access field 'field' of non-map value ('str') from var: api-token.field"),
    ('{"a": "x-((database))"}', "cannot interpolate non-primitive value (map) from var: database"),
    ('{"a": "((other/x))"}', "var 'other/x' refused"),
])
def test_document_and_var_errors_are_422(client, secrets, document, message):
    response = post(client, f"{PIPELINE}/interpolate", document, "application/json")
    assert response.status_code == 422, response.text
    assert list(response.json()) == ["error"]
    assert response.json()["error"].startswith(message)


def test_unreadable_documents_are_400(client, secrets):
    assert post(client, f"{PIPELINE}/interpolate", "{not json", "application/json").status_code == 400
    assert post(client, f"{PIPELINE}/interpolate", "a: [b", "application/yaml").status_code == 400
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(8))
    response = post(client, f"{PIPELINE}/interpolate", bomb, "application/yaml")
    assert response.status_code == 413 and "too large" in response.json()["error"]
    not_utf8 = client.post(f"{PIPELINE}/interpolate", content=b"a: \xff\xfe",
                           headers={**basic("alice"), "Content-Type": "application/yaml"})
    assert (not_utf8.status_code, not_utf8.json()) == (400, {"error": "the document is not UTF-8 text"})


@pytest.mark.parametrize("fault, kind, aws_text", [
    ("denied", ": access-denied", "is not authorized to perform"),
    ("throttled", "(after 5 attempts): throttled", "Rate exceeded"),
    ("unreachable", "(after 5 attempts): network", "Connection"),
])
def test_aws_failures_are_502_naming_the_path_and_kind_only(client, web, secrets, proxy, fault, kind, aws_text):
    if fault == "denied":
        proxy.set_policy(restricted_policy("beta"))
    elif fault == "throttled":
        proxy.throttle()
    else:
        proxy.drop_connections()
    for response in (
        post(client, f"{PIPELINE}/interpolate", '{"a": "((api-token))", "b": "((database.password))"}',
             "application/json"),
        client.get(f"{PIPELINE}/lookup", params={"var": "api-token"}, headers=basic("alice")),
    ):
        assert response.status_code == 502, response.text
        error = response.json()["error"]
        assert list(response.json()) == ["error"]
        assert "/concourse/alpha/deploy/" in error and kind in error
        assert aws_text not in response.text and "http" not in error and "arn:" not in error
        for value in ("pipeline-token-Qw12", "db-pw-Zz81", "team-token-Er34"):
            assert value not in response.text
    assert aws_text in web.log_text()  # AWS's own words are for the operator's log


# --- environments (vars/env) ----------------------------------------------------------------


def test_env_resolves_a_mapping_to_strings(client, web, secrets, proxy):
    body = {"TOKEN": "((api-token))", "URL": "postgres://((database.user)):((database.password))@h/x",
            "DB": "((database))", "PORT": "((database.port))", "PLAIN": "no vars", "CHANNEL": "((channel))"}
    response = post(client, f"{PIPELINE}/env", json.dumps(body), "application/json")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    env = response.json()["env"]
    assert list(response.json()) == ["env"] and list(env) == list(body)
    assert env == {"TOKEN": "pipeline-token-Qw12", "URL": "postgres://app:db-pw-Zz81@h/x", "DB": json.dumps(DB),
                   "PORT": "5432", "PLAIN": "no vars", "CHANNEL": "#alpha"}
    ids = [secret_id for record in proxy.log for secret_id in record.secret_ids]
    assert len(ids) == len(set(ids))  # one batched resolution: each path read once
    yaml_body = "TOKEN: ((api-token))\nPORT: ((database.port))\n"
    response = post(client, f"{TEAM}/env", yaml_body, "application/yaml")
    assert response.status_code == 422 and response.json() == {"error": "undefined vars: database.port"}
    response = post(client, f"{TEAM}/env", "TOKEN: ((api-token))\n", "application/yaml")
    assert response.json() == {"env": {"TOKEN": "team-token-Er34"}}  # team level: no pipeline path
    metrics = client.get("/metrics").text
    assert ('pipeline_secrets_http_requests_total{method="POST",'
            'route="/api/v1/teams/{team}/pipelines/{pipeline}/vars/env",status="200"}') in metrics
    assert 'route="/api/v1/teams/{team}/vars/env",status="422"}' in metrics
    logs = web.log_text()
    assert "/vars/env" in logs
    for value in ("pipeline-token-Qw12", "db-pw-Zz81", "team-token-Er34"):
        assert value not in logs and value not in metrics


@pytest.mark.parametrize("body, status, message", [
    ('{"A": "((nope))", "B": "((also-nope))"}', 422, "undefined vars: also-nope, nope"),
    ('{"A": "((database.missing))"}', 422, "missing field 'missing' in var: database.missing"),
    ('{"A": "x-((database))"}', 422, "cannot interpolate non-primitive value (map) from var: database"),
    ('{"A": "((other/x))"}', 422, "var 'other/x' refused"),
    ('["A"]', 400, "the body must be a mapping of environment variable names to strings, not a list"),
    ('{"PORT": 5432}', 400, "the body: the value of PORT must be a string, not int (quote it)"),
    ('{"1A": "x"}', 400, "the body: invalid environment variable name '1A'"),
    ('{"A": "x"', 400, "invalid JSON"),
    ('{"A": "((.:built))"}', 422, "build-local vars have no value outside a Concourse build: .:built"),
])
def test_env_errors_are_those_of_interpolate(client, secrets, body, status, message):
    response = post(client, f"{PIPELINE}/env", body, "application/json")
    assert response.status_code == status, response.text
    assert list(response.json()) == ["error"]
    assert response.json()["error"].startswith(message), response.json()
    for value in ("pipeline-token-Qw12", "db-pw-Zz81"):
        assert value not in response.text


def test_env_is_team_scoped_and_authenticated(client, secrets, proxy):
    body = '{"T": "((api-token))"}'
    assert client.post(f"{PIPELINE}/env", content=body).status_code == 401
    response = post(client, "/api/v1/teams/beta/vars/env", body, "application/json", user="alice")
    assert (response.status_code, response.json()) == (403, {"error": "forbidden"})
    assert "beta-token-Ty56" not in response.text
    assert proxy.log == []


def test_env_lookup_failures_are_502_without_aws_text(client, secrets, proxy):
    proxy.set_policy(restricted_policy("beta"))
    response = post(client, f"{PIPELINE}/env", '{"T": "((api-token))"}', "application/json")
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert "/concourse/alpha/deploy/api-token" in error and ": access-denied" in error
    assert "is not authorized to perform" not in error and "arn:" not in error


# --- lookup -----------------------------------------------------------------------------------


def test_lookup_answers_one_value(client, secrets):
    def lookup(path: str, var: str) -> httpx.Response:
        return client.get(path, params={"var": var}, headers=basic("bob"))

    assert lookup(f"{PIPELINE}/lookup", "api-token").json() == {"value": "pipeline-token-Qw12"}
    assert lookup(f"{TEAM}/lookup", "api-token").json() == {"value": "team-token-Er34"}
    assert lookup(f"{PIPELINE}/lookup", "database").json() == {"value": DB}
    assert lookup(f"{PIPELINE}/lookup", "database.port").json() == {"value": 5432}
    assert lookup(f"{PIPELINE}/lookup", "channel").json() == {"value": "#alpha"}  # falls back to team
    undefined = lookup(f"{PIPELINE}/lookup", "nope")
    assert (undefined.status_code, undefined.json()) == (422, {"error": "undefined vars: nope"})
    assert lookup(f"{PIPELINE}/lookup", "database.nope").status_code == 422
    assert client.get(f"{PIPELINE}/lookup", headers=basic("bob")).status_code == 400


# --- /metrics and liveness --------------------------------------------------------------------


def test_metrics_are_prometheus_text_without_names_or_values(client, secrets, proxy):
    seed_name, seed_value = "very-secret-name-Mx", "very-secret-value-Mx"
    client.get(f"{PIPELINE}/lookup", params={"var": seed_name}, headers=basic("alice"))
    client.get(f"{PIPELINE}/lookup", params={"var": "api-token"}, headers=basic("alice"))
    proxy.throttle(count=1)
    client.get(f"{TEAM}/lookup", params={"var": "channel"}, headers=basic("alice"))
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for needle in (
        'pipeline_secrets_http_requests_total{method="GET",route="/api/v1/teams/{team}/pipelines/{pipeline}/vars/lookup",status="200"}',
        'pipeline_secrets_http_requests_total{method="GET",route="/api/v1/teams/{team}/vars/lookup",status="200"}',
        'pipeline_secrets_http_request_duration_seconds_bucket{le="0.1",method="GET",route="/api/v1/teams/{team}/vars/lookup"}',
        'pipeline_secrets_aws_calls_total{operation="GetSecretValue",outcome="found"}',
        "pipeline_secrets_throttles_total",
        "pipeline_secrets_retries_total",
        "pipeline_secrets_cache_lookups_total",
        "pipeline_secrets_lookup_duration_seconds_bucket",
        "pipeline_secrets_http_requests_in_flight",
        "pipeline_secrets_health_checks_total",
    ):
        assert needle in text, needle
    for secret in (seed_name, seed_value, "api-token", "pipeline-token-Qw12", "channel", "alpha", "deploy", "alice"):
        assert secret not in text
    labels = set(re.findall(r'route="([^"]*)"', text))
    assert labels <= {"/api/v1/health", "/api/v1/info/creds", "/sky/issuer/token", "/metrics", "unmatched",
                      "/api/v1/teams/{team}/pipelines/{pipeline}/vars/lookup", "/api/v1/teams/{team}/vars/lookup",
                      "/api/v1/teams/{team}/pipelines/{pipeline}/vars/interpolate",
                      "/api/v1/teams/{team}/vars/interpolate",
                      "/api/v1/teams/{team}/pipelines/{pipeline}/vars/env", "/api/v1/teams/{team}/vars/env"}


def test_liveness_needs_no_credentials_and_no_aws(client, proxy):
    proxy.drop_connections()  # AWS unreachable: still alive
    response = client.get("/api/v1/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    assert proxy.log == []


def test_unknown_routes_and_methods_answer_json(client, secrets):
    missing = client.get("/api/v1/nope", headers=basic("admin"))
    assert (missing.status_code, missing.json()) == (404, {"error": "not found"})
    wrong_method = client.get(f"{PIPELINE}/interpolate", headers=basic("admin"))
    assert wrong_method.status_code == 405 and wrong_method.json() == {"error": "method not allowed"}
    for method in ("POST", "PUT", "DELETE"):  # the lookups, answered past Starlette's router for GET only
        response = client.request(method, f"{PIPELINE}/lookup", params={"var": "x"}, headers=basic("admin"))
        assert (response.status_code, response.json()) == (405, {"error": "method not allowed"})
        assert response.headers["cache-control"] == "no-store"
    head = client.head(f"{TEAM}/lookup", params={"var": "channel"}, headers=basic("admin"))
    assert head.status_code == 200 and head.content == b""
    assert client.get(f"{TEAM}/lookup/", params={"var": "x"}, headers=basic("admin")).status_code == 404


# --- concurrency ------------------------------------------------------------------------------


def test_hundreds_of_concurrent_requests_are_all_answered_correctly(web, seed, proxy):
    for team in ("alpha", "beta"):
        for n in range(20):
            seed(f"/concourse/{team}/deploy/v{n}", f"{team}-pipeline-{n}")
            seed(f"/concourse/{team}/v{n}", f"{team}-team-{n}")
    users = {"alpha": ["alice", "bob"], "beta": ["carol"]}

    async def one(http: httpx.AsyncClient, i: int, token: str | None) -> tuple[int, Any, Any]:
        team = ("alpha", "beta")[i % 2]
        user = users[team][i % len(users[team])]
        n = i % 20
        headers = bearer(token) if token and user == "bob" else basic(user)
        if i % 7 == 0:  # someone else's team
            other = "beta" if team == "alpha" else "alpha"
            response = await http.get(f"/api/v1/teams/{other}/vars/lookup", params={"var": f"v{n}"}, headers=headers)
            return response.status_code, response.json(), {"error": "forbidden"}
        if i % 3 == 0:
            response = await http.post(
                f"/api/v1/teams/{team}/pipelines/deploy/vars/interpolate",
                content=json.dumps({"p": f"((v{n}))", "i": i}), headers={**headers, "Content-Type": "application/json"})
            return response.status_code, response.json(), {"p": f"{team}-pipeline-{n}", "i": i}
        path = f"/api/v1/teams/{team}/vars/lookup" if i % 2 else f"/api/v1/teams/{team}/pipelines/deploy/vars/lookup"
        response = await http.get(path, params={"var": f"v{n}"}, headers=headers)
        level = "team" if i % 2 else "pipeline"
        return response.status_code, response.json(), {"value": f"{team}-{level}-{n}"}

    async def run_all() -> list[tuple[int, Any, Any]]:
        limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
        async with httpx.AsyncClient(base_url=web.url, trust_env=False, timeout=60, limits=limits) as http:
            login = await http.post("/sky/issuer/token", data={
                "grant_type": "password", "username": "bob", "password": PASSWORDS["bob"]})
            token = login.json()["access_token"]
            return await asyncio.gather(*(one(http, i, token) for i in range(400)))

    results = asyncio.run(run_all())
    wrong = [(status, body, expected) for status, body, expected in results if body != expected]
    assert not wrong, wrong[:5]
    assert sum(1 for status, _, _ in results if status == 200) > 300


# --- logs -------------------------------------------------------------------------------------


def test_logs_have_one_json_line_per_request_and_no_secret(web, client, seed, proxy):
    value, field_value = "TOP-SECRET-VALUE-Lg01", "TOP-SECRET-FIELD-Lg02"
    seed("/concourse/alpha/deploy/plain", value)
    seed("/concourse/alpha/deploy/creds", {"password": field_value})
    before = len(web.requests_logged())
    token = token_for(client, "bob")
    requests = [
        client.get(f"{PIPELINE}/lookup", params={"var": "plain"}, headers=basic("alice")),
        client.get(f"{PIPELINE}/lookup", params={"var": "creds.password"}, headers=bearer(token)),
        post(client, f"{PIPELINE}/interpolate", '{"a": "((plain))", "b": "((nope))"}', "application/json"),
        post(client, f"{PIPELINE}/interpolate", '{"a": "x-((creds))"}', "application/json"),
        client.get(f"{PIPELINE}/lookup", params={"var": "plain"}, headers=basic("alice", "wrong-pw-Lg03")),
        client.get(f"{PIPELINE}/lookup", params={"var": "plain"}, headers=basic("mallory", "pw-Lg04")),
    ]
    proxy.set_policy(restricted_policy("beta"))
    requests.append(client.get(f"{PIPELINE}/lookup", params={"var": "plain"}, headers=basic("alice")))
    proxy.set_policy(None)
    proxy.fail(status=500, error_type="InternalServiceError")
    requests.append(post(client, f"{PIPELINE}/interpolate", "a: ((creds.password))", "application/yaml"))
    assert [r.status_code for r in requests] == [200, 200, 422, 422, 401, 401, 502, 502]
    assert value in requests[0].text  # the value was served...

    deadline = time.monotonic() + 5
    while len(web.requests_logged()) < before + 9 and time.monotonic() < deadline:
        time.sleep(0.02)
    text = web.log_text()  # ...and is nowhere in the log
    forbidden = [value, field_value, token, "wrong-pw-Lg03", "pw-Lg04", *PASSWORDS.values(), SECRET_KEY]
    for secret in forbidden:
        assert secret not in text, secret
    assert "creds.password" not in text and "var=" not in text  # the query is never logged
    lines = web.requests_logged()[before:]
    assert len(lines) == 9
    for line in lines:
        assert {"time", "level", "method", "route", "status", "duration_ms", "user"} <= set(line)
        assert isinstance(line["duration_ms"], float)
    by_status = [(line["route"], line["status"], line["user"]) for line in lines]
    assert by_status[0] == ("/sky/issuer/token", 200, "bob")
    assert by_status[1] == ("/api/v1/teams/{team}/pipelines/{pipeline}/vars/lookup", 200, "alice")
    assert by_status[2][2] == "bob"
    assert [status for _, status, _ in by_status[5:7]] == [401, 401]
    assert by_status[5][2] is None and by_status[6][2] is None
    failed = [line for line in lines if line["status"] == 502]
    assert len(failed) == 2 and all("/concourse/alpha/deploy/" in line["error"] for line in failed)
    assert all(line["level"] == "warning" for line in failed)
