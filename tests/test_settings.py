"""Pure unit tests of resolve_settings (spec section 1); never reads the real environment."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pipeline_secrets.config.keys import new_key_text
from pipeline_secrets.config.settings import OPTIONS, OPTIONS_BY_NAME, resolve_settings
from pipeline_secrets.errors import ConfigError
from pipeline_secrets.pure.limits import DocumentLimits

REGION = {"region": "eu-west-1"}

# The spec's table: option name -> (flag, environment variable).
SPEC_TABLE = {
    "access_key": ("--aws-secretsmanager-access-key", "CONCOURSE_AWS_SECRETSMANAGER_ACCESS_KEY"),
    "secret_key": ("--aws-secretsmanager-secret-key", "CONCOURSE_AWS_SECRETSMANAGER_SECRET_KEY"),
    "session_token": ("--aws-secretsmanager-session-token", "CONCOURSE_AWS_SECRETSMANAGER_SESSION_TOKEN"),
    "region": ("--aws-secretsmanager-region", "CONCOURSE_AWS_SECRETSMANAGER_REGION"),
    "pipeline_secret_template": (
        "--aws-secretsmanager-pipeline-secret-template",
        "CONCOURSE_AWS_SECRETSMANAGER_PIPELINE_SECRET_TEMPLATE",
    ),
    "team_secret_template": (
        "--aws-secretsmanager-team-secret-template",
        "CONCOURSE_AWS_SECRETSMANAGER_TEAM_SECRET_TEMPLATE",
    ),
    "shared_secret_template": (
        "--aws-secretsmanager-shared-secret-template",
        "CONCOURSE_AWS_SECRETSMANAGER_SHARED_SECRET_TEMPLATE",
    ),
    "cache_enabled": ("--secret-cache-enabled", "CONCOURSE_SECRET_CACHE_ENABLED"),
    "cache_duration": ("--secret-cache-duration", "CONCOURSE_SECRET_CACHE_DURATION"),
    "cache_duration_notfound": ("--secret-cache-duration-notfound", "CONCOURSE_SECRET_CACHE_DURATION_NOTFOUND"),
    "cache_purge_interval": ("--secret-cache-purge-interval", "CONCOURSE_SECRET_CACHE_PURGE_INTERVAL"),
    "retry_attempts": ("--secret-retry-attempts", "CONCOURSE_SECRET_RETRY_ATTEMPTS"),
    "retry_interval": ("--secret-retry-interval", "CONCOURSE_SECRET_RETRY_INTERVAL"),
}


def resolve(environ=None, **options):
    return resolve_settings(options, environ if environ is not None else {})


def test_config_error_exit_status():
    assert ConfigError.exit_status == 2


# Options of ours, beyond the spec's table: PIPELINE_SECRETS_* variables, never CONCOURSE_*.
OUR_OPTIONS = {
    "cache_max_entries": ("--secret-cache-max-entries", "PIPELINE_SECRETS_CACHE_MAX_ENTRIES"),
    "cache_stale_if_error": ("--secret-cache-stale-if-error", "PIPELINE_SECRETS_CACHE_STALE_IF_ERROR"),
    "lookup_timeout": ("--secret-lookup-timeout", "PIPELINE_SECRETS_LOOKUP_TIMEOUT"),
    "batch": ("--aws-secretsmanager-batch", "PIPELINE_SECRETS_AWS_BATCH"),
    "max_document_bytes": ("--max-document-bytes", "PIPELINE_SECRETS_MAX_DOCUMENT_BYTES"),
    "max_expanded_bytes": ("--max-expanded-bytes", "PIPELINE_SECRETS_MAX_EXPANDED_BYTES"),
    "max_document_nodes": ("--max-document-nodes", "PIPELINE_SECRETS_MAX_DOCUMENT_NODES"),
    "max_document_depth": ("--max-document-depth", "PIPELINE_SECRETS_MAX_DOCUMENT_DEPTH"),
    "max_document_vars": ("--max-document-vars", "PIPELINE_SECRETS_MAX_DOCUMENT_VARS"),
    "max_secret_reads": ("--max-secret-reads", "PIPELINE_SECRETS_MAX_SECRET_READS"),
    "document_timeout": ("--document-timeout", "PIPELINE_SECRETS_DOCUMENT_TIMEOUT"),
    "redis_url": ("--redis-url", "PIPELINE_SECRETS_REDIS_URL"),
    "redis_encryption_key_files": ("--redis-encryption-key-file", "PIPELINE_SECRETS_REDIS_ENCRYPTION_KEY_FILE"),
    "redis_timeout": ("--redis-timeout", "PIPELINE_SECRETS_REDIS_TIMEOUT"),
    "aws_rate_limit": ("--aws-rate-limit", "PIPELINE_SECRETS_AWS_RATE_LIMIT"),
    "team_role_template": ("--aws-secretsmanager-team-role-template", "PIPELINE_SECRETS_TEAM_ROLE_TEMPLATE"),
    "team_role_duration": ("--aws-team-role-duration", "PIPELINE_SECRETS_TEAM_ROLE_DURATION"),
}


def test_flags_and_env_names_match_the_spec_table():
    assert {o.name: (o.flag, o.env) for o in OPTIONS} == {**SPEC_TABLE, **OUR_OPTIONS}


def test_defaults():
    s = resolve(**REGION)
    assert s.region == "eu-west-1"
    assert s.cache_enabled is True
    assert s.cache_duration == 60.0
    assert s.cache_duration_notfound == 10.0
    assert s.cache_purge_interval == 600.0
    assert s.retry_attempts == 5
    assert s.retry_interval == 1.0
    assert s.access_key is None and s.secret_key is None and s.session_token is None
    assert s.pipeline_secret_template == "/concourse/{{.Team}}/{{.Pipeline}}/{{.Secret}}"
    assert s.team_secret_template == "/concourse/{{.Team}}/{{.Secret}}"
    assert s.rules.shared is None
    assert s.shared_secret_template == ""
    assert s.endpoint_url is None


def test_real_environment_is_not_read_when_environ_given(monkeypatch):
    monkeypatch.setenv("CONCOURSE_AWS_SECRETSMANAGER_REGION", "from-real-env")
    monkeypatch.setenv("CONCOURSE_SECRET_RETRY_ATTEMPTS", "9")
    with pytest.raises(ConfigError, match="--aws-secretsmanager-region"):
        resolve_settings({}, {})
    assert resolve_settings(REGION, {}).retry_attempts == 5


@pytest.mark.parametrize(
    "name, env_value, keyword_value, expected_env, expected_keyword",
    [
        ("region", "us-west-2", "ap-south-1", "us-west-2", "ap-south-1"),
        ("retry_attempts", "7", 3, 7, 3),
        ("cache_duration", "2m", "5s", 120.0, 5.0),
        ("cache_enabled", "false", True, False, True),
        ("team_secret_template", "/env/{{.Team}}/{{.Secret}}", "/kw/{{.Team}}/{{.Secret}}",
         "/env/{{.Team}}/{{.Secret}}", "/kw/{{.Team}}/{{.Secret}}"),
    ],
)
def test_keyword_beats_env_beats_default(name, env_value, keyword_value, expected_env, expected_keyword):
    base = {} if name == "region" else dict(REGION)
    environ = {OPTIONS_BY_NAME[name].env: env_value}

    def get(s):
        return s.team_secret_template if name == "team_secret_template" else getattr(s, name)

    assert get(resolve_settings(base, environ)) == expected_env
    assert get(resolve_settings({**base, name: keyword_value}, environ)) == expected_keyword


def test_keyword_none_means_not_given():
    s = resolve_settings({"region": None, "retry_attempts": None}, {
        "CONCOURSE_AWS_SECRETSMANAGER_REGION": "us-east-2",
    })
    assert s.region == "us-east-2"
    assert s.retry_attempts == 5


def test_empty_env_value_counts_as_unset():
    s = resolve_settings(REGION, {"CONCOURSE_SECRET_RETRY_ATTEMPTS": "", "CONCOURSE_SECRET_CACHE_DURATION": ""})
    assert s.retry_attempts == 5
    assert s.cache_duration == 60.0


def test_every_option_is_read_from_its_env_var():
    environ = {
        "CONCOURSE_AWS_SECRETSMANAGER_ACCESS_KEY": "AKIAEXAMPLE",
        "CONCOURSE_AWS_SECRETSMANAGER_SECRET_KEY": "sekrit",
        "CONCOURSE_AWS_SECRETSMANAGER_SESSION_TOKEN": "tok",
        "CONCOURSE_AWS_SECRETSMANAGER_REGION": "eu-central-1",
        "CONCOURSE_AWS_SECRETSMANAGER_PIPELINE_SECRET_TEMPLATE": "/p/{{.Team}}/{{.Pipeline}}/{{.Secret}}",
        "CONCOURSE_AWS_SECRETSMANAGER_TEAM_SECRET_TEMPLATE": "/t/{{.Team}}/{{.Secret}}",
        "CONCOURSE_AWS_SECRETSMANAGER_SHARED_SECRET_TEMPLATE": "/s/{{.Secret}}",
        "CONCOURSE_SECRET_CACHE_ENABLED": "0",
        "CONCOURSE_SECRET_CACHE_DURATION": "1h30m",
        "CONCOURSE_SECRET_CACHE_DURATION_NOTFOUND": "250ms",
        "CONCOURSE_SECRET_CACHE_PURGE_INTERVAL": "0",
        "CONCOURSE_SECRET_RETRY_ATTEMPTS": "1",
        "CONCOURSE_SECRET_RETRY_INTERVAL": "1.5s",
    }
    s = resolve_settings({}, environ)
    assert (s.access_key, s.secret_key, s.session_token) == ("AKIAEXAMPLE", "sekrit", "tok")
    assert s.region == "eu-central-1"
    assert s.pipeline_secret_template == "/p/{{.Team}}/{{.Pipeline}}/{{.Secret}}"
    assert s.team_secret_template == "/t/{{.Team}}/{{.Secret}}"
    assert s.shared_secret_template == "/s/{{.Secret}}"
    assert s.rules.candidate_paths("x", "main", "deploy") == [
        ("pipeline", "/p/main/deploy/x"),
        ("team", "/t/main/x"),
        ("shared", "/s/x"),
    ]
    assert s.cache_enabled is False
    assert s.cache_duration == 5400.0
    assert s.cache_duration_notfound == 0.25
    assert s.cache_purge_interval == 0.0
    assert s.retry_attempts == 1
    assert s.retry_interval == 1.5


# --- region -----------------------------------------------------------------------------------


@pytest.mark.parametrize("options", [{}, {"region": ""}])
def test_region_required(options):
    with pytest.raises(ConfigError) as info:
        resolve_settings(options, {})
    assert "--aws-secretsmanager-region" in str(info.value)
    assert "CONCOURSE_AWS_SECRETSMANAGER_REGION" in str(info.value)
    assert info.value.exit_status == 2


def test_region_not_required_when_told():
    assert resolve_settings({}, {}, require_region=False).region == "us-east-1"


def test_endpoint_url_passed_through():
    assert resolve_settings(REGION, {}, endpoint_url="http://127.0.0.1:1").endpoint_url == "http://127.0.0.1:1"


# --- credentials ------------------------------------------------------------------------------


def test_no_credentials_uses_default_chain():
    s = resolve(**REGION)
    assert (s.access_key, s.secret_key, s.session_token) == (None, None, None)


@pytest.mark.parametrize(
    "given, expected",
    [
        ({"secret_key": "s"}, "must provide aws access key id"),
        ({"session_token": "t"}, "must provide aws access key id"),
        ({"secret_key": "s", "session_token": "t"}, "must provide aws access key id"),
        ({"access_key": "a"}, "must provide aws secret access key"),
        ({"access_key": "a", "session_token": "t"}, "must provide aws secret access key"),
    ],
)
def test_partial_credentials_refused(given, expected):
    with pytest.raises(ConfigError) as info:
        resolve(**REGION, **given)
    assert expected in str(info.value)
    other = {"must provide aws access key id": "must provide aws secret access key",
             "must provide aws secret access key": "must provide aws access key id"}[expected]
    assert other not in str(info.value)


def test_partial_credentials_from_env_refused():
    with pytest.raises(ConfigError, match="must provide aws access key id"):
        resolve({"CONCOURSE_AWS_SECRETSMANAGER_SESSION_TOKEN": "t"}, **REGION)


def test_access_and_secret_key_suffice():
    s = resolve(**REGION, access_key="AKIA", secret_key="s")
    assert (s.access_key, s.secret_key, s.session_token) == ("AKIA", "s", None)


def test_repr_never_shows_credentials():
    s = resolve(**REGION, access_key="AKIA-VISIBLE-ID", secret_key="TOP-SECRET-KEY-VALUE",
                session_token="SESSION-TOKEN-VALUE")
    text = repr(s) + str(s)
    assert "TOP-SECRET-KEY-VALUE" not in text
    assert "SESSION-TOKEN-VALUE" not in text
    assert "AKIA-VISIBLE-ID" not in text
    assert "eu-west-1" in text  # the repr is still useful


# --- durations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, seconds",
    [("1m", 60.0), ("250ms", 0.25), ("1h30m", 5400.0), ("0", 0.0), ("10s", 10.0),
     (timedelta(minutes=2), 120.0), (timedelta(0), 0.0), (30, 30.0), (0.5, 0.5), (0, 0.0)],
)
def test_duration_values(value, seconds):
    s = resolve(**REGION, cache_duration=value, retry_interval=value)
    assert s.cache_duration == seconds
    assert s.retry_interval == seconds


@pytest.mark.parametrize("value", ["1x", "abc", "-1s", "1", "", " ", True, -5, timedelta(seconds=-1)])
def test_bad_duration_keyword_names_the_flag(value):
    with pytest.raises(ConfigError) as info:
        resolve(**REGION, cache_duration_notfound=value)
    assert str(info.value).startswith("--secret-cache-duration-notfound:")
    assert info.value.exit_status == 2


@pytest.mark.parametrize("value", ["1x", "abc", "-1s", "5"])
def test_bad_duration_env_names_the_env_var(value):
    with pytest.raises(ConfigError) as info:
        resolve({"CONCOURSE_SECRET_CACHE_PURGE_INTERVAL": value}, **REGION)
    assert str(info.value).startswith("CONCOURSE_SECRET_CACHE_PURGE_INTERVAL:")
    assert "--secret-cache-purge-interval" not in str(info.value)


def test_negative_duration_message():
    with pytest.raises(ConfigError, match="must not be negative"):
        resolve(**REGION, retry_interval="-1s")


# --- retry attempts ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1", "5", "+2", " 3 ", 10])
def test_good_retry_attempts(value):
    assert resolve(**REGION, retry_attempts=value).retry_attempts == int(value)


@pytest.mark.parametrize("value", ["0", "-3", "abc", "1.5", "", 0, -1, 1.5, 2.0, True, "²"])
def test_bad_retry_attempts_keyword(value):
    with pytest.raises(ConfigError) as info:
        resolve(**REGION, retry_attempts=value)
    assert str(info.value).startswith("--secret-retry-attempts:")


@pytest.mark.parametrize("value", ["0", "-3", "abc", "1.5"])
def test_bad_retry_attempts_env(value):
    with pytest.raises(ConfigError) as info:
        resolve({"CONCOURSE_SECRET_RETRY_ATTEMPTS": value}, **REGION)
    assert str(info.value).startswith("CONCOURSE_SECRET_RETRY_ATTEMPTS:")


# --- booleans ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [("false", False), ("0", False), ("no", False), ("off", False), ("FALSE", False),
     ("true", True), ("1", True), ("yes", True), ("on", True), (" True ", True)],
)
def test_booleans_from_env(value, expected):
    assert resolve({"CONCOURSE_SECRET_CACHE_ENABLED": value}, **REGION).cache_enabled is expected


@pytest.mark.parametrize("value", ["maybe", "2", "enabled"])
def test_bad_boolean_from_env(value):
    with pytest.raises(ConfigError) as info:
        resolve({"CONCOURSE_SECRET_CACHE_ENABLED": value}, **REGION)
    assert str(info.value).startswith("CONCOURSE_SECRET_CACHE_ENABLED:")
    assert "not a boolean" in str(info.value)


def test_boolean_keyword():
    assert resolve(**REGION, cache_enabled=False).cache_enabled is False
    with pytest.raises(ConfigError, match="^--secret-cache-enabled:"):
        resolve(**REGION, cache_enabled="maybe")


# --- templates --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, template, reason",
    [
        ("pipeline_secret_template", "", "secret template should not be empty"),
        ("team_secret_template", "   ", "secret template should not be empty"),
        ("team_secret_template", "/x/{{.Foo}}/{{.Secret}}", "unknown field"),
        ("pipeline_secret_template", "/x/{{ foo }}/{{.Secret}}", "unsupported action"),
        ("shared_secret_template", "/x/{{.Team", "unclosed action"),
        ("shared_secret_template", "/concourse/shared", "must use {{.Secret}}"),
    ],
)
def test_bad_template_keyword_names_the_flag(name, template, reason):
    with pytest.raises(ConfigError) as info:
        resolve(**REGION, **{name: template})
    message = str(info.value)
    assert message.startswith(OPTIONS_BY_NAME[name].flag + ":")
    assert reason in message


def test_bad_template_from_env_names_the_env_var():
    env = {"CONCOURSE_AWS_SECRETSMANAGER_TEAM_SECRET_TEMPLATE": "/t/{{.Team}}"}
    with pytest.raises(ConfigError) as info:
        resolve(env, **REGION)
    assert str(info.value).startswith("CONCOURSE_AWS_SECRETSMANAGER_TEAM_SECRET_TEMPLATE:")
    assert "must use {{.Secret}}" in str(info.value)


def test_empty_shared_template_means_no_shared_lookup():
    s = resolve(**REGION, shared_secret_template="")
    assert s.rules.shared is None
    assert s.shared_secret_template == ""
    assert [level for level, _ in s.rules.candidate_paths("x", "main", "deploy")] == ["pipeline", "team"]


def test_shared_template_configured():
    s = resolve(**REGION, shared_secret_template="/concourse/{{.Secret}}")
    assert s.shared_secret_template == "/concourse/{{.Secret}}"
    assert s.rules.candidate_paths("x", "main")[-1] == ("shared", "/concourse/x")


# --- unknown options --------------------------------------------------------------------------


def test_unknown_option_rejected():
    with pytest.raises(ConfigError, match="unknown option\\(s\\): cache_ttl, regoin"):
        resolve_settings({"region": "r", "regoin": "x", "cache_ttl": 1}, {})


def test_document_limits_default_and_parse_sizes():
    s = resolve(**REGION)
    assert s.limits == DocumentLimits()
    assert (s.limits.max_bytes, s.limits.max_expanded_bytes) == (10 * 1024**2, 32 * 1024**2)
    assert s.max_secret_reads == 2000
    s = resolve(**REGION, max_document_bytes="512KiB", max_expanded_bytes="1MB", max_document_nodes=10,
                max_document_depth="5", max_document_vars=3, document_timeout="1m")
    assert s.limits == DocumentLimits(max_bytes=512 * 1024, max_expanded_bytes=1_000_000, max_nodes=10,
                                      max_depth=5, max_vars=3, max_seconds=60.0)
    with pytest.raises(ConfigError, match="--document-timeout: must be more than 0"):
        resolve(**REGION, document_timeout="0")
    assert resolve({"PIPELINE_SECRETS_MAX_DOCUMENT_BYTES": "4096"}, **REGION).limits.max_bytes == 4096


@pytest.mark.parametrize("raw", ["ten", "-1", "0", "1.5MiB", "10 TB", True])
def test_bad_sizes_name_the_flag(raw):
    with pytest.raises(ConfigError, match="--max-document-bytes"):
        resolve(**REGION, max_document_bytes=raw)


def test_redis_needs_a_key_file_and_the_key_must_be_32_bytes(tmp_path):
    url = "redis://:hunter2-pw@127.0.0.1:6379/0"
    with pytest.raises(ConfigError, match="--redis-encryption-key-file is required with --redis-url") as info:
        resolve(**REGION, redis_url=url)
    assert "hunter2" not in str(info.value)
    short = tmp_path / "short"
    short.write_text("c2hvcnQ=\n")
    with pytest.raises(ConfigError, match="holds 5 bytes, not 32"):
        resolve(**REGION, redis_url=url, redis_encryption_key_files=[str(short)])
    garbage = tmp_path / "garbage"
    garbage.write_text("not base64 !!!")
    with pytest.raises(ConfigError, match="must hold 32 random bytes in base64") as info:
        resolve(**REGION, redis_url=url, redis_encryption_key_files=[str(garbage)])
    assert "not base64" not in str(info.value)
    first, second = tmp_path / "k1", tmp_path / "k2"
    first.write_text(new_key_text())
    second.write_text(new_key_text() + "\n")
    s = resolve({"PIPELINE_SECRETS_REDIS_ENCRYPTION_KEY_FILE": f"{first},{second}"}, **REGION, redis_url=url)
    assert [len(k) for k in s.redis_keys] == [32, 32] and s.redis_url == url
    assert "hunter2" not in repr(s)
    with pytest.raises(ConfigError, match="of no use without --redis-url"):
        resolve(**REGION, redis_encryption_key_files=[str(first)])


@pytest.mark.parametrize("raw", ["http://secret-pw@x", "redis:/secret-pw@x", "secret-pw"])
def test_bad_redis_urls_are_refused_without_repeating_them(raw):
    with pytest.raises(ConfigError) as info:
        resolve(**REGION, redis_url=raw)
    assert str(info.value) == "--redis-url: must be redis://[:PASSWORD@]HOST[:PORT][/DB], rediss://... or unix://PATH"


@pytest.mark.parametrize("raw, kind", [("redis://:secret-pw@h:6379/0?bogus_option=1", "an option"),
                                       ("redis://:secret-pw@h:99999/0", "a bad host, port")])
def test_redis_urls_the_client_would_refuse_later_are_refused_now(raw, kind):
    with pytest.raises(ConfigError, match=f"--redis-url: cannot be used: {kind}") as info:
        resolve(**REGION, redis_url=raw)
    assert "secret-pw" not in str(info.value)


@pytest.mark.parametrize("raw, rate", [("50/s", 50.0), ("3000/m", 50.0), ("2.5", 2.5), ("10 / second", 10.0)])
def test_rates(raw, rate):
    assert resolve(**REGION, aws_rate_limit=raw).aws_rate_limit == rate
    assert resolve(**REGION).aws_rate_limit is None


@pytest.mark.parametrize("raw", ["fast", "-1/s", "50/h"])
def test_bad_rates(raw):
    with pytest.raises(ConfigError, match="--aws-rate-limit"):
        resolve(**REGION, aws_rate_limit=raw)
