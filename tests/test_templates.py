"""Pure unit tests of secret path templates and the lookup rules (spec sections 1 and 2)."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings, strategies as st

from pipeline_secrets.errors import ScopeNameError, VarNameError
from pipeline_secrets.pure.templates import LookupRules, SecretTemplate, check_scope

PIPELINE_DEFAULT = "/concourse/{{.Team}}/{{.Pipeline}}/{{.Secret}}"
TEAM_DEFAULT = "/concourse/{{.Team}}/{{.Secret}}"
SHARED = "/concourse/{{.Secret}}"


def rules(pipeline: str = PIPELINE_DEFAULT, team: str = TEAM_DEFAULT, shared: str | None = None) -> LookupRules:
    return LookupRules(
        pipeline=SecretTemplate.parse(pipeline),
        team=SecretTemplate.parse(team),
        shared=SecretTemplate.parse(shared) if shared is not None else None,
    )


# --- SecretTemplate.parse ---------------------------------------------------------------------


def test_default_templates_parse_into_text_and_fields():
    pipeline = SecretTemplate.parse(PIPELINE_DEFAULT)
    assert pipeline.parts == (
        ("text", "/concourse/"),
        ("field", "Team"),
        ("text", "/"),
        ("field", "Pipeline"),
        ("text", "/"),
        ("field", "Secret"),
    )
    assert pipeline.text == PIPELINE_DEFAULT
    team = SecretTemplate.parse(TEAM_DEFAULT)
    assert team.parts == (("text", "/concourse/"), ("field", "Team"), ("text", "/"), ("field", "Secret"))


def test_whitespace_inside_braces_is_allowed():
    template = SecretTemplate.parse("/x/{{ .Team }}/{{  .Secret\t}}")
    assert template.render(team="main", pipeline=None, secret="s") == "/x/main/s"


def test_trim_markers_trim_surrounding_whitespace():
    template = SecretTemplate.parse("/a/  \n {{- .Team -}}  \t /{{.Secret}}")
    assert template.parts == (("text", "/a/"), ("field", "Team"), ("text", "/"), ("field", "Secret"))
    assert template.render(team="main", pipeline=None, secret="s") == "/a/main/s"


def test_whitespace_without_trim_markers_is_kept():
    template = SecretTemplate.parse("/a/ {{ .Team }} /{{.Secret}}")
    assert template.render(team="main", pipeline=None, secret="s") == "/a/ main /s"


def test_only_the_marked_side_is_trimmed():
    template = SecretTemplate.parse("/a/ {{- .Team }} /{{.Secret}}")
    assert template.render(team="main", pipeline=None, secret="s") == "/a/main /s"
    template = SecretTemplate.parse("/a/ {{ .Team -}} /{{.Secret}}")
    assert template.render(team="main", pipeline=None, secret="s") == "/a/ main/s"


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_template_is_refused(text):
    with pytest.raises(ValueError, match="^secret template should not be empty$"):
        SecretTemplate.parse(text)


@pytest.mark.parametrize("text", ["/x/{{.Foo}}/{{.Secret}}", "/x/{{.team}}/{{.Secret}}", "{{ .Name }}{{.Secret}}"])
def test_unknown_field_is_refused(text):
    with pytest.raises(ValueError, match=r"unknown field '\.\w+'") as info:
        SecretTemplate.parse(text)
    assert text in str(info.value)


@pytest.mark.parametrize(
    "text",
    [
        "/x/{{ foo }}/{{.Secret}}",
        "/x/{{.Team | printf}}/{{.Secret}}",
        "/x/{{.Team.Name}}/{{.Secret}}",
        "/x/{{ }}/{{.Secret}}",
        "/x/{{-.Team}}/{{.Secret}}",  # Go requires a space after the trim marker
        "/x/{{/* comment */}}{{.Secret}}",
    ],
)
def test_unsupported_action_is_refused(text):
    with pytest.raises(ValueError, match="unsupported action") as info:
        SecretTemplate.parse(text)
    assert "only {{.Team}}, {{.Pipeline}} and {{.Secret}} are allowed" in str(info.value)


@pytest.mark.parametrize("text", ["/x/{{.Team", "/x/{{.Secret}}/{{.Team", "{{"])
def test_unclosed_action_is_refused(text):
    with pytest.raises(ValueError, match="unclosed action"):
        SecretTemplate.parse(text)


@pytest.mark.parametrize("text", ["/concourse/{{.Team}}", "/concourse/{{.Team}}/{{.Pipeline}}/x", "/fixed/path"])
def test_template_without_secret_is_refused(text):
    with pytest.raises(ValueError, match=r"must use \{\{\.Secret\}\}"):
        SecretTemplate.parse(text)


def test_pipeline_dependent():
    assert SecretTemplate.parse(PIPELINE_DEFAULT).pipeline_dependent is True
    assert SecretTemplate.parse("/ci/{{ .Pipeline }}/{{.Secret}}").pipeline_dependent is True
    assert SecretTemplate.parse(TEAM_DEFAULT).pipeline_dependent is False
    assert SecretTemplate.parse(SHARED).pipeline_dependent is False


def test_render_fills_every_occurrence():
    template = SecretTemplate.parse("/{{.Team}}/{{.Pipeline}}/{{.Secret}}/{{.Team}}")
    assert template.render(team="t", pipeline="p", secret="s/x") == "/t/p/s/x/t"


def test_render_with_missing_pipeline_leaves_the_field_empty():
    template = SecretTemplate.parse(PIPELINE_DEFAULT)
    assert template.render(team="t", pipeline=None, secret="s") == "/concourse/t//s"


# --- LookupRules: candidate paths -------------------------------------------------------------


def test_candidate_paths_order_pipeline_team_shared():
    assert rules(shared=SHARED).candidate_paths("token", "main", "deploy") == [
        ("pipeline", "/concourse/main/deploy/token"),
        ("team", "/concourse/main/token"),
        ("shared", "/concourse/token"),
    ]


def test_one_off_build_skips_pipeline_dependent_templates():
    r = rules(shared=SHARED)
    assert r.candidate_paths("token", "main", None) == [
        ("team", "/concourse/main/token"),
        ("shared", "/concourse/token"),
    ]
    assert [level for level, _ in r.skipped(None)] == ["pipeline"]
    assert r.skipped("deploy") == []


def test_one_off_build_without_shared_asks_the_team_path_only():
    assert rules().candidate_paths("token", "main") == [("team", "/concourse/main/token")]


def test_shared_skipped_when_not_configured():
    assert rules().candidate_paths("token", "main", "deploy") == [
        ("pipeline", "/concourse/main/deploy/token"),
        ("team", "/concourse/main/token"),
    ]


def test_lookup_paths_leave_the_secret_placeholder():
    r = rules(shared=SHARED)
    assert r.lookup_paths("main", "deploy") == [
        "/concourse/main/deploy/{{.Secret}}",
        "/concourse/main/{{.Secret}}",
        "/concourse/{{.Secret}}",
    ]
    assert r.lookup_paths("main") == ["/concourse/main/{{.Secret}}", "/concourse/{{.Secret}}"]


def test_custom_templates():
    r = rules(pipeline="/ci/{{.Team}}-{{.Pipeline}}/{{.Secret}}", team="{{.Team}}/secrets/{{.Secret}}")
    assert r.candidate_paths("db", "main", "deploy") == [
        ("pipeline", "/ci/main-deploy/db"),
        ("team", "main/secrets/db"),
    ]
    assert r.candidate_paths("db", "main") == [("team", "main/secrets/db")]


def test_team_template_using_pipeline_is_skipped_without_pipeline():
    r = rules(team="/t/{{.Team}}/{{.Pipeline}}/{{.Secret}}", shared="/shared/{{.Secret}}")
    assert r.candidate_paths("x", "main") == [("shared", "/shared/x")]


# --- name rules -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["café", "my secret", "a:b", "x\ny", "tab\there", "a*b", "q?", "日本"])
def test_names_outside_secrets_manager_charset_are_refused(name):
    with pytest.raises(VarNameError) as info:
        rules().candidate_paths(name, "main", "deploy")
    message = str(info.value)
    assert f"var '{name}'" in message
    assert "characters Secrets Manager does not allow" in message


@pytest.mark.parametrize("name", ["a_b+c=d.e@f-g", "A1", "x.y"])
def test_names_inside_the_charset_are_accepted(name):
    assert rules().candidate_paths(name, "main", "deploy")[0] == ("pipeline", f"/concourse/main/deploy/{name}")


def test_path_of_exactly_512_characters_is_accepted_and_513_refused():
    prefix = "/concourse/main/deploy/"
    ok = "s" * (512 - len(prefix))
    paths = rules().candidate_paths(ok, "main", "deploy")
    assert len(paths[0][1]) == 512
    with pytest.raises(VarNameError, match="longer than Secrets Manager's 512 characters"):
        rules().candidate_paths(ok + "s", "main", "deploy")


def test_long_path_refused_in_one_off_build_too():
    prefix = "/concourse/main/"
    assert len(rules().candidate_paths("s" * (512 - len(prefix)), "main")[0][1]) == 512
    with pytest.raises(VarNameError, match="512"):
        rules().candidate_paths("s" * (513 - len(prefix)), "main")


# --- scope safety (spec 2.6) ------------------------------------------------------------------


def test_team_level_name_reaching_another_pipeline_is_refused():
    with pytest.raises(VarNameError) as info:
        rules().candidate_paths("other-pipeline/x", "main", "deploy")
    message = str(info.value)
    assert "'other-pipeline/x'" in message
    assert "/concourse/main/other-pipeline/x" in message
    assert "pipeline 'other-pipeline'" in message
    assert "own team's and pipeline's secrets" in message


def test_one_off_build_cannot_reach_a_pipeline_secret():
    with pytest.raises(VarNameError, match="pipeline 'other-pipeline'"):
        rules().candidate_paths("other-pipeline/x", "main", None)


def test_own_pipeline_through_team_path_is_allowed():
    assert rules().candidate_paths("deploy/x", "main", "deploy") == [
        ("pipeline", "/concourse/main/deploy/deploy/x"),
        ("team", "/concourse/main/deploy/x"),
    ]


def test_nested_name_at_pipeline_level_is_refused_when_team_path_is_another_pipeline():
    # The pipeline path /concourse/main/deploy/a/b is deploy's own; but the team path
    # /concourse/main/a/b is pipeline a's secret b: the var is refused whole.
    with pytest.raises(VarNameError) as info:
        rules().candidate_paths("a/b", "main", "deploy")
    message = str(info.value)
    assert "var 'a/b'" in message
    assert "team path '/concourse/main/a/b'" in message
    assert "pipeline 'a'" in message
    assert "secret 'b'" in message


def test_shared_template_cannot_reach_another_team():
    # A pipeline template that cannot collide with the team one isolates the shared check.
    r = rules(pipeline="/pipelines/{{.Team}}/{{.Pipeline}}/{{.Secret}}", shared=SHARED)
    with pytest.raises(VarNameError) as info:
        r.candidate_paths("other-team/x", "main", "deploy")
    message = str(info.value)
    assert "var 'other-team/x'" in message
    assert "shared path '/concourse/other-team/x'" in message
    assert "team 'other-team'" in message


def test_shared_template_may_reach_own_team():
    r = rules(pipeline="/pipelines/{{.Team}}/{{.Pipeline}}/{{.Secret}}", shared=SHARED)
    assert r.candidate_paths("main/x", "main", "deploy") == [
        ("pipeline", "/pipelines/main/deploy/main/x"),
        ("team", "/concourse/main/main/x"),
        ("shared", "/concourse/main/x"),
    ]
    assert r.candidate_paths("main/x", "main") == [
        ("team", "/concourse/main/main/x"),
        ("shared", "/concourse/main/x"),
    ]


def test_defaults_with_shared_own_team_name_depends_on_team_path_collision():
    # With the default layout, team-level 'main/x' is /concourse/main/main/x: pipeline main's
    # secret x. It is allowed from pipeline main only; the shared path /concourse/main/x is the
    # team's own.
    r = rules(shared=SHARED)
    assert r.candidate_paths("main/x", "main", "main")[-1] == ("shared", "/concourse/main/x")
    with pytest.raises(VarNameError, match="pipeline 'main' of team 'main'"):
        r.candidate_paths("main/x", "main", "deploy")
    with pytest.raises(VarNameError):
        r.candidate_paths("main/x", "main", None)


def test_defaults_with_shared_other_team_refused():
    with pytest.raises(VarNameError, match="'other-team/x' refused"):
        rules(shared=SHARED).candidate_paths("other-team/x", "main", "main")


def test_flat_names_never_collide():
    assert rules(shared=SHARED).candidate_paths("x", "main", None) == [
        ("team", "/concourse/main/x"),
        ("shared", "/concourse/x"),
    ]


# --- check_scope ------------------------------------------------------------------------------


@pytest.mark.parametrize("team", ["", "a/b", "my team", "x\n", "/"])
def test_bad_team_names(team):
    with pytest.raises(ScopeNameError, match="invalid team name"):
        check_scope(team, "deploy")
    with pytest.raises(ScopeNameError):
        rules().candidate_paths("x", team, "deploy")
    with pytest.raises(ScopeNameError):
        rules().lookup_paths(team, "deploy")


@pytest.mark.parametrize("pipeline", ["", "a/b", "my pipeline", "\t"])
def test_bad_pipeline_names(pipeline):
    with pytest.raises(ScopeNameError, match="invalid pipeline name"):
        check_scope("main", pipeline)
    with pytest.raises(ScopeNameError):
        rules().candidate_paths("x", "main", pipeline)


def test_good_scope_names():
    check_scope("main", None)
    check_scope("main", "deploy-1_x")


def test_scope_name_error_exit_status():
    assert ScopeNameError.exit_status == 2


# --- property ---------------------------------------------------------------------------------

_safe = st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(team=_safe, pipeline=_safe, secret=_safe)
def test_safe_names_always_have_candidate_paths(team, pipeline, secret):
    r = rules(shared=SHARED)
    paths = r.candidate_paths(secret, team, pipeline)
    assert paths[0] == ("pipeline", r.pipeline.render(team=team, pipeline=pipeline, secret=secret))
    assert paths[0][1] == f"/concourse/{team}/{pipeline}/{secret}"
    assert [level for level, _ in paths] == ["pipeline", "team", "shared"]
    assert r.candidate_paths(secret, team, None)[0] == ("team", f"/concourse/{team}/{secret}")
