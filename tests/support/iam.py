"""A small evaluator for IAM identity-based policies, for tests.

moto does not evaluate IAM policies on Secrets Manager calls, yet the
behaviour we must test (which secrets a CI user may read, how a denial looks
on the wire) hinges on them. This module covers the subset of IAM that the
policies we ship use: Allow/Deny statements, Action/NotAction,
Resource/NotResource, ``*`` and ``?`` wildcards, explicit Deny over Allow,
default deny. Anything it does not understand (Condition, Principal, policy
variables) raises ``ValueError`` rather than being silently misjudged.
"""

from __future__ import annotations

import functools
import hashlib
import re
from enum import Enum
from typing import Any, Iterable, Mapping

DEFAULT_ACCOUNT = "123456789012"

_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_UNSUPPORTED_KEYS = ("Condition", "Principal", "NotPrincipal")


class Decision(Enum):
    """Outcome of an evaluation; the two denials produce different messages."""

    ALLOW = "allow"
    EXPLICIT_DENY = "explicit_deny"
    IMPLICIT_DENY = "implicit_deny"


def secret_arn(name: str, region: str, account: str = DEFAULT_ACCOUNT) -> str:
    """ARN of secret ``name`` as AWS would build it.

    Real AWS appends ``-`` and 6 random characters to the name; policies rely
    on that (``...:secret:name-??????``). We derive the 6 characters from the
    name so the ARN is the same in every run and process.
    """
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    suffix = "".join(_SUFFIX_ALPHABET[b % len(_SUFFIX_ALPHABET)] for b in digest[:6])
    return f"arn:aws:secretsmanager:{region}:{account}:secret:{name}-{suffix}"


def resource_for_secret_id(
    secret_id: str, region: str, account: str = DEFAULT_ACCOUNT
) -> str:
    """The resource a policy is evaluated against for a ``SecretId``.

    A SecretId may be a name or an ARN (full or partial); ARNs are used as is.
    """
    if secret_id.startswith("arn:"):
        return secret_id
    return secret_arn(secret_id, region, account)


@functools.lru_cache(maxsize=1024)
def _compile(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    # Not fnmatch: it treats "[...]" as a character class (IAM does not) and
    # fnmatch.fnmatch folds case depending on the OS.
    regex = "".join(
        ".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern
    )
    return re.compile(regex, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def wildcard_match(pattern: str, value: str, *, ignore_case: bool) -> bool:
    """IAM wildcard match: ``*`` any run of characters, ``?`` exactly one."""
    return _compile(pattern, ignore_case).fullmatch(value) is not None


def _as_list(value: Any, what: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise ValueError(f"{what} must be a string or a list of strings: {value!r}")


def _one_of(stmt: Mapping[str, Any], key: str, not_key: str) -> tuple[list[str], bool]:
    """Patterns of ``key`` or ``not_key`` (exactly one must be present), and negation."""
    if (key in stmt) == (not_key in stmt):
        raise ValueError(f"statement needs exactly one of {key}/{not_key}: {stmt!r}")
    if key in stmt:
        return _as_list(stmt[key], key), False
    return _as_list(stmt[not_key], not_key), True


def _statements(policy: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    stmts = policy.get("Statement")
    if isinstance(stmts, Mapping):
        return [stmts]
    if isinstance(stmts, list):
        return stmts
    raise ValueError(f"policy has no Statement: {policy!r}")


def _statement_applies(stmt: Mapping[str, Any], action: str, resource: str) -> bool:
    for key in _UNSUPPORTED_KEYS:
        if key in stmt:
            raise ValueError(f"{key} is not supported by this evaluator: {stmt!r}")
    actions, not_action = _one_of(stmt, "Action", "NotAction")
    resources, not_resource = _one_of(stmt, "Resource", "NotResource")
    if any("${" in r for r in resources):
        raise ValueError(f"policy variables are not supported: {resources!r}")
    action_hit = any(wildcard_match(p, action, ignore_case=True) for p in actions)
    resource_hit = any(wildcard_match(p, resource, ignore_case=False) for p in resources)
    return action_hit != not_action and resource_hit != not_resource


def evaluate(policy: Mapping[str, Any], action: str, resource: str) -> Decision:
    """Evaluate ``action`` (e.g. ``secretsmanager:GetSecretValue``) on ``resource``.

    Every statement is checked (so malformed ones fail even after an Allow);
    an applicable Deny wins, then an applicable Allow, else implicit deny.
    """
    allowed = denied = False
    for stmt in _statements(policy):
        effect = stmt.get("Effect")
        if effect not in ("Allow", "Deny"):
            raise ValueError(f"Effect must be Allow or Deny: {stmt!r}")
        if _statement_applies(stmt, action, resource):
            if effect == "Deny":
                denied = True
            else:
                allowed = True
    if denied:
        return Decision.EXPLICIT_DENY
    return Decision.ALLOW if allowed else Decision.IMPLICIT_DENY


def is_allowed(policy: Mapping[str, Any], action: str, resource: str) -> bool:
    """True when ``policy`` allows ``action`` on ``resource``."""
    return evaluate(policy, action, resource) is Decision.ALLOW
