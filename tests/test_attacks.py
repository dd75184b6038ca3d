"""The attack suite (issue 8): each reproduced defect, as a member of one team would attack a real
web node process over loopback. Every test asserts the refusal, and, where the attack is heavy,
that another team's requests were answered while it ran (order, not durations). The last test
checks the server's peak memory over the whole suite against the documented bound.

Bounded in count and time; loopback only (other loopback addresses stand for other clients).
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from support.attack import Victim, client, closed_by_server, open_idle, peak_rss_mb, raw_exchange
from support.faultproxy import FaultProxy
from support.webclient import basic, bearer, login
from support.webserver import WebServer, aws_flags, clean_environ, start_web_server, user_flags

from pipeline_secrets.web.auth import MAX_TOKENS_PER_USER, Authenticator, hash_users

pytest_plugins = ["support.webfixtures"]

PEAK_RSS_LIMIT_MB = 300  # docs/security.md: the web node's memory under this suite's attacks
ALPHA = "/api/v1/teams/alpha/pipelines/deploy/vars"
BETA_LOOKUP = "/api/v1/teams/beta/vars/lookup"
BETA_TOKEN = "beta-token-Ty56"


def node_flags(teams_file: Path, *extra: str) -> list[str]:
    return [*aws_flags(), *user_flags(teams_file), "--secret-cache-max-entries", "300",
            "--max-connections-per-client", "40", "--header-timeout", "1s", "--send-timeout", "2s", *extra]


@pytest.fixture(scope="module")
def node(_session_proxy: FaultProxy, teams_file: Path) -> Iterator[WebServer]:
    server = start_web_server(node_flags(teams_file), clean_environ(AWS_ENDPOINT_URL_SECRETS_MANAGER=_session_proxy.url))
    yield server
    server.close()


@pytest.fixture
def beta(seed: Callable[..., None]) -> None:
    seed("/concourse/beta/api-token", BETA_TOKEN)


def beta_victim(node: WebServer, running: threading.Event, source: str = "127.0.0.9") -> Victim:
    http = client(node.url, source)
    return Victim(
        ask=lambda: http.get(BETA_LOOKUP, params={"var": "api-token"}, headers=basic("carol")),
        expect=lambda r: r.status_code == 200 and r.json() == {"value": BETA_TOKEN},
        attack_running=running,
    )


def under_attack(node: WebServer, attack: Callable[[], None], rounds: int, workers: int = 4) -> Victim:
    """Run ``attack`` ``rounds`` times on ``workers`` threads while beta's victim asks; returns the
    victim, stopped, having checked it was answered while the attack was still running."""
    running = threading.Event()
    running.set()
    victim = beta_victim(node, running).start()
    try:
        with ThreadPoolExecutor(workers) as pool:
            for future in [pool.submit(attack) for _ in range(rounds)]:
                future.result()
    finally:
        running.clear()
        victim.stop()
    assert victim.bad == []
    assert victim.answered_during > 0, "beta got no answer while the attack ran"
    return victim


def post_doc(http: httpx.Client, body: str | bytes, content_type: str = "application/yaml", user: str = "alice",
             path: str = f"{ALPHA}/interpolate", **params: str) -> httpx.Response:
    return http.post(path, content=body, params=params, headers={**basic(user), "Content-Type": content_type})


# --- 1. aliases of long strings ------------------------------------------------------------------


def test_aliases_of_a_long_string_are_refused(node, beta, proxy):
    body = 's: &x "' + "A" * 1_000_000 + '"\nl: [' + ", ".join(["*x"] * 5000) + "]\n"

    def attack() -> None:
        with client(node.url) as http:
            response = post_doc(http, body)
        assert response.status_code == 413, response.text
        assert "--max-expanded-bytes" in response.json()["error"]

    under_attack(node, attack, rounds=8)
    assert proxy.calls("BatchGetSecretValue") == []


# --- 2. cross-team reads through templates that can be read two ways --------------------------------


def test_custom_templates_cannot_reach_a_dashed_team(_session_proxy, proxy, seed, tmp_path):
    seed("/concourse/alpha-x-deploy/db", "alpha-x-db-Pq19")
    seed("/concourse/alpha-x-db2", "alpha-x-db2-Wd42")
    teams = tmp_path / "teams.yml"
    teams.write_text("teams:\n  alpha:\n    local_users: [alice]\n  alpha-x:\n    local_users: [bob]\n")
    server = start_web_server(
        [*aws_flags(), *user_flags(teams)[:-2], "--teams-file", str(teams), "--no-secret-cache-enabled",
         "--aws-secretsmanager-pipeline-secret-template", "/concourse/{{.Team}}-{{.Pipeline}}/{{.Secret}}",
         "--aws-secretsmanager-team-secret-template", "/concourse/{{.Team}}-{{.Secret}}"],
        clean_environ(AWS_ENDPOINT_URL_SECRETS_MANAGER=_session_proxy.url),
    )
    try:
        with client(server.url) as http:
            attempts = [
                http.get("/api/v1/teams/alpha/pipelines/x-deploy/vars/lookup", params={"var": "db"},
                         headers=basic("alice")),
                http.get("/api/v1/teams/alpha/vars/lookup", params={"var": "x-db2"}, headers=basic("alice")),
                post_doc(http, "a: ((x-db2))\n", path="/api/v1/teams/alpha/pipelines/p/vars/interpolate"),
            ]
        for response in attempts:
            assert response.status_code == 422, response.text
            assert "team 'alpha-x'" in response.json()["error"]
            assert "alpha-x-db" not in response.text.replace("alpha-x-db2'", "")  # the name, never the value
        assert not any(p.startswith("/concourse/alpha-x") for r in proxy.log for p in r.secret_ids)
        assert "two teams' or pipelines' paths" in server.log_text()  # the start-up warning
    finally:
        server.close()


# --- 3. the token endpoint: a small body, parsed off the event loop -----------------------------------


def test_huge_token_bodies_are_refused_and_stall_nobody(node):
    big = b"grant_type=password&username=alice&password=" + b"x" * 10_000_000
    declared = (b"POST /sky/issuer/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                b"Content-Length: %d\r\n\r\n" % len(big))
    chunked = (b"POST /sky/issuer/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n" + b"".join(b"%x\r\n%s\r\n" % (8192, b"[" * 8192)
                                                             for _ in range(8)) + b"0\r\n\r\n")
    statuses: list[bytes] = []

    def attack() -> None:
        for payload in (declared + big[:65536], chunked):
            answer = raw_exchange(node.url, payload)
            statuses.append(answer.split(b"\r\n", 1)[0])

    running = threading.Event()
    running.set()
    with client(node.url, "127.0.0.8") as http:
        health = Victim(ask=lambda: http.get("/api/v1/health"), expect=lambda r: r.status_code == 200,
                        attack_running=running).start()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda _: attack(), range(4)))
        running.clear()
        health.stop()
    assert health.bad == [] and health.answered_during > 0
    assert statuses and all(b" 413 " in status for status in statuses), statuses


def test_a_deeply_nested_json_token_body_is_400(node):
    with client(node.url) as http:
        response = http.post("/sky/issuer/token", content="[" * 5000 + "]" * 5000,
                             headers={"Content-Type": "application/json"})
        assert response.status_code == 400 and response.json()["error"].startswith("invalid_request")


# --- 4. tokens: one user cannot log the others out ------------------------------------------------------


def test_one_user_requesting_many_tokens_logs_nobody_else_out(node):
    with client(node.url) as http:
        bob = login(http, "bob").json()["access_token"]
        alice = [login(http, "alice").json()["access_token"] for _ in range(MAX_TOKENS_PER_USER + 150)]
        me = lambda token: http.get("/api/v1/teams/alpha/vars/lookup", params={"var": "none"},  # noqa: E731
                                    headers=bearer(token)).status_code
        assert me(bob) != 401  # 422 (undefined), not logged out
        assert me(alice[-1]) != 401
        assert me(alice[0]) == 401  # alice's own oldest made room


# --- 5. /metrics cardinality ------------------------------------------------------------------------


def test_invented_methods_do_not_grow_metrics(node):
    with client(node.url) as http:
        before = len(http.get("/metrics").content)
        for i in range(200):
            method = b"X" * 15_000 + str(i).encode()
            raw_exchange(node.url, method + b" /api/v1/health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        text = http.get("/metrics").text
    assert len(text.encode()) < before + 20_000, len(text)
    assert 'method="other"' in text and "XXXX" not in text


# --- 6. one team cannot spend everyone's budget ---------------------------------------------------------


def test_undefined_and_refused_vars_cost_no_aws_call(node, proxy):
    with client(node.url) as http:
        many = post_doc(http, json.dumps({f"k{i}": f"((u{i}))" for i in range(5000)}), "application/json")
        assert many.status_code == 413 and "--max-document-vars" in many.json()["error"]
        refused = {f"k{i}": f"((u{i}))" for i in range(400)} | {"bad": "((other-pipeline/x))"}
        one_bad = post_doc(http, json.dumps(refused), "application/json")
        assert one_bad.status_code == 422 and "other-pipeline/x" in one_bad.json()["error"]
    assert proxy.log == []


def test_one_team_cannot_flush_another_teams_cache(node, beta, proxy):
    with client(node.url, "127.0.0.9") as victim, client(node.url) as http:
        assert victim.get(BETA_LOOKUP, params={"var": "api-token"}, headers=basic("carol")).status_code == 200
        for round_ in range(3):  # 3 x 400 vars x 2 levels of not-found entries: 8x the cache
            flood = {f"k{i}": f"((flood-{round_}-{i}))" for i in range(400)}
            assert post_doc(http, json.dumps(flood), "application/json", allow_missing="true").status_code == 200
        proxy.clear_log()
        again = victim.get(BETA_LOOKUP, params={"var": "api-token"}, headers=basic("carol"))
    assert again.json() == {"value": BETA_TOKEN}
    assert proxy.log == []  # answered from beta's cache, which alpha's flood did not touch


def test_a_team_flooding_slow_lookups_is_queued_and_turned_away_not_the_others(node, beta, proxy):
    proxy.add_latency(0.3, operations="GetSecretValue")  # alpha's unique vars all miss the cache
    statuses: list[int] = []
    counter = iter(range(10_000))
    lock = threading.Lock()

    def attack() -> None:
        with lock:
            n = next(counter)
        with client(node.url, f"127.0.0.{20 + n % 4}") as http:  # under the per-address connection cap
            response = http.get(f"{ALPHA}/lookup", params={"var": f"slow-{n}"}, headers=basic("alice"))
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert response.headers["retry-after"] == "1"

    with client(node.url, "127.0.0.9") as warm:  # beta's answer is cached before the flood
        assert warm.get(BETA_LOOKUP, params={"var": "api-token"}, headers=basic("carol")).status_code == 200
    under_attack(node, attack, rounds=120, workers=60)  # 15 per address: under its new-connection cap
    assert 429 in statuses and set(statuses) <= {422, 429}


# --- 7. large plain documents ---------------------------------------------------------------------------


def test_a_huge_plain_list_is_refused_before_it_is_built(node, beta):
    body = "[" + "a," * 4_900_000 + "a]"  # under the 10 MiB cap

    def attack() -> None:
        with client(node.url) as http:
            response = post_doc(http, body)
        assert response.status_code == 413 and "--max-document-nodes" in response.json()["error"]

    under_attack(node, attack, rounds=6)


# --- 8. the rest ------------------------------------------------------------------------------------------


def test_unknown_users_cost_a_cost_in_use_chosen_per_name():
    users = hash_users([("cheap", "$2b$04$" + "a" * 53), ("dear", "pw-1"), ("dear2", "pw-2")])
    auth = Authenticator(users, token_duration=60)
    costs = [int(auth.dummy_hash(f"nobody-{i}")[4:6]) for i in range(300)]
    assert set(costs) == {4, 10}  # both costs in use, not only the highest
    assert 50 < costs.count(4) < 150  # in proportion: 1 user in 3 has cost 4
    assert auth.dummy_hash("nobody-1") == auth.dummy_hash("nobody-1")  # a name always costs the same


def test_a_flood_of_wrong_passwords_does_not_delay_a_real_first_login(node):
    statuses: list[tuple[int, str | None]] = []
    running = threading.Event()
    running.set()

    def wrong(i: int) -> None:
        with client(node.url, "127.0.0.2") as http:
            response = login(http, "alice", f"wrong-password-{i}")
        statuses.append((response.status_code, response.headers.get("retry-after")))

    with ThreadPoolExecutor(18) as pool:  # under the per-address cap of new connections (20)
        flood = [pool.submit(wrong, i) for i in range(200)]
        with client(node.url, "127.0.0.3") as http:
            first = login(http, "dave")  # dave logs in for the first time, from another address
        still_running = not all(f.done() for f in flood)
        for future in flood:
            future.result()
    assert first.status_code == 200, first.text
    assert still_running  # answered while the flood was still being served
    assert {s for s, _ in statuses} <= {401, 429, 503}
    assert 429 in {s for s, _ in statuses}
    assert all(retry is not None for s, retry in statuses if s in (429, 503))
    assert sum(s == 401 for s, _ in statuses) <= 24  # bcrypt ran for the first ~20 failures only


@pytest.mark.parametrize("body, content_type, status", [
    ("[" * 500 + "]" * 500, "application/yaml", 413),
    ("[" * 500 + "]" * 500, "application/json", 413),
    ('{"a": "\\ud800"}', "application/json", 400),
    ("a: \"\\ud800\"\n", "application/yaml", 400),
])
def test_deep_nesting_and_lone_surrogates_are_4xx(node, body, content_type, status):
    with client(node.url) as http:
        response = post_doc(http, body, content_type)
    assert response.status_code == status, response.text
    assert list(response.json()) == ["error"]


def test_a_client_leaving_mid_body_is_logged_as_such_not_as_a_500(node):
    raw_exchange(node.url, b"POST " + ALPHA.encode() + b"/interpolate HTTP/1.1\r\nHost: x\r\n"
                 b"Authorization: Basic " + basic("alice")["Authorization"].split()[1].encode() +
                 b"\r\nContent-Type: application/yaml\r\nContent-Length: 100000\r\n\r\na: b\n", timeout=0.5)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        mine = [e for e in node.requests_logged() if e.get("client_closed")]
        if mine:
            break
        time.sleep(0.05)
    assert mine and mine[-1]["status"] == 499
    assert not [e for e in node.logs() if e.get("message") == "unexpected error"]
    with client(node.url) as http:
        assert 'status="500"' not in http.get("/metrics").text


def test_idle_connections_cannot_lock_anyone_out(node):
    idle = open_idle(node.url, 80, "127.0.0.4")  # the cap is 40 per client address
    try:
        assert len(idle) >= 40
        with client(node.url, "127.0.0.5") as http:
            assert http.get("/api/v1/health").status_code == 200
        assert sum(closed_by_server(sock, 0.2) for sock in idle[40:]) == len(idle) - 40  # refused at once
        assert closed_by_server(idle[0], 5.0)  # no request within --header-timeout (1s): closed
    finally:
        for sock in idle:
            sock.close()
    refusals = [e for e in node.logs() if str(e.get("message", "")).startswith("connections refused")]
    assert 1 <= len(refusals) <= 3  # at most once a second


def test_no_answer_may_be_cached_on_the_way(node, beta):
    with client(node.url) as http:
        answers = [
            http.get(BETA_LOOKUP, params={"var": "api-token"}, headers=basic("carol")),
            post_doc(http, "a: ((api-token))\n", user="carol", path="/api/v1/teams/beta/vars/interpolate"),
            http.get(BETA_LOOKUP, params={"var": "api-token"}),
            http.get("/nowhere"),
            http.get("/api/v1/health"),
            http.get("/metrics"),
        ]
    assert [r.status_code for r in answers] == [200, 200, 401, 404, 200, 200]
    assert all(r.headers.get("cache-control") == "no-store" for r in answers)


def test_no_redirect_is_built_from_the_host_header(node):
    answer = raw_exchange(node.url, b"GET /api/v1/health/ HTTP/1.1\r\nHost: evil.example\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 404") and b"evil.example" not in answer
    assert b"location:" not in answer.lower()


def test_shutdown_is_bounded_and_a_cut_request_is_answered_in_json(_session_proxy, proxy, seed, teams_file):
    seed("/concourse/alpha/deploy/slow", "v")
    server = start_web_server([*node_flags(teams_file), "--shutdown-timeout", "1s"],
                              clean_environ(AWS_ENDPOINT_URL_SECRETS_MANAGER=_session_proxy.url))
    try:
        proxy.hang(60, operations="GetSecretValue")  # AWS unreachable: calls never come back
        answers: list[httpx.Response] = []
        thread = threading.Thread(target=lambda: answers.append(
            client(server.url).get(f"{ALPHA}/lookup", params={"var": "slow"}, headers=basic("alice"))))
        thread.start()
        while not proxy.calls("GetSecretValue"):
            time.sleep(0.02)
        server.signal(signal.SIGTERM)
        assert server.process.wait(timeout=1 + 1 + 2) == 0  # --shutdown-timeout plus a second (+ slack)
        thread.join(10)
        assert answers and answers[0].status_code == 503
        assert answers[0].json() == {"error": "the server is shutting down: the request was cut"}
    finally:
        server.close()


# --- found by the attacker's review --------------------------------------------------------------------


def test_indentation_cannot_blow_up_the_written_answer(node, beta):
    # 1 MB of short lines behind an anchor, 16 aliases, 59 levels deep: each line is written
    # indented by ~120 spaces, 16 times (1.9 GB before). The text written is what is budgeted.
    inner = "[&s " + json.dumps("a\n" * 100_000) + "," + ",".join(["*s"] * 15) + "]"
    for _ in range(59):
        inner = "{k: " + inner + "}"

    def attack() -> None:
        with client(node.url) as http:
            response = post_doc(http, inner)
        assert response.status_code == 413 and "--max-expanded-bytes" in response.json()["error"], response.text

    under_attack(node, attack, rounds=4)


def test_unterminated_json_strings_do_not_stall_the_loop(node, beta):
    body = '"\\' * 2_000_000

    def attack() -> None:
        with client(node.url) as http:
            response = post_doc(http, body, "application/json")
        assert response.status_code == 400 and "not terminated" in response.json()["error"]

    under_attack(node, attack, rounds=4)


def test_long_var_names_are_refused_and_not_kept(node):
    before = peak_rss_mb(node.process.pid)
    with client(node.url) as http:
        for i in range(300):
            var = f"v{i}." + "ab." * 15_000 + "x"
            response = http.get(f"{ALPHA}/lookup", params={"var": var}, headers=basic("alice"))
            assert response.status_code == 422 and "longer than 1024 characters" in response.json()["error"]
    assert peak_rss_mb(node.process.pid) < before + 100  # 300 x 45 KB names: not cached


@pytest.mark.parametrize("body", [
    "a: !!int\n", "a: !!bool x\n", "a: !!set x\n", "a: 0x" + "f" * 4000 + "\n", "a: 1" + ":1" * 100_000 + "\n",
    "a: {&m <<: {x: 1}}\nc: [*m]\n", "a: ((" + "a." * 100_000 + "a))\n",
])
def test_one_line_documents_that_were_500s_are_4xx(node, body):
    with client(node.url) as http:
        response = post_doc(http, body)
    assert response.status_code in (400, 422), response.text
    assert list(response.json()) == ["error"]


def test_values_that_cannot_be_written_are_502_naming_the_kind(node, seed):
    seed("/concourse/alpha/deploy/odd", '{"a": "\\ud800"}')
    seed("/concourse/alpha/deploy/deep", '{"a": ' * 400 + "1" + "}" * 400)
    with client(node.url) as http:
        for var in ("odd", "deep"):
            for response in (http.get(f"{ALPHA}/lookup", params={"var": var}, headers=basic("alice")),
                             post_doc(http, f"a: (({var}))\n")):
                assert response.status_code == 502 and response.json()["error"].endswith(": invalid-value")


def test_json_constants_that_are_not_json_are_400(node):
    with client(node.url) as http:
        response = post_doc(http, '{"a": NaN}', "application/json")
    assert response.status_code == 400 and "NaN" in response.json()["error"]


def test_an_answer_nobody_reads_is_dropped_and_frees_its_slot(node, seed):
    seed("/concourse/alpha/deploy/big", "x" * 60_000)
    document = "l: [" + ", ".join(["((big))"] * 300) + "]\n"  # an 18 MB answer: more than sockets buffer
    request = (f"POST {ALPHA}/interpolate HTTP/1.1\r\nHost: x\r\nAuthorization: {basic('alice')['Authorization']}"
               f"\r\nContent-Type: application/yaml\r\nContent-Length: {len(document)}\r\n\r\n{document}").encode()
    parts = urlsplit(node.url)
    readers = []
    for _ in range(4):  # alice's 2 document slots, and 2 more waiting for them; nobody reads
        sock = socket.create_connection((parts.hostname, parts.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(request)
        readers.append(sock)
    try:
        # After --send-timeout (2s) each unread answer is dropped, and the next request gets the slot.
        with client(node.url) as http:
            response = post_doc(http, "a: ((big))\n")
        assert response.status_code == 200, response.text
        assert yaml.safe_load(response.text) == {"a": "x" * 60_000}
    finally:
        for sock in readers:
            sock.close()


def test_a_slow_login_body_is_cut_early(node):
    started_sent = raw_exchange(node.url, b"POST /sky/issuer/token HTTP/1.1\r\nHost: x\r\nContent-Type: "
                                b"application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ngrant_type=",
                                timeout=15)
    assert started_sent.startswith(b"HTTP/1.1 408")


def test_content_length_with_transfer_encoding_is_refused_and_closed(node):
    smuggle = (b"POST /api/v1/health HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n"
               b"\r\n0\r\n\r\nGET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = raw_exchange(node.url, smuggle, timeout=3)
    assert answer.startswith(b"HTTP/1.1 400") and answer.count(b"HTTP/1.1") == 1


def test_the_header_deadline_holds_for_the_next_request_on_a_kept_alive_connection(node):
    host, port = urlsplit(node.url).hostname, urlsplit(node.url).port
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while not answer.endswith(b'"ok"}\n'):  # the whole answer, however many segments it came in
            answer += sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200")
        time.sleep(0.5)
        sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHo")  # and nothing more
        assert closed_by_server(sock, 3.0)  # --header-timeout is 1s


def test_a_shared_address_or_an_attack_on_a_user_cannot_lock_the_user_out(node):
    with client(node.url, "127.0.0.6") as bob_home:
        assert login(bob_home, "bob").status_code == 200  # bob logs in from his address once
    def spray(i: int) -> int:  # someone behind the same address sprays names, 4 at a time
        with client(node.url, "127.0.0.6") as same_nat:
            return login(same_nat, f"nobody-{i}", "x").status_code

    with ThreadPoolExecutor(4) as pool:
        sprayed = list(pool.map(spray, range(140)))
    assert 429 in sprayed  # that address's bucket (100, 2 a second) ran dry
    for source in ("127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14", "127.0.0.15", "127.0.0.16"):
        with client(node.url, source) as attacker:  # and six addresses guess bob's password
            [login(attacker, "bob", f"guess-{source}-{i}") for i in range(18)]  # 108 > bob's bucket (100)
    with client(node.url, "127.0.0.6") as bob_home:
        assert login(bob_home, "bob").status_code == 200


# --- round 2 of the attacker's review ----------------------------------------------------------------


def held_unread(url: str, source: str, count: int) -> list[socket.socket]:
    """``count`` connections that pipeline from 300 to 1,500 small requests each and read nothing:
    for some of them what the kernel does not take stays in the server's buffer under asyncio's
    64 KiB pause mark, where no pause_writing comes (the attacker's review: 85% of them)."""
    parts = urlsplit(url)
    held = []
    for i in range(count):
        requests = 300 + i * 1200 // count
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1400)
        sock.bind((source, 0))
        sock.connect((parts.hostname, parts.port))
        sock.sendall(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n" * requests)
        held.append(sock)
    return held


def server_side_connections(port: int, peer: str) -> int:
    """Established connections of the server's ``port`` with ``peer``, from the kernel's table
    (/proc/net/tcp): what the server still holds, whatever the client's side believes (a reset
    sent past a full receive window is not accepted by the client)."""
    return len(server_send_queues(port, peer))


def server_send_queues(port: int, peer: str) -> list[int]:
    """Bytes in the kernel's send queue of each established connection of the server's ``port``
    with ``peer`` (/proc/net/tcp)."""
    peer_hex = "".join(f"{int(part):02X}" for part in reversed(peer.split(".")))
    queues = []
    with open("/proc/net/tcp") as table:
        for line in list(table)[1:]:
            local, remote, state, queue = line.split()[1:5]
            if state == "01" and int(local.split(":")[1], 16) == port and remote.split(":")[0] == peer_hex:
                queues.append(int(queue.split(":")[0], 16))
    return queues


def test_unread_pipelined_answers_do_not_keep_their_connections(node):
    port = urlsplit(node.url).port
    held = held_unread(node.url, "127.0.0.21", 40)
    try:
        deadline = time.monotonic() + 30  # --send-timeout is 2s: the watchdog must let every one go
        while server_side_connections(port, "127.0.0.21") and time.monotonic() < deadline:
            time.sleep(0.5)
        assert server_side_connections(port, "127.0.0.21") == 0
        with client(node.url, "127.0.0.21", timeout=5) as http:  # and the address has its places back
            assert http.get("/api/v1/health").status_code == 200
    finally:
        for sock in held:
            sock.close()


def test_long_user_names_are_refused_and_leave_nothing_behind(node):
    with client(node.url, "127.0.0.22") as http:
        statuses = [http.get(BETA_LOOKUP, params={"var": "x"},
                             headers=basic(f"{i:06d}" + "u" * 10_000, "x")).status_code for i in range(150)]
    # All 401 at once: no bcrypt and no bucket (a bucket per name would have run dry: 429 after 100).
    assert set(statuses) == {401}


def test_names_in_the_url_are_logged_shortened_before_anyone_is_authenticated(node):
    answer = raw_exchange(node.url, f"GET /api/v1/teams/{'t' * 6_000}/pipelines/{'p' * 2_000}/vars/lookup?var=x "
                                    "HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 401")
    deadline = time.monotonic() + 10
    while not (lines := [e for e in node.requests_logged() if str(e.get("team", "")).startswith("ttt")]):
        assert time.monotonic() < deadline, node.requests_logged()[-3:]
        time.sleep(0.05)
    line = lines[-1]
    assert len(line["team"]) < 200 and len(line["pipeline"]) < 200
    assert "6,000 characters" in line["team"]


def test_a_few_addresses_cannot_take_every_connection(_session_proxy, teams_file):
    server = start_web_server(
        [*aws_flags(), *user_flags(teams_file), "--max-connections", "60", "--max-connections-per-client", "30",
         "--header-timeout", "30s"],
        clean_environ(AWS_ENDPOINT_URL_SECRETS_MANAGER=_session_proxy.url))
    idle: list[socket.socket] = []
    try:
        for source in ("127.0.0.23", "127.0.0.24", "127.0.0.25", "127.0.0.26"):
            idle += open_idle(server.url, 30, source)  # 120 tries at a cap of 60 in all
        time.sleep(0.5)
        for _ in range(3):
            with client(server.url, "127.0.0.27") as http:  # a client holding nothing gets a place
                assert http.get("/api/v1/health").status_code == 200
    finally:
        for sock in idle:
            sock.close()
        server.close()


# --- memory over the whole suite ----------------------------------------------------------------------------


def test_zz_peak_memory_of_the_node_stayed_bounded(node):
    peak = peak_rss_mb(node.process.pid)
    print(f"peak RSS of the attacked node: {peak:.0f} MiB")
    assert peak < PEAK_RSS_LIMIT_MB, peak


def test_a_client_that_keeps_sending_and_never_reads_is_cut(node, seed):
    """Requests sent back to back and never read: the answers must pile up where the send
    watchdog sees them, not in a kernel send queue of megabytes that it would count as taken
    (the attacker's review of round 4: connections held past 37 s with a 2 s --send-timeout)."""
    seed("/concourse/beta/api-token", "beta-token-Kq77")
    port = urlsplit(node.url).port
    request = (b"GET " + BETA_LOOKUP.encode() + b"?var=api-token HTTP/1.1\r\nHost: x\r\nAuthorization: "
               + basic("carol")["Authorization"].encode() + b"\r\n\r\n") * 50
    socks = []
    for _ in range(20):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.bind(("127.0.0.23", 0))
        sock.connect(("127.0.0.1", port))
        sock.setblocking(False)
        socks.append(sock)
    largest = 0
    try:
        deadline = time.monotonic() + 30
        open_socks = list(socks)
        while open_socks and time.monotonic() < deadline:
            for sock in list(open_socks):
                try:
                    sock.send(request)
                except BlockingIOError:
                    pass
                except OSError:
                    open_socks.remove(sock)  # cut by the node
            largest = max([largest, *server_send_queues(port, "127.0.0.23")])
            if time.monotonic() > deadline - 25 and not server_side_connections(port, "127.0.0.23"):
                break
            time.sleep(0.05)
        assert server_side_connections(port, "127.0.0.23") == 0
        assert largest <= 512 * 1024  # what the kernel holds per connection stays small
    finally:
        for sock in socks:
            sock.close()
