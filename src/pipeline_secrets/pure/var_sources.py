"""A pipeline document's ``var_sources``: per-pipeline credential managers, as in Concourse 7.

    var_sources:
    - name: other-region
      type: secretsmanager
      config: {region: eu-west-1, access_key: ((aws.key)), secret_key: ((aws.secret))}
    - name: fixtures
      type: dummy
      config: {vars: {greeting: hello}}

A var ``((other-region:db.password))`` reads through the source of that name. This module only
reads and checks declarations (pure: no AWS); ``manager.sources`` builds the sources. Types and
their config keys are exactly Concourse's, and an unknown key is refused as Concourse's decoder
refuses it, so a typo never silently falls back to a default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import VarSourceConfigError
from .vars import LOCAL_SOURCE, is_source_name

KEY = "var_sources"
SECRETSMANAGER_KEYS = (
    "access_key", "secret_key", "session_token", "region",
    "pipeline_secret_template", "team_secret_template", "shared_secret_template",
)
CONFIG_KEYS = {"secretsmanager": SECRETSMANAGER_KEYS, "dummy": ("vars",)}


@dataclass(frozen=True)
class VarSourceSpec:
    """One declaration: its config still raw (its values may be ``((vars))`` of the cluster)."""

    name: str
    type: str
    config: Mapping[str, Any]


def split_var_sources(document: Any) -> tuple[list[VarSourceSpec], Any]:
    """(the declarations, the document without its ``var_sources`` block). A document that is not
    a mapping, or has no block, declares none. Raises ``VarSourceConfigError`` for a block we
    cannot use: not a list of mappings with ``name``, ``type`` and ``config``, a duplicate or
    unusable name, a type we do not support or a config key its type does not have."""
    if not isinstance(document, Mapping) or KEY not in document:
        return [], document
    block = document[KEY]
    if block is None:
        return [], {k: v for k, v in document.items() if k != KEY}
    if not isinstance(block, list):
        raise VarSourceConfigError(f"{KEY} must be a list of {{name, type, config}}, got {_kind(block)}")
    specs: list[VarSourceSpec] = []
    for index, entry in enumerate(block):
        spec = _spec(index, entry)
        if any(other.name == spec.name for other in specs):
            raise VarSourceConfigError(f"{KEY}: the name '{spec.name}' is declared twice")
        specs.append(spec)
    return specs, {k: v for k, v in document.items() if k != KEY}


def _spec(index: int, entry: Any) -> VarSourceSpec:
    where = f"{KEY}[{index}]"
    if not isinstance(entry, Mapping):
        raise VarSourceConfigError(f"{where} must be a mapping with name, type and config, got {_kind(entry)}")
    unknown = sorted(str(key) for key in entry if key not in ("name", "type", "config"))
    if unknown:
        raise VarSourceConfigError(f"{where}: unknown key '{unknown[0]}' (a var source has name, type and config)")
    name, kind, config = entry.get("name"), entry.get("type"), entry.get("config", {})
    if not isinstance(name, str) or not name:
        raise VarSourceConfigError(f"{where}: name must be a non-empty string")
    where = f"var source '{name}'"
    if name == LOCAL_SOURCE or not is_source_name(name):
        raise VarSourceConfigError(f"{where}: a name of letters, digits and _ - / . only (not '.'), "
                                   "as ((name:var)) writes it")
    if not isinstance(kind, str) or not kind:
        raise VarSourceConfigError(f"{where}: type must be a non-empty string")
    if kind not in CONFIG_KEYS:
        raise VarSourceConfigError(
            f"{where}: type '{kind}' is not supported here (supported: {', '.join(sorted(CONFIG_KEYS))})"
        )
    if config is None:
        config = {}
    if not isinstance(config, Mapping):
        raise VarSourceConfigError(f"{where}: config must be a mapping, got {_kind(config)}")
    for key in config:
        if key not in CONFIG_KEYS[kind]:
            raise VarSourceConfigError(
                f"{where}: unknown config key '{key}' for type {kind} (its keys: {', '.join(CONFIG_KEYS[kind])})"
            )
    return VarSourceSpec(name, kind, config)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "a mapping", list: "a list", str: "a string"}.get(type(value), type(value).__name__)
