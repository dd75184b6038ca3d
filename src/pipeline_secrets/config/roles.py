"""Per-team IAM roles: the role template, a team's own role from the teams file, and the names
an AssumeRole call gives its session.

With a role, IAM is the second wall between teams: each team's lookups are signed with that team's
role, which may read that team's paths only, so a bug in our scope checks (or a mis-set template)
still cannot reach another team's secrets. Everything here is checked without AWS: a role that
cannot be a role ARN, a team name that cannot be a session tag, stop the lookup (or start-up) with
a message naming them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TEAM_FIELD = "{{.Team}}"
ROLE_TEMPLATE_FLAG = "--aws-secretsmanager-team-role-template"

# IAM's rules: role names are [\w+=,.@-]{1,64} under an optional path; session names are
# [\w+=,.@-]{2,64}; tag values are letters, digits, spaces and _.:/=+-@ (up to 256).
_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/(?:[\x21-\x7e]+/)?[\w+=,.@-]{1,64}", re.ASCII)
_SESSION_CHARS = re.compile(r"[^\w+=,.@-]", re.ASCII)
_TAG_VALUE = re.compile(r"[\w\s.:/=+\-@]{1,256}")
_EXTERNAL_ID = re.compile(r"[\w+=,.@:/-]{2,1224}", re.ASCII)


@dataclass(frozen=True)
class TeamRole:
    """The role a team's lookups are signed with, and the external id its trust policy asks for."""

    arn: str
    external_id: str | None = None

    def __post_init__(self) -> None:
        if not _ROLE_ARN.fullmatch(self.arn):
            raise ValueError(f"'{self.arn}' is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)")
        if self.external_id is not None and not _EXTERNAL_ID.fullmatch(self.external_id):
            raise ValueError("external_id must be 2 to 1224 characters of letters, digits and +=,.@:/-")

    @property
    def identity(self) -> str:
        """Whom lookups signed by this role read as, for keying what they were answered. The
        external id is part of it (a digest: it is a shared secret of the trust policy)."""
        digest = hashlib.sha256((self.external_id or "").encode()).hexdigest()[:16]
        return f"role|{self.arn}|{digest}"


@dataclass(frozen=True)
class RoleTemplate:
    """``arn:aws:iam::123456789012:role/ci-{{.Team}}``: one role per team, by name."""

    text: str

    @classmethod
    def parse(cls, text: str) -> RoleTemplate:
        if text.count(TEAM_FIELD) != 1 or "{{" in text.replace(TEAM_FIELD, ""):
            raise ValueError(f"role template '{text}' must use {TEAM_FIELD} exactly once and no other field: "
                             "without it every team would share one role")
        TeamRole(text.replace(TEAM_FIELD, "team"))  # the rest must make a role ARN
        return cls(text)

    def render(self, team: str) -> TeamRole:
        """The role of ``team``; ``ValueError`` when the team's name cannot be part of a role name."""
        arn = self.text.replace(TEAM_FIELD, team)
        try:
            return TeamRole(arn)
        except ValueError:
            raise ValueError(f"team '{team}' cannot be part of a role name ({self.text}): IAM role names "
                             "are letters, digits and +=,.@- (set a role_arn for it in the teams file)") from None


@dataclass(frozen=True)
class TeamRoles:
    """Which role each team reads with: its own ``role_arn`` from the teams file, else the template."""

    template: RoleTemplate | None = None
    overrides: tuple[tuple[str, TeamRole], ...] = ()

    @property
    def enabled(self) -> bool:
        return self.template is not None or bool(self.overrides)

    def role_of(self, team: str) -> TeamRole | None:
        """``team``'s role, None when it reads with the node's identity (no template, no role of its
        own); ``ValueError`` when the template cannot make one for it."""
        for name, role in self.overrides:
            if name == team:
                return role
        return None if self.template is None else self.template.render(team)

    def with_overrides(self, overrides: Mapping[str, TeamRole]) -> TeamRoles:
        return TeamRoles(self.template, tuple(sorted(overrides.items())))


def session_name(team: str) -> str:
    """``RoleSessionName`` for ``team``: CloudTrail shows it as the reader of every secret.

    IAM allows 2 to 64 characters of [\\w+=,.@-]: the name is the team's, sanitised and cut to
    fit, then a digest of the real name, so two teams never share a session name."""
    digest = hashlib.sha256(team.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"pipeline-secrets@{_SESSION_CHARS.sub('-', team)[:38]}.{digest}"


def session_tags(team: str) -> list[dict[str, str]]:
    """The session tags (``Team``) that CloudTrail records and ABAC policies read as
    ``${aws:PrincipalTag/Team}``. A tag must be the team's exact name (a sanitised one could equal
    another team's): a name IAM refuses as a tag value is a ``ValueError``."""
    if not _TAG_VALUE.fullmatch(team):
        raise ValueError(f"team '{team}' cannot be a session tag value (letters, digits, spaces and _.:/=+-@, "
                         "at most 256): its lookups cannot be signed with a tagged role session")
    return [{"Key": "Team", "Value": team}]


def parse_team_role(entry: Mapping[str, Any], where: str) -> TeamRole | None:
    """The ``role_arn`` / ``external_id`` of a teams-file entry, or None; ``ValueError`` naming
    ``where``."""
    arn, external_id = entry.get("role_arn"), entry.get("external_id")
    if arn is None:
        if external_id is not None:
            raise ValueError(f"{where}: external_id needs a role_arn")
        return None
    if not isinstance(arn, str) or not (external_id is None or isinstance(external_id, str)):
        raise ValueError(f"{where}: role_arn and external_id must be strings")
    try:
        return TeamRole(arn, external_id)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
