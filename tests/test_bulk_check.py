"""``check``: many pipeline files at once, against moto through the fault proxy."""

from __future__ import annotations

import io
import json

import pytest
from conftest import restricted_policy
from ops_support import Cli, assert_fails_cleanly

from pipeline_secrets.tools.bulk import FileReport
from pipeline_secrets.tools.bulk_output import progress

TEAM = "main"
PLANTED = {"p07.yml": ["planted-a"], "p23.yml": ["planted-b", "planted-c"], "nested/p41.yaml": ["planted-d"]}
PIPELINE_TEMPLATE = """\
resources:
- name: repo
  source:
    uri: https://((git-user)):((common-token))@example.com/{name}.git
jobs:
- name: deploy
  plan:
  - task: run
    params:
      DB_PASSWORD: ((db.password))
      OWN: ((own-secret))
{extra}"""


@pytest.fixture
def cli(proxy):
    return Cli(proxy)


@pytest.fixture
def fifty_pipelines(tmp_path, seed):
    """50 pipeline files (10 in a subdirectory) whose vars all resolve, except the planted ones."""
    root = tmp_path / "pipelines"
    (root / "nested").mkdir(parents=True)
    (root / "README.md").write_text("not a pipeline: ((ignored))")
    seed("/concourse/main/common-token", "common-secret-value")
    seed("/concourse/main/git-user", "ci-bot")
    seed("/concourse/main/db", {"password": "db-secret-value"})
    for number in range(50):
        name = f"p{number:02d}"
        relative = f"nested/{name}.yaml" if number >= 40 else f"{name}.yml"
        extra = "".join(f"      X_{i}: prefix-(({var}))\n" for i, var in enumerate(PLANTED.get(relative, [])))
        (root / relative).write_text(PIPELINE_TEMPLATE.format(name=name, extra=extra), encoding="utf-8")
        seed(f"/concourse/main/{name}/own-secret", f"own-secret-value-{name}")
    return root


def requested_ids(proxy) -> list[str]:
    return [i for call in proxy.log if call.operation in ("GetSecretValue", "BatchGetSecretValue")
            for i in call.secret_ids]


def test_fifty_files_report_exactly_the_planted_undefined_vars(cli, proxy, fifty_pipelines):
    result = cli("check", str(fifty_pipelines), "--team", TEAM, "--pipeline-from-filename", "--json")
    assert result.exit_code == 1, result.stderr
    report = json.loads(result.stdout)
    assert len(report["files"]) == 50
    undefined = {f["file"].removeprefix(f"{fifty_pipelines}/"): f["undefined"] for f in report["files"] if f["undefined"]}
    assert undefined == PLANTED
    assert [f["errors"] for f in report["files"] if f["errors"]] == []
    assert {f["pipeline"] for f in report["files"]} == {f"p{n:02d}" for n in range(50)}
    assert all(f["vars"] == 4 + len(f["undefined"]) for f in report["files"])
    assert report["summary"] == {"files": 50, "failed_files": 3, "vars": 204, "undefined": 4, "errors": 0}
    assert report["ok"] is False
    assert "secret-value" not in result.stdout + result.stderr
    ids = requested_ids(proxy)
    assert len(ids) == len(set(ids))  # shared secrets read once, whatever the number of files


def test_plain_progress_lines_and_a_summary_table_off_a_terminal(cli, fifty_pipelines):
    result = cli("check", str(fifty_pipelines), "--team", TEAM, "--pipeline-from-filename")
    assert result.exit_code == 1
    progress_lines = result.stderr.splitlines()
    assert len(progress_lines) == 50
    assert progress_lines[0] == f"[1/50] {fifty_pipelines}/nested/p40.yaml: ok"
    assert f"{fifty_pipelines}/p23.yml: FAIL (2 undefined, 0 errors)" in result.stderr
    assert "\x1b[" not in result.stdout + result.stderr  # no escape codes in a log
    table = {line.split()[1]: line for line in result.stdout.splitlines() if line.startswith("│ /")}
    assert len(table) == 50
    assert "planted-b, planted-c" in table[f"{fifty_pipelines}/p23.yml"]
    assert "FAIL" in table[f"{fifty_pipelines}/p07.yml"] and "ok" in table[f"{fifty_pipelines}/p08.yml"]
    assert "50 files, 204 vars: 4 undefined, 0 errors in 3 files" in result.stdout
    assert "/concourse/main/{{.Pipeline}}/{{.Secret}}, /concourse/main/{{.Secret}}" in result.stdout
    assert "secret-value" not in result.stdout + result.stderr


def test_all_resolvable_exits_0(cli, seed, tmp_path):
    seed("/concourse/main/deploy/token", "v")
    (tmp_path / "a.yml").write_text("a: ((token))\n")
    (tmp_path / "b.yml").write_text("b: no vars at all\n")
    result = cli("check", str(tmp_path / "a.yml"), str(tmp_path / "b.yml"), "--team", TEAM, "--pipeline", "deploy")
    assert result.exit_code == 0, result.stdout
    assert "2 files, 1 vars: 0 undefined, 0 errors in 0 files" in result.stdout


def test_broken_files_and_failing_lookups_are_errors_and_do_not_hide_other_files(cli, seed, proxy, tmp_path):
    seed("/concourse/main/db", {"password": "db-secret-value"})
    seed("/concourse/other/x", "other-secret-value")
    files = {
        "good.yml": "a: ((db.password))\n",
        "invalid-yaml.yml": "a: [\n",
        "syntax.yml": "a: ((bad..field))\n",
        "missing-field.yml": "a: ((db.user))\n",
        "map-in-string.yml": "a: x-((db))\n",
        "refused.yml": "a: ((other-pipeline/x))\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "not-utf8.yml").write_bytes(b"a: \xff\xfe\n")
    result = cli("check", str(tmp_path), "--team", TEAM, "--json")
    assert result.exit_code == 1
    errors = {f["file"].rsplit("/", 1)[1]: f["errors"] for f in json.loads(result.stdout)["files"]}
    assert errors["good.yml"] == []
    assert errors["invalid-yaml.yml"][0].startswith("invalid YAML")
    assert errors["syntax.yml"] == ["invalid var 'bad..field': empty field"]
    assert errors["missing-field.yml"] == ["missing field 'user' in var: db.user"]
    assert errors["map-in-string.yml"] == ["cannot interpolate non-primitive value (map) from var: db"]
    assert "refused" in errors["refused.yml"][0]
    assert errors["not-utf8.yml"] == [f"'{tmp_path}/not-utf8.yml' is not UTF-8 text"]
    assert "secret-value" not in result.stdout + result.stderr


def test_a_denied_path_is_an_error_naming_path_and_answer(cli, seed, proxy, tmp_path):
    seed("/concourse/main/token", "team-value")
    (tmp_path / "deploy.yml").write_text("a: ((token))\n")
    proxy.set_policy(restricted_policy("main/other"))
    result = cli("check", str(tmp_path), "--team", TEAM, "--pipeline-from-filename", "--json")
    assert result.exit_code == 1
    [report] = json.loads(result.stdout)["files"]
    assert report["pipeline"] == "deploy"
    assert "reading secret '/concourse/main/deploy/token' failed" in report["errors"][0]
    assert "AccessDeniedException" in report["errors"][0]


def test_a_file_name_that_is_no_pipeline_name_is_that_files_error(cli, tmp_path):
    (tmp_path / "has space.yml").write_text("a: ((x))\n")
    result = cli("check", str(tmp_path), "--team", TEAM, "--pipeline-from-filename", "--json")
    assert result.exit_code == 1
    assert "invalid pipeline name 'has space'" in json.loads(result.stdout)["files"][0]["errors"][0]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["DIR", "--pipeline", "p", "--pipeline-from-filename"], "exclude each other"),
        (["EMPTY"], "no pipeline files"),
        (["DIR", "--team", "a/b"], "Invalid value for '--team' / '-t': invalid team name"),
    ],
)
def test_usage_errors_exit_2_before_any_aws_call(cli, proxy, tmp_path, args, expected):
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "a.yml").write_text("a: ((x))\n")
    (tmp_path / "empty").mkdir()
    argv = [str(tmp_path / a.lower()) if a in ("DIR", "EMPTY") else a for a in args]
    team = [] if "--team" in args else ["--team", TEAM]
    result = cli("check", *argv, *team)
    assert_fails_cleanly(result, 2)
    assert expected in result.stderr
    assert proxy.log == []


def test_a_path_that_does_not_exist_is_a_usage_error(cli, proxy, tmp_path):
    result = cli("check", str(tmp_path / "nope"), "--team", TEAM)
    assert result.exit_code == 2
    assert "does not exist" in result.stderr
    assert proxy.log == []


def test_progress_bar_on_a_terminal():
    stream = io.StringIO()
    with progress(3, stream, terminal=True) as done:
        for name in ("a.yml", "b.yml", "c.yml"):
            done(FileReport(name, None, 1))
    output = stream.getvalue()
    assert "\x1b[" in output and "━" in output  # drawn in place with escape codes
    assert "3/3" in output and "c.yml" in output
    assert "[1/3]" not in output
