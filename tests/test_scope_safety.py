"""Scope safety whatever the templates (spec 2.6; release blocker, issue 8 defect 2).

A template whose fields are not delimited by '/' reads one path in several ways. These tests check
the rule "a candidate path is allowed only when no configured template can give it to another team
or pipeline" two ways: against a brute-force list of every reading (small cases), and as the
property users care about, over generated templates and names: two different teams (or pipelines)
never share a candidate path, except through a template that names neither.
"""

from __future__ import annotations

import pytest
from conftest import get_calls
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from pipeline_secrets.errors import VarNameError
from pipeline_secrets.pure.ownership import foreign_reading
from pipeline_secrets.pure.templates import LookupRules, SecretTemplate

SEPARATORS = ["/", "-", "_", ".", ""]
NAME_CHARS = "ab-_."


def all_readings(parts, path):
    """Every reading of ``path`` by ``parts``, by trying every split (exponential: small cases)."""

    def walk(index, pos, values):
        if index == len(parts):
            if pos == len(path):
                yield dict(values)
            return
        kind, value = parts[index]
        if kind == "text":
            if path.startswith(value, pos):
                yield from walk(index + 1, pos + len(value), values)
            return
        for end in range(pos + 1, len(path) + 1):
            text = path[pos:end]
            if value in ("Team", "Pipeline") and "/" in text:
                break
            if values.get(value, text) != text:
                continue
            yield from walk(index + 1, end, {**values, value: text})

    yield from walk(0, 0, {})


def brute_force_foreign(parts, path, team, pipeline):
    for values in all_readings(parts, path):
        if "Team" in values and values["Team"] != team:
            return True
        if "Pipeline" in values and values["Pipeline"] != pipeline:
            return True
    return False


name = st.text(alphabet=NAME_CHARS, min_size=1, max_size=4)


@st.composite
def template_parts(draw, fields):
    order = draw(st.permutations(fields))
    prefix = draw(st.sampled_from(["/c/", "/", "", "c-"]))
    text = prefix
    for index, field in enumerate(order):
        text += "{{." + field + "}}"
        if index < len(order) - 1:
            text += draw(st.sampled_from(SEPARATORS))
    return SecretTemplate.parse(text)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    template=template_parts(["Team", "Pipeline", "Secret"]),
    team=name, pipeline=name, secret=name,
    other_team=name, other_pipeline=name, other_secret=name,
)
def test_foreign_reading_agrees_with_brute_force(template, team, pipeline, secret, other_team, other_pipeline,
                                                 other_secret):
    # Paths rendered for one scope, checked on behalf of another (or the same) scope.
    path = template.render(team=other_team, pipeline=other_pipeline, secret=other_secret)
    for caller_pipeline in (pipeline, None, other_pipeline):
        for caller_team in (team, other_team):
            found = foreign_reading(template.parts, path, caller_team, caller_pipeline)
            expected = brute_force_foreign(template.parts, path, caller_team, caller_pipeline)
            assert (found is not None) == expected, (template.text, path, caller_team, caller_pipeline)
            if found is not None:
                # The witness is a real reading of the path that is not the caller's.
                assert {k: v for k, v in (("Team", found.team), ("Pipeline", found.pipeline),
                                          ("Secret", found.secret)) if v is not None} in list(
                    all_readings(template.parts, path))


def _levels(rules, level):
    return {"pipeline": rules.pipeline, "team": rules.team, "shared": rules.shared}[level]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pipeline_t=template_parts(["Team", "Pipeline", "Secret"]),
    team_t=template_parts(["Team", "Secret"]),
    shared_t=st.one_of(st.none(), template_parts(["Secret"])),
    caller1=st.tuples(name, st.one_of(st.none(), name), name),
    caller2=st.tuples(name, st.one_of(st.none(), name), name),
)
def test_two_scopes_never_share_a_path(pipeline_t, team_t, shared_t, caller1, caller2):
    rules = LookupRules(pipeline=pipeline_t, team=team_t, shared=shared_t)
    (team1, pipeline1, var1), (team2, pipeline2, var2) = caller1, caller2
    assume((team1, pipeline1) != (team2, pipeline2))
    try:
        first = dict((path, level) for level, path in rules.candidate_paths(var1, team1, pipeline1))
        second = dict((path, level) for level, path in rules.candidate_paths(var2, team2, pipeline2))
    except VarNameError:
        return  # refused: nothing is read
    for path in first.keys() & second.keys():
        templates = (_levels(rules, first[path]), _levels(rules, second[path]))
        if team1 != team2:
            assert not any(t.uses("Team") for t in templates), (path, first[path], second[path])
        else:
            assert not any(t.uses("Pipeline") for t in templates), (path, first[path], second[path])


def test_defect_pipeline_and_team_level_reads_of_a_dashed_team_are_refused():
    rules = LookupRules(
        pipeline=SecretTemplate.parse("/concourse/{{.Team}}-{{.Pipeline}}/{{.Secret}}"),
        team=SecretTemplate.parse("/concourse/{{.Team}}-{{.Secret}}"),
    )
    # A member of alpha, pipeline x-deploy, var db: the path of alpha-x's pipeline deploy.
    with pytest.raises(VarNameError, match="pipeline 'deploy' of team 'alpha-x', secret 'db'"):
        rules.candidate_paths("db", "alpha", "x-deploy")
    # Team level, var x-db2: alpha-x's team-level secret db2.
    with pytest.raises(VarNameError, match="team 'alpha-x', secret 'db2'"):
        rules.candidate_paths("x-db2", "alpha", None)
    assert rules.ambiguous()


def test_unambiguous_templates_are_not_flagged():
    rules = LookupRules(
        pipeline=SecretTemplate.parse("/concourse/{{.Team}}/{{.Pipeline}}/{{.Secret}}"),
        team=SecretTemplate.parse("/concourse/{{.Team}}/{{.Secret}}"),
        shared=SecretTemplate.parse("/shared/{{.Secret}}"),
    )
    assert not rules.ambiguous()


def test_a_long_crafted_name_is_checked_in_linear_time():
    # Worst case for backtracking: every '-' is a possible boundary. The bit-set check must not
    # blow up (pytest-timeout would catch a hang; no timing assertion here).
    rules = LookupRules(
        pipeline=SecretTemplate.parse("/{{.Team}}-{{.Pipeline}}-{{.Secret}}"),
        team=SecretTemplate.parse("/{{.Team}}-{{.Secret}}"),
    )
    with pytest.raises(VarNameError):
        rules.candidate_paths("a-" * 200 + "a", "a", "a")


def test_ambiguous_templates_at_the_wire_no_aws_call(seed, connect, proxy):
    seed("/concourse/alpha-x-deploy/db", "alpha-x's secret")
    seed("/concourse/alpha-x-db2", "alpha-x's other secret")
    manager = connect(
        pipeline_secret_template="/concourse/{{.Team}}-{{.Pipeline}}/{{.Secret}}",
        team_secret_template="/concourse/{{.Team}}-{{.Secret}}",
    )
    for var, pipeline in (("db", "x-deploy"), ("x-db2", "deploy"), ("x-db2", None)):
        with pytest.raises(VarNameError, match="team 'alpha-x'"):
            manager.lookup(var, team="alpha", pipeline=pipeline)
    assert get_calls(proxy) == []
    assert proxy.log == []
