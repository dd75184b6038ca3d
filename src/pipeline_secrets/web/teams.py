"""Who belongs to which team: members of team ``main`` are the admins; other teams come from the
teams file.

The teams file has exactly this shape (anything else stops start-up)::

    teams:
      alpha:
        local_users: [alice, bob]
      beta:
        local_users: [carol]
        role_arn: arn:aws:iam::123456789012:role/ci-beta   # optional: the team's own IAM role
        external_id: beta-7f3a                              # optional, with role_arn
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..config.roles import TeamRole, parse_team_role
from ..errors import ConfigError, PipelineSecretsError, ScopeNameError
from ..pure.documents import load_document
from ..pure.templates import check_scope

MAIN_TEAM = "main"
TEAMS_FILE_FLAG = "--teams-file"


@dataclass(frozen=True)
class Teams:
    members: Mapping[str, frozenset[str]]

    def is_admin(self, user: str) -> bool:
        return user in self.members.get(MAIN_TEAM, frozenset())

    def may_access(self, user: str, team: str) -> bool:
        """Admins reach every team; anyone else only the teams they are a member of."""
        return self.is_admin(user) or user in self.members.get(team, frozenset())


def check_team_name(team: str, pipeline: str | None = None) -> None:
    """The manager's scope check, plus: '.' and '..' are no names (they only ever appear in a URL
    as a trick)."""
    check_scope(team, pipeline)
    for kind, name in (("team", team), ("pipeline", pipeline)):
        if name in (".", ".."):
            raise ScopeNameError(f"invalid {kind} name '{name}'")


TEAM_KEYS = frozenset({"local_users", "role_arn", "external_id"})


@dataclass(frozen=True)
class TeamsFile:
    members: dict[str, list[str]]  # team -> local user names
    roles: dict[str, TeamRole]  # team -> its own IAM role


def load_teams_file(path: Path) -> TeamsFile:
    """The teams file's members and roles; ``ConfigError`` for anything malformed."""
    where = f"{TEAMS_FILE_FLAG} '{path}'"
    try:
        data = load_document(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: cannot read it: {getattr(exc, 'strerror', None) or exc}") from None
    except PipelineSecretsError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if not isinstance(data, dict) or set(data) != {"teams"} or not isinstance(data["teams"], dict):
        raise ConfigError(f"{where}: must be a mapping with one key, 'teams', holding a mapping of team -> "
                          "{local_users: [USER, ...], role_arn: ARN, external_id: ID}")
    teams: dict[str, list[str]] = {}
    roles: dict[str, TeamRole] = {}
    for team, entry in data["teams"].items():
        if not isinstance(team, str):
            raise ConfigError(f"{where}: team names must be strings, got {team!r}")
        try:
            check_team_name(team)
        except ScopeNameError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if not isinstance(entry, dict) or not set(entry) <= TEAM_KEYS or "local_users" not in entry:
            raise ConfigError(f"{where}: team '{team}' must be a mapping of local_users and, optionally, "
                              "role_arn and external_id")
        try:
            role = parse_team_role(entry, f"team '{team}'")
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if role is not None:
            roles[team] = role
        users = entry["local_users"]
        if not isinstance(users, list) or not all(isinstance(u, str) and u for u in users):
            raise ConfigError(f"{where}: team '{team}': local_users must be a list of user names")
        teams[team] = users
    return TeamsFile(teams, roles)


def build_teams(
    file_teams: Mapping[str, Iterable[str]], main_users: Iterable[str], known_users: Iterable[str]
) -> Teams:
    """Merge the main team's users (``--main-team-local-user``) with the teams file; every member
    must be a local user (a typo would otherwise lock someone out in silence)."""
    known = set(known_users)
    for user in main_users:
        if user not in known:
            raise ConfigError(f"--main-team-local-user: '{user}' is not a local user (add it with --add-local-user)")
    for team, users in file_teams.items():
        for user in users:
            if user not in known:
                raise ConfigError(
                    f"{TEAMS_FILE_FLAG}: team '{team}': '{user}' is not a local user (add it with --add-local-user)"
                )
    members = {team: frozenset(users) for team, users in file_teams.items()}
    members[MAIN_TEAM] = members.get(MAIN_TEAM, frozenset()) | frozenset(main_users)
    return Teams(members)
