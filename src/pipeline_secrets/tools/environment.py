"""Resolving an environment mapping (``NAME -> text with ((vars))``) in one call of
``Manager.interpolate``: one batched resolution, with the usual lookup rules, cache, retry, budgets
and var errors, for ``exec`` and the web node's ``vars/env``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import VarSourceError
from ..manager import Manager
from ..pure import vars as vars_
from ..pure.environment import env_text, string_leaves


@dataclass(frozen=True)
class Environment:
    """What a mapping resolved to."""

    values: dict[str, str]
    """NAME -> value, for the command's environment."""
    secrets: dict[str, str]
    """What output must not show, by a name a warning may print: each variable's value (``$NAME``),
    and each var's own value (``((db.password))``) and the strings inside a var that is a mapping
    (``((db)).password``), since a program may print the password it took out of
    ``DATABASE_URL``. Empty unless asked for."""


def resolve_environment(
    manager: Manager, mapping: Mapping[str, str], *, team: str, pipeline: str | None = None,
    with_secrets: bool = True,
) -> Environment:
    """Resolve every ``((var))`` of ``mapping`` together; raises as ``Manager.interpolate`` does
    (``UndefinedVarsError``, ``LookupFailed``, var errors, ``LimitError``) before anything is
    returned. A value that is a single var of another type than string becomes JSON."""
    found = vars_.collect_vars(dict(mapping))
    local = sorted(str(ref) for ref in found if ref.local)
    if local:
        raise VarSourceError(f"build-local vars have no value outside a Concourse build: {', '.join(local)}")
    refs = found if with_secrets else []
    document = {"env": dict(mapping), "vars": [f"(({ref.raw}))" for ref in refs]}
    result = manager.interpolate(document, team=team, pipeline=pipeline)
    values = {name: env_text(name, value) for name, value in result["env"].items()}
    secrets: dict[str, str] = {}
    if with_secrets:
        secrets.update((f"${name}", value) for name, value in values.items())
        for ref, value in zip(refs, result["vars"]):
            label = f"(({ref}))"
            secrets[label] = env_text(label, value)
            if not isinstance(value, str):
                secrets.update(string_leaves(value, label))
    return Environment(values, secrets)
