"""Configuration: one table of options, resolved once into an immutable, validated ``Settings``.

The CLI builds its flags from ``OPTIONS`` and the library takes the same names as keywords, so a
flag, its environment variable and its keyword can never drift apart. Precedence: an explicit value
(flag or keyword), then the ``CONCOURSE_*`` environment variable, then the default.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..pure.limits import (
    DEFAULT_LIMITS,
    MAX_BYTES_FLAG,
    MAX_DEPTH_FLAG,
    MAX_EXPANDED_BYTES_FLAG,
    MAX_NODES_FLAG,
    MAX_SECONDS_FLAG,
    MAX_VARS_FLAG,
    DocumentLimits,
)
from ..pure.templates import LookupRules, SecretTemplate
from .durations import to_seconds
from .keys import KEY_FILE_FLAG, read_key_file
from .roles import ROLE_TEMPLATE_FLAG, RoleTemplate, TeamRole, TeamRoles


@dataclass(frozen=True)
class Option:
    name: str  # the library keyword and the Settings field
    flag: str
    env: str
    default: Any
    kind: str  # "str", "secret", "template", "bool", "duration", "count", "choice", "size", "url", "keyfiles", "rate", "role"
    help: str


def _o(name: str, flag: str, env: str, default: Any, kind: str, help: str) -> Option:
    """An option Concourse has too: its environment variable is CONCOURSE_<env>."""
    return Option(name, flag, "CONCOURSE_" + env, default, kind, help)


def _ours(name: str, flag: str, env: str, default: Any, kind: str, help: str) -> Option:
    """An option of ours only: its environment variable is PIPELINE_SECRETS_<env>."""
    return Option(name, flag, "PIPELINE_SECRETS_" + env, default, kind, help)


BATCH_MODES = ("auto", "on", "off")


OPTIONS: tuple[Option, ...] = (
    _o("access_key", "--aws-secretsmanager-access-key", "AWS_SECRETSMANAGER_ACCESS_KEY", None, "secret",
       "AWS access key id; all three credentials empty: the AWS SDK's default chain."),
    _o("secret_key", "--aws-secretsmanager-secret-key", "AWS_SECRETSMANAGER_SECRET_KEY", None, "secret",
       "AWS secret access key."),
    _o("session_token", "--aws-secretsmanager-session-token", "AWS_SECRETSMANAGER_SESSION_TOKEN", None,
       "secret", "AWS session token."),
    _o("region", "--aws-secretsmanager-region", "AWS_SECRETSMANAGER_REGION", None, "str",
       "AWS region of the secrets (required unless --dev)."),
    _o("pipeline_secret_template", "--aws-secretsmanager-pipeline-secret-template",
       "AWS_SECRETSMANAGER_PIPELINE_SECRET_TEMPLATE", "/concourse/{{.Team}}/{{.Pipeline}}/{{.Secret}}",
       "template", "Path of pipeline-level secrets."),
    _o("team_secret_template", "--aws-secretsmanager-team-secret-template",
       "AWS_SECRETSMANAGER_TEAM_SECRET_TEMPLATE", "/concourse/{{.Team}}/{{.Secret}}", "template",
       "Path of team-level secrets."),
    _o("shared_secret_template", "--aws-secretsmanager-shared-secret-template",
       "AWS_SECRETSMANAGER_SHARED_SECRET_TEMPLATE", "", "template",
       "Path of secrets shared by all teams; empty: no shared lookup."),
    _o("cache_enabled", "--secret-cache-enabled", "SECRET_CACHE_ENABLED", True, "bool",
       "Cache secrets (and not-found answers) in memory."),
    _o("cache_duration", "--secret-cache-duration", "SECRET_CACHE_DURATION", "1m", "duration",
       "How long a found secret is cached; 0 disables."),
    _o("cache_duration_notfound", "--secret-cache-duration-notfound", "SECRET_CACHE_DURATION_NOTFOUND",
       "10s", "duration", "How long a not-found answer is cached; 0 disables."),
    _o("cache_purge_interval", "--secret-cache-purge-interval", "SECRET_CACHE_PURGE_INTERVAL", "10m",
       "duration", "How often expired cache entries are purged."),
    _o("retry_attempts", "--secret-retry-attempts", "SECRET_RETRY_ATTEMPTS", 5, "count",
       "Attempts in all for a retryable AWS failure (1 = no retry)."),
    _o("retry_interval", "--secret-retry-interval", "SECRET_RETRY_INTERVAL", "1s", "duration",
       "Wait between attempts (grows with jitter under throttling)."),
    _ours("cache_max_entries", "--secret-cache-max-entries", "CACHE_MAX_ENTRIES", 10000, "count",
          "Most cached paths kept; the least recently used go first."),
    _ours("cache_stale_if_error", "--secret-cache-stale-if-error", "CACHE_STALE_IF_ERROR", "0", "duration",
          "When AWS throttles, times out or fails (5xx), serve a value fetched at most this long ago; 0: off."),
    _ours("lookup_timeout", "--secret-lookup-timeout", "LOOKUP_TIMEOUT", "30s", "duration",
          "Deadline of one lookup, retries and waits included."),
    _ours("batch", "--aws-secretsmanager-batch", "AWS_BATCH", "auto", "choice",
          "BatchGetSecretValue for many paths at once: auto (fall back to GetSecretValue when denied), on, off."),
    _ours("max_document_bytes", MAX_BYTES_FLAG, "MAX_DOCUMENT_BYTES", "10MiB", "size",
          "Largest document accepted (e.g. 10MiB, 512KiB, or bytes)."),
    _ours("max_expanded_bytes", MAX_EXPANDED_BYTES_FLAG, "MAX_EXPANDED_BYTES", "32MiB", "size",
          "Most text a document may expand to, YAML aliases included; bounds the interpolated output too."),
    _ours("max_document_nodes", MAX_NODES_FLAG, "MAX_DOCUMENT_NODES", DEFAULT_LIMITS.max_nodes, "count",
          "Most values (scalars and collections) in a document, YAML aliases expanded."),
    _ours("max_document_depth", MAX_DEPTH_FLAG, "MAX_DOCUMENT_DEPTH", DEFAULT_LIMITS.max_depth, "count",
          "Deepest nesting of a document, YAML aliases included."),
    _ours("max_document_vars", MAX_VARS_FLAG, "MAX_DOCUMENT_VARS", DEFAULT_LIMITS.max_vars, "count",
          "Most distinct ((var)) placeholders in one document."),
    _ours("max_secret_reads", "--max-secret-reads", "MAX_SECRET_READS", 2000, "count",
          "Most secret paths one lookup or document may ask AWS for (cache misses, all rounds)."),
    _ours("document_timeout", MAX_SECONDS_FLAG, "DOCUMENT_TIMEOUT", "20s", "duration",
          "Longest each step of handling a document (reading, interpolating, writing) may take."),
    _ours("redis_url", "--redis-url", "REDIS_URL", None, "url",
          "The shared tier of a fleet of nodes: redis://[:PASSWORD@]HOST:PORT/DB, rediss:// (TLS) or unix://PATH; "
          "none: every node on its own."),
    _ours("redis_encryption_key_files", "--redis-encryption-key-file", "REDIS_ENCRYPTION_KEY_FILE", None, "keyfiles",
          "File of 32 random bytes in base64 that seals what Redis holds; repeat to rotate (the first writes, all read)."),
    _ours("redis_timeout", "--redis-timeout", "REDIS_TIMEOUT", "100ms", "duration",
          "Longest a Redis call may take before the node goes on without Redis."),
    _ours("team_role_template", ROLE_TEMPLATE_FLAG, "TEAM_ROLE_TEMPLATE", None, "role",
          "Sign each team's lookups with its own IAM role, e.g. arn:aws:iam::123456789012:role/ci-{{.Team}}, "
          "assumed with STS using the node's credentials (a teams-file role_arn overrides it); none: one identity."),
    _ours("team_role_duration", "--aws-team-role-duration", "TEAM_ROLE_DURATION", "1h", "duration",
          "Lifetime asked of each team role's session (15m to 12h); it is renewed before it ends."),
    _ours("aws_rate_limit", "--aws-rate-limit", "AWS_RATE_LIMIT", None, "rate",
          "Most AWS calls per operation (GetSecretValue, BatchGetSecretValue), e.g. 50/s, shared by the fleet "
          "through Redis (else per process); lookups wait for a call within their deadline. None: no limit."),
)
OPTIONS_BY_NAME = {option.name: option for option in OPTIONS}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Settings:
    """Validated configuration; built by ``resolve_settings``, never by hand-parsing elsewhere."""

    region: str
    rules: LookupRules
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    cache_enabled: bool = True
    cache_duration: float = 60.0
    cache_duration_notfound: float = 10.0
    cache_purge_interval: float = 600.0
    retry_attempts: int = 5
    retry_interval: float = 1.0
    cache_max_entries: int = 10000
    cache_stale_if_error: float = 0.0
    lookup_timeout: float = 30.0
    batch: str = "auto"
    limits: DocumentLimits = DEFAULT_LIMITS
    max_secret_reads: int = 2000
    redis_url: str | None = field(default=None, repr=False)  # its password, if any
    redis_keys: tuple[bytes, ...] = field(default=(), repr=False)
    redis_timeout: float = 0.1
    aws_rate_limit: float | None = None  # calls per second, per operation
    roles: TeamRoles = TeamRoles()  # with roles, no secret is read with the node's own identity
    team_role_duration: float = 3600.0
    # Only the embedded emulator sets this; users point the SDK elsewhere with AWS_ENDPOINT_URL*.
    endpoint_url: str | None = None

    @property
    def pipeline_secret_template(self) -> str:
        return self.rules.pipeline.text

    @property
    def team_secret_template(self) -> str:
        return self.rules.team.text

    @property
    def shared_secret_template(self) -> str:
        return self.rules.shared.text if self.rules.shared else ""


def resolve_settings(
    options: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    *,
    endpoint_url: str | None = None,
    require_region: bool = True,
    team_roles: Mapping[str, TeamRole] | None = None,
) -> Settings:
    """Apply precedence and validate; raises ``ConfigError`` naming the flag (or variable) at fault.
    ``team_roles`` are the teams' own roles (the teams file's ``role_arn``), over the template."""
    unknown = set(options) - set(OPTIONS_BY_NAME)
    if unknown:
        raise ConfigError(f"unknown option(s): {', '.join(sorted(unknown))}")
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for option in OPTIONS:
        raw, where = options.get(option.name), option.flag
        if raw is None and env.get(option.env) not in (None, ""):
            raw, where = env[option.env], option.env
        if raw is None:
            raw, where = option.default, option.flag
        values[option.name] = _convert(option, raw, where)

    region = values.pop("region")
    if not region:
        if require_region:
            raise ConfigError(
                f"{OPTIONS_BY_NAME['region'].flag} is required "
                f"(or set {OPTIONS_BY_NAME['region'].env})"
            )
        region = "us-east-1"
    check_credentials(values)
    rules = LookupRules(
        pipeline=values.pop("pipeline_secret_template"),
        team=values.pop("team_secret_template"),
        shared=values.pop("shared_secret_template"),
    )
    limits = DocumentLimits(
        max_bytes=values.pop("max_document_bytes"),
        max_expanded_bytes=values.pop("max_expanded_bytes"),
        max_nodes=values.pop("max_document_nodes"),
        max_depth=values.pop("max_document_depth"),
        max_vars=values.pop("max_document_vars"),
        max_seconds=values.pop("document_timeout"),
    )
    roles = TeamRoles(values.pop("team_role_template")).with_overrides(team_roles or {})
    if not 900 <= values["team_role_duration"] <= 43200:
        raise ConfigError(f"{OPTIONS_BY_NAME['team_role_duration'].flag}: must be between 15m and 12h (STS's range)")
    key_files = values.pop("redis_encryption_key_files")
    if values["redis_url"] and not key_files:
        raise ConfigError(
            f"{KEY_FILE_FLAG} is required with --redis-url: Redis must never hold a secret in clear "
            "(make one with: head -c 32 /dev/urandom | base64 > key)"
        )
    if key_files and not values["redis_url"]:
        raise ConfigError(f"{KEY_FILE_FLAG} is of no use without --redis-url")
    values["redis_keys"] = tuple(read_key_file(Path(path)) for path in key_files or ())
    # Every other option is a Settings field of the same name.
    return Settings(region=region, rules=rules, limits=limits, endpoint_url=endpoint_url, roles=roles, **values)


def _convert(option: Option, raw: Any, where: str) -> Any:
    try:
        if option.kind == "template":
            if option.name == "shared_secret_template":
                return None if raw == "" else SecretTemplate.parse(str(raw))
            template = SecretTemplate.parse(str(raw))
            if not template.uses("Team"):
                # Pipelines are named per team: without {{.Team}}, a team's pipeline 'deploy' reads
                # every other team's pipeline 'deploy' (and a team template every team's secrets).
                raise ValueError(f"template '{raw}' must use {{{{.Team}}}}: without it every team reads the "
                                 "same paths (the shared template is for secrets all teams share)")
            return template
        if option.kind == "role":
            return None if raw in (None, "") else RoleTemplate.parse(str(raw))
        if option.kind == "bool":
            return _to_bool(raw)
        if option.kind == "duration":
            return duration_seconds(raw, where, positive=option.name in ("lookup_timeout", "document_timeout",
                                                                           "redis_timeout"))
        if option.kind == "choice":
            if str(raw) not in BATCH_MODES:
                raise ValueError(f"'{raw}' is not one of {', '.join(BATCH_MODES)}")
            return str(raw)
        if option.kind == "size":
            return parse_size(raw)
        if option.kind == "url":
            return None if raw in (None, "") else redis_url(str(raw))
        if option.kind == "keyfiles":
            if raw in (None, "", ()):
                return ()
            return tuple(raw) if isinstance(raw, (list, tuple)) else tuple(p.strip() for p in str(raw).split(",") if p.strip())
        if option.kind == "rate":
            return None if raw in (None, "", "0", "off") else parse_rate(raw)
        if option.kind == "count":
            if isinstance(raw, bool) or not (isinstance(raw, int) or str(raw).strip().lstrip("+-").isdigit()):
                raise ValueError(f"not a whole number: '{raw}'")
            count = int(raw)
            if count < 1:
                raise ValueError(f"must be at least 1, got {count}")
            return count
        return None if raw in (None, "") else str(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


_SIZE = re.compile(r"\s*(\d+)\s*([kmg]i?b?|b)?\s*", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1000, "kib": 1024, "m": 1024**2, "mb": 1000**2, "mib": 1024**2,
               "g": 1024**3, "gb": 1000**3, "gib": 1024**3}


def parse_size(raw: Any) -> int:
    """Bytes from ``10MiB``, ``512KiB``, ``1MB`` (powers of 1000), ``4096`` or an int; at least 1."""
    if isinstance(raw, bool):
        raise ValueError(f"not a size: {raw!r}")
    if isinstance(raw, int):
        size = raw
    else:
        match = _SIZE.fullmatch(str(raw))
        if match is None:
            raise ValueError(f"not a size: '{raw}' (use e.g. 10MiB, 512KiB or a number of bytes)")
        size = int(match[1]) * _SIZE_UNITS[(match[2] or "").lower()]
    if size < 1:
        raise ValueError(f"must be at least 1 byte, got {size}")
    return size


_RATE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(?:/\s*(s|sec|second|m|min|minute))?\s*", re.IGNORECASE)


def parse_rate(raw: Any) -> float:
    """Calls per second from ``50/s``, ``3000/m`` or ``50``; more than 0."""
    match = _RATE.fullmatch(str(raw))
    if match is None:
        raise ValueError(f"not a rate: '{raw}' (use e.g. 50/s or 3000/m)")
    rate = float(match[1]) / (60.0 if (match[2] or "s").lower().startswith("m") else 1.0)
    if rate <= 0:
        raise ValueError(f"must be more than 0, got '{raw}'")
    return rate


def redis_url(raw: str) -> str:
    """``raw`` when it is a Redis URL we can use (redis://, rediss://, unix://); the message of a
    bad one never repeats it (it may hold a password)."""
    scheme, sep, rest = raw.partition("://")
    if not sep or scheme not in ("redis", "rediss", "unix") or not rest:
        raise ValueError("must be redis://[:PASSWORD@]HOST[:PORT][/DB], rediss://... or unix://PATH")
    import redis  # the client's own parsing: what it would refuse later, on every call, is refused now

    try:
        pool = redis.ConnectionPool.from_url(raw)
        pool.make_connection()  # builds a connection object with the URL's options; does not connect
        pool.disconnect()
    except (ValueError, TypeError) as exc:
        kind = "an option the Redis client does not know" if isinstance(exc, TypeError) else "a bad host, port or option"
        raise ValueError(f"cannot be used: {kind} ({type(exc).__name__})") from None
    return raw


def duration_seconds(raw: Any, where: str, *, positive: bool = False) -> float:
    """Seconds from a duration option (Go syntax, seconds or timedelta); ``ConfigError`` naming
    ``where`` (the flag or variable) when invalid, negative, or 0 where ``positive``."""
    try:
        seconds = to_seconds(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if not seconds >= 0:  # also refuses NaN
        raise ConfigError(f"{where}: must not be negative, got '{raw}'")
    if positive and seconds == 0:
        raise ConfigError(f"{where}: must be more than 0")
    return seconds


def _to_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"not a boolean: '{raw}' (use true or false)")


def check_credentials(values: Mapping[str, Any], where: Callable[[str], str] | None = None) -> None:
    """Spec 1: all three credentials empty is the SDK's default chain; otherwise both keys are
    required. ``ConfigError`` naming the setting (``where(name)``; the flag and its variable by
    default)."""
    name = where or (lambda key: f"{OPTIONS_BY_NAME[key].flag} or {OPTIONS_BY_NAME[key].env}")
    given = [values["access_key"], values["secret_key"], values["session_token"]]
    if not any(given):
        return  # the AWS SDK's default credential chain
    if not values["access_key"]:
        raise ConfigError(f"must provide aws access key id ({name('access_key')})")
    if not values["secret_key"]:
        raise ConfigError(f"must provide aws secret access key ({name('secret_key')})")
