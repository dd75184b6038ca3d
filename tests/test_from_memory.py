"""Answers from this node's memory alone (``Manager.interpolate_cached``), which the web node
gives on its event loop: the same answer as ``interpolate``, or none at all, never an AWS call."""

from __future__ import annotations

import pytest
from conftest import get_calls

from pipeline_secrets import LimitError
from pipeline_secrets.pure.limits import DocumentLimits

TEAM, PIPELINE = "main", "deploy"
DOCUMENT = {
    "var_sources": [{"name": "release", "type": "dummy", "config": {"vars": {"version": "1.4.2"}}}],
    "jobs": [{"name": "deploy", "params": {"TOKEN": "((token))", "URL": "db://((db.user))@host",
                                           "VERSION": "((release:version))", "PLAIN": "text", "N": 3}}],
}


def test_memory_answers_only_once_every_var_is_cached_and_as_interpolate_does(seed, connect, proxy):
    seed("/concourse/main/deploy/token", "t-value")
    seed("/concourse/main/db", {"user": "alice"})
    manager = connect()
    assert manager.interpolate_cached(DOCUMENT, team=TEAM, pipeline=PIPELINE) == (False, None)
    assert get_calls(proxy) == []  # memory only: nothing was asked of AWS
    full = manager.interpolate(DOCUMENT, team=TEAM, pipeline=PIPELINE)
    calls = len(get_calls(proxy))
    cached, answer = manager.interpolate_cached(DOCUMENT, team=TEAM, pipeline=PIPELINE)
    assert cached and answer == full
    assert answer["jobs"][0]["params"] == {"TOKEN": "t-value", "URL": "db://alice@host", "VERSION": "1.4.2",
                                           "PLAIN": "text", "N": 3}
    assert len(get_calls(proxy)) == calls


def test_a_var_not_in_memory_or_a_new_secretsmanager_source_leaves_it_to_the_full_path(seed, connect, proxy):
    seed("/concourse/main/deploy/token", "t-value")
    manager = connect()
    manager.lookup("token", team=TEAM, pipeline=PIPELINE)
    other = {"a": "((token))", "b": "((never-read))"}
    assert manager.interpolate_cached(other, team=TEAM, pipeline=PIPELINE) == (False, None)
    sourced = {"var_sources": [{"name": "elsewhere", "type": "secretsmanager",
                                "config": {"region": "eu-west-3"}}], "a": "((elsewhere:x))"}
    assert manager.interpolate_cached(sourced, team=TEAM, pipeline=PIPELINE) == (False, None)
    assert get_calls(proxy) == ["/concourse/main/deploy/token"]


def test_the_limits_given_bound_what_memory_builds(seed, connect):
    seed("/concourse/main/deploy/token", "x" * 1000)
    manager = connect()
    manager.lookup("token", team=TEAM, pipeline=PIPELINE)
    document = {"a": ["((token))"] * 50}
    with pytest.raises(LimitError, match="--max-expanded-bytes"):
        manager.interpolate_cached(document, team=TEAM, pipeline=PIPELINE,
                                   limits=DocumentLimits(max_expanded_bytes=10_000))
    assert manager.interpolate_cached(document, team=TEAM, pipeline=PIPELINE)[0]
