"""Secret path templates and the candidate paths of a var: Concourse's lookup rules, pure.

Templates use the subset of Go's text/template that Concourse documents: the fields
``{{.Team}}``, ``{{.Pipeline}}`` and ``{{.Secret}}``, whitespace inside the braces and the
``{{-``/``-}}`` trim markers. Anything else is refused at start-up rather than at lookup time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ScopeNameError, VarNameError
from .ownership import foreign_reading, reads_as

FIELDS = ("Team", "Pipeline", "Secret")

# Secrets Manager's rule for secret names.
_SECRET_NAME = re.compile(r"[A-Za-z0-9/_+=.@-]{1,512}")
_SCOPE_NAME = re.compile(r"[^/\s]+")
_ACTION = re.compile(r"(?P<ltrim>-\s)?\s*\.(?P<field>\w+)\s*(?P<rtrim>\s-)?")


@dataclass(frozen=True)
class SecretTemplate:
    """A parsed path template: literal text and field names, in order."""

    text: str
    parts: tuple[tuple[str, str], ...]  # ("text", literal) or ("field", "Team" | "Pipeline" | "Secret")

    @classmethod
    def parse(cls, text: str) -> SecretTemplate:
        """Parse ``text``; raises ``ValueError`` saying what is wrong."""
        if not text.strip():
            raise ValueError("secret template should not be empty")
        parts: list[tuple[str, str]] = []
        pos = 0
        trim_next = False
        while True:
            start = text.find("{{", pos)
            literal = text[pos:] if start < 0 else text[pos:start]
            if trim_next:
                literal = literal.lstrip()
            if start < 0:
                _append_text(parts, literal)
                break
            end = text.find("}}", start + 2)
            if end < 0:
                raise ValueError(f"unclosed action in template '{text}'")
            inner = text[start + 2 : end]
            action = _ACTION.fullmatch(inner)
            if action is None:
                raise ValueError(
                    f"unsupported action '{{{{{inner}}}}}' in template '{text}': "
                    "only {{.Team}}, {{.Pipeline}} and {{.Secret}} are allowed"
                )
            if action["field"] not in FIELDS:
                raise ValueError(
                    f"unknown field '.{action['field']}' in template '{text}': "
                    "only {{.Team}}, {{.Pipeline}} and {{.Secret}} are allowed"
                )
            _append_text(parts, literal.rstrip() if action["ltrim"] else literal)
            parts.append(("field", action["field"]))
            trim_next = bool(action["rtrim"])
            pos = end + 2
        template = cls(text, tuple(parts))
        if not template.uses("Secret"):
            raise ValueError(
                f"template '{text}' must use {{{{.Secret}}}}: without it every var maps to one secret"
            )
        return template

    def uses(self, field: str) -> bool:
        return ("field", field) in self.parts

    @property
    def pipeline_dependent(self) -> bool:
        """Skipped when there is no pipeline (one-off builds)."""
        return self.uses("Pipeline")

    def render(self, *, team: str, pipeline: str | None, secret: str) -> str:
        values = {"Team": team, "Pipeline": pipeline or "", "Secret": secret}
        return "".join(values[value] if kind == "field" else value for kind, value in self.parts)


def _append_text(parts: list[tuple[str, str]], literal: str) -> None:
    if literal:
        parts.append(("text", literal))


@dataclass(frozen=True)
class LookupRules:
    """The templates in lookup order, and what they make of a var name for a team and pipeline."""

    pipeline: SecretTemplate
    team: SecretTemplate
    shared: SecretTemplate | None = None

    def templates(self, pipeline: str | None) -> list[tuple[str, SecretTemplate]]:
        """(level, template) in lookup order; pipeline-dependent ones only when there is a pipeline."""
        return [(level, t) for level, t in self.configured() if pipeline or not t.pipeline_dependent]

    def skipped(self, pipeline: str | None) -> list[tuple[str, SecretTemplate]]:
        """(level, template) left out of the lookup because there is no pipeline."""
        return [(level, t) for level, t in self.configured() if not pipeline and t.pipeline_dependent]

    def configured(self) -> list[tuple[str, SecretTemplate]]:
        """(level, template) of every configured template, pipeline-dependent or not, in order."""
        ordered = [("pipeline", self.pipeline), ("team", self.team)]
        if self.shared is not None:
            ordered.append(("shared", self.shared))
        return ordered

    def lookup_paths(self, team: str, pipeline: str | None = None) -> list[str]:
        """The candidate path templates, in order, with team and pipeline filled in."""
        check_scope(team, pipeline)
        return [t.render(team=team, pipeline=pipeline, secret="{{.Secret}}") for _, t in self.templates(pipeline)]

    def candidate_paths(self, secret: str, team: str, pipeline: str | None = None) -> list[tuple[str, str]]:
        """(level, path) for var name ``secret``, in lookup order.

        Raises ``VarNameError`` when any path breaks Secrets Manager's name rules or would reach
        another team's or pipeline's secret: the var is then refused whole, before any AWS call.
        """
        candidates = self.rendered_paths(secret, team, pipeline)
        for level, path in candidates:
            owner = self.foreign_owner(path, team, pipeline)
            if owner is not None:
                raise VarNameError(
                    f"var '{secret}' refused: its {level} path '{path}' is the path of {owner}; vars may "
                    "only reach their own team's and pipeline's secrets"
                )
        return candidates

    def rendered_paths(self, secret: str, team: str, pipeline: str | None = None) -> list[tuple[str, str]]:
        """(level, path) for var name ``secret`` in lookup order, checked against Secrets
        Manager's name rules only (``VarNameError``), not for scope."""
        check_scope(team, pipeline)
        candidates = []
        for level, template in self.templates(pipeline):
            path = template.render(team=team, pipeline=pipeline, secret=secret)
            if not _SECRET_NAME.fullmatch(path):
                raise VarNameError(
                    f"var '{secret}' cannot name a secret: its {level} path '{path}' "
                    + (
                        "is longer than Secrets Manager's 512 characters"
                        if len(path) > 512
                        else "has characters Secrets Manager does not allow in names "
                        "(ASCII letters, digits and /_+=.@-)"
                    )
                )
            candidates.append((level, path))
        return candidates

    def foreign_owner(self, path: str, team: str, pipeline: str | None) -> str | None:
        """Whose path ``path`` is, when any reading by any configured template gives it to
        another team or pipeline than ``team``/``pipeline``: "pipeline 'p' of team 't', secret
        's'"; else None. With the defaults, team-level "other-pipeline/x" is pipeline
        other-pipeline's "x"; with templates whose fields are not delimited by '/', even the
        caller's own pipeline path can be another team's ('{{.Team}}-{{.Pipeline}}': alpha +
        x-deploy is alpha-x + deploy)."""
        for _, template in self.configured():
            reading = foreign_reading(template.parts, path, team, pipeline)
            if reading is not None:
                owner = f"team '{reading.team if reading.team is not None else team}'"
                if reading.pipeline is not None:
                    owner = f"pipeline '{reading.pipeline}' of {owner}"
                return f"{owner}, secret '{reading.secret}'"
        return None

    def in_own_scope(self, path: str, team: str, pipeline: str | None) -> bool:
        """True when these templates make ``path`` for ``team`` itself: its pipeline path (when
        there is a pipeline) or its team path, for some secret name. The shared path is no team's."""
        levels = [self.team] if not pipeline else [self.pipeline, self.team]
        return any(reads_as(template.parts, path, team, pipeline) for template in levels)

    def ambiguous(self) -> bool:
        """True when a template can read one path as two scopes' paths for names that hold
        '-', '_' or '.': lookups stay safe (such vars are refused), but operators should know."""
        team, pipeline = "a-b_c.d", "e-f_g.h"
        for _, template in self.configured():
            path = template.render(team=team, pipeline=pipeline, secret="s")
            if any(foreign_reading(t.parts, path, team, pipeline) for _, t in self.configured()):
                return True
        return False


def check_scope(team: str, pipeline: str | None) -> None:
    """Team and pipeline names must be single path segments (no '/' nor whitespace)."""
    if not team or not _SCOPE_NAME.fullmatch(team):
        raise ScopeNameError(f"invalid team name '{team}': it must be non-empty, without '/' or spaces")
    if pipeline is not None and not _SCOPE_NAME.fullmatch(pipeline):
        raise ScopeNameError(
            f"invalid pipeline name '{pipeline}': it must be non-empty, without '/' or spaces"
        )
