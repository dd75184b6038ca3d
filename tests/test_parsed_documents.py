"""Documents the web node keeps parsed (``web.parsed``): per-team budgets, and answers that are
those of a fresh parse, whoever sends the same bytes, however often, whatever the secrets hold
by then."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from support.webclient import basic

from pipeline_secrets.pure.documents import Parsed, load_document, parse_document
from pipeline_secrets.pure.limits import DocumentLimits
from pipeline_secrets.web.app import interpolate_on_loop, on_loop_limits
from pipeline_secrets.web.parsed import ENTRY_BYTES, NODE_BYTES, ParsedDocuments

pytest_plugins = ["support.webfixtures"]


def parsed(nodes: int = 10) -> Parsed:
    return Parsed({"n": nodes}, nodes)


def test_a_kept_document_is_given_back_as_the_same_object_for_its_team_and_kind_only():
    kept = ParsedDocuments()
    document = parsed()
    kept.put("alpha", b"a: 1", False, document)
    assert kept.get("alpha", b"a: 1", False) == (True, document.value)
    assert kept.get("alpha", b"a: 1", False)[1] is document.value
    assert kept.get("beta", b"a: 1", False) == (False, None)  # another team's partition: nothing shared
    assert kept.get("alpha", b"a: 1", True) == (False, None)  # read as JSON is another document
    assert kept.get("alpha", b"a: 2", False) == (False, None)


def test_one_team_sending_new_documents_evicts_only_its_own():
    per_team = 10 * (ENTRY_BYTES + 2 * 4 + NODE_BYTES * 10)  # ten entries of 4-byte ASCII bodies
    kept = ParsedDocuments(per_team_bytes=per_team)
    kept.put("beta", b"beta", False, parsed())
    for n in range(1000):
        kept.put("alpha", b"%04d" % n, False, parsed())
    assert kept.get("beta", b"beta", False)[0]
    assert [kept.get("alpha", b"%04d" % n, False)[0] for n in range(990, 1000)] == [True] * 10
    assert not kept.get("alpha", b"0989", False)[0]
    assert kept.stats() == {"teams": 2, "documents": 11, "bytes": 11 * (ENTRY_BYTES + 8 + NODE_BYTES * 10)}


def test_a_used_entry_outlives_newer_ones_and_a_document_over_the_budget_is_not_kept():
    kept = ParsedDocuments(per_team_bytes=3 * (ENTRY_BYTES + 2 * 4 + NODE_BYTES))
    for body in (b"aaaa", b"bbbb", b"cccc"):
        kept.put("alpha", body, False, parsed(1))
    assert kept.get("alpha", b"aaaa", False)[0]  # used: now the most recent
    kept.put("alpha", b"dddd", False, parsed(1))
    assert [kept.get("alpha", body, False)[0] for body in (b"aaaa", b"bbbb", b"cccc", b"dddd")] == [
        True, False, True, True]
    kept.put("alpha", b"huge", False, parsed(10_000))
    assert not kept.get("alpha", b"huge", False)[0]
    assert kept.stats()["documents"] == 3


def test_the_least_recently_used_team_goes_past_max_teams():
    kept = ParsedDocuments(max_teams=3)
    for team in ("a", "b", "c"):
        kept.put(team, b"x", False, parsed())
    kept.get("a", b"x", False)
    kept.put("d", b"x", False, parsed())
    assert [kept.get(team, b"x", False)[0] for team in "abcd"] == [True, False, True, True]


@pytest.mark.parametrize("kind", ["example", "comments", "wide", "aliases", "json"])
def test_what_a_team_is_charged_bounds_what_its_kept_documents_take(kind):
    """Whole entries, as tracemalloc sees them: many tiny bodies (each entry's own objects), text
    with one wide character (four bytes a character), aliases, JSON (attack review 15, finding 2)."""
    import gc
    import tracemalloc

    example = (Path(__file__).parent.parent / "src/pipeline_secrets/examples/hello-pipeline.yml").read_text()
    bodies = {
        "example": [f"{example}# {n}\n" for n in range(40)],
        "comments": [f"# {n}\n" for n in range(3000)],
        "wide": ["[" + ", ".join(f"{'x' * 150}\u2603{i}-{n}" for i in range(100)) + "]" for n in range(40)],
        "aliases": [f"a: &a [{', '.join(str(i) for i in range(100))}]\nb: [*a, *a, *a, *a]\nn: {n}\n" for n in range(100)],
        "json": ['{"k": [' + ", ".join(f'"v{i}-{n}"' for i in range(200)) + "]}" for n in range(60)],
    }[kind]
    kept = ParsedDocuments(per_team_bytes=1 << 40)
    limits = DocumentLimits(max_bytes=16 * 1024, max_nodes=1024)  # the loop's, without its 1 ms: traced is slow
    gc.collect()
    tracemalloc.start()
    for text in bodies:  # what the node does: the body's bytes, their parse, kept
        body = text.encode()
        kept.put("alpha", body, kind == "json", parse_document(body.decode(), limits, as_json=kind == "json"))
    del body
    gc.collect()
    # What this test's own code allocated (other threads of the test process allocate too).
    mine = [tracemalloc.Filter(True, pattern) for pattern in (__file__, "*/web/parsed.py", "*/pure/*.py", "*/yaml/*")]
    held = sum(stat.size for stat in tracemalloc.take_snapshot().filter_traces(mine).statistics("filename"))
    tracemalloc.stop()
    assert kept.stats()["documents"] == len(bodies)
    assert held <= kept.stats()["bytes"], (held, kept.stats())


def test_interpolating_a_kept_document_never_changes_it(seed, connect):
    """Mapping and list values put in whole, in two teams, then changed by whoever got them: the
    kept parse is still what a fresh parse of the body gives."""
    values = {"alpha": {"db": {"user": "alpha-user", "pw": ["p", {"q": 1}]}, "hosts": {"all": ["h1", {"h": 2}]}, "token": "A"},
              "beta": {"db": {"user": "beta-user", "pw": []}, "hosts": {"all": []}, "token": "B"}}
    for team, secrets in values.items():
        for name, value in secrets.items():
            seed(f"/concourse/{team}/{name}", value)
    body = (b"jobs:\n- name: deploy\n  params:\n    DB: ((db))\n    LIST: ((hosts))\n    URL: x://((db.user))\n"
            b"  shared: &s {a: ((token))}\n  again: *s\n")
    manager = connect()
    for team in values:
        manager.interpolate(load_document(body.decode()), team=team)  # now in memory
    kept = ParsedDocuments()
    tight = on_loop_limits(manager.settings.limits)
    for team in ("alpha", "beta") * 5:
        answer = interpolate_on_loop(manager, kept, tight, body, False, team, None, False, False)
        assert answer is not None
        loaded = yaml.safe_load(answer)
        assert loaded["jobs"][0]["params"]["DB"] == values[team]["db"]
        assert loaded["jobs"][0]["params"]["LIST"] == values[team]["hosts"]
        assert loaded["jobs"][0]["again"] == {"a": values[team]["token"]}
        loaded["jobs"][0]["params"]["DB"]["user"] = "changed"
        loaded["jobs"][0]["shared"]["a"] = "changed"
    fresh = load_document(body.decode())
    assert kept.get("alpha", body, False) == (True, fresh)
    assert kept.get("beta", body, False) == (True, fresh)
    assert kept.stats()["documents"] == 2
    assert manager.lookup("db", team="alpha") == values["alpha"]["db"]


def test_the_answer_to_a_kept_document_has_the_secrets_of_now_and_of_the_caller(client, seed, aws, web):
    """Over the wire: the same bytes for two pipelines and two teams, and again once a secret has
    changed and been invalidated: each answer is the caller's own, and current."""
    seed("/concourse/alpha/deploy/token", "alpha-deploy-1")
    seed("/concourse/alpha/build/token", "alpha-build-1")
    seed("/concourse/beta/deploy/token", "beta-deploy-1")
    body = "jobs:\n- name: j\n  params: {TOKEN: ((token)), N: 3}\n"
    headers = {"Content-Type": "application/yaml"}

    def ask(team: str, pipeline: str, user: str) -> Any:
        response = client.post(f"/api/v1/teams/{team}/pipelines/{pipeline}/vars/interpolate", content=body,
                               headers={**headers, **basic(user)})
        assert response.status_code == 200, response.text
        return yaml.safe_load(response.text)["jobs"][0]["params"]["TOKEN"]

    for _ in range(3):  # the first answer of each reads AWS, the others memory, all the same parse
        assert ask("alpha", "deploy", "alice") == "alpha-deploy-1"
        assert ask("alpha", "build", "alice") == "alpha-build-1"
        assert ask("beta", "deploy", "carol") == "beta-deploy-1"
    aws.put_secret_value(SecretId="/concourse/alpha/deploy/token", SecretString="alpha-deploy-2")
    dropped = client.delete("/api/v1/teams/alpha/pipelines/deploy/vars/cache", params={"var": "token"},
                            headers=basic("admin"))
    assert dropped.status_code == 200, dropped.text
    assert ask("alpha", "deploy", "alice") == "alpha-deploy-2"
    assert ask("alpha", "build", "alice") == "alpha-build-1"
    assert ask("beta", "deploy", "carol") == "beta-deploy-1"
