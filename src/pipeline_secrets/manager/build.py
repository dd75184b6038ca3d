"""Assembly: settings -> AWS backend -> retry -> (per team) cache -> single-flight -> ``Manager``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..aws import SecretReader, SecretsManagerBackend, identity_of, make_client
from ..aws.credentials import make_sts_client
from ..config.settings import Settings, resolve_settings
from ..metrics import Metrics
from ..resilience import RetryingReader
from ..resilience.rate_budget import RateBudget, TeamShare
from ..resilience.redis_tier import RedisTier
from .identities import Identities, NodeIdentity, TeamRoleIdentities
from .library import Manager
from .lookups import Lookups
from .sources import SourceFactory
from .stacks import ReaderStacks, Stores


def build_manager(settings: Settings) -> Manager:
    """Assemble the reader stack for ``settings``, per team:
    ``SingleFlightReader(CachingReader(RetryingReader(SecretsManagerBackend)))``.

    Single-flight sits outside the cache, so a caller that arrives just after a fetch finds the
    cache filled rather than starting a second call for the same path. With team roles, each
    team's backend signs with its own role (``TeamRoleIdentities``); the node's own backend is
    then only for the health check and writes.
    """
    metrics = Metrics()
    tier = None
    if settings.redis_url:
        tier = RedisTier(settings.redis_url, settings.redis_keys, timeout=settings.redis_timeout, metrics=metrics)
    budget = None
    if settings.aws_rate_limit:
        budget = RateBudget(settings.aws_rate_limit, max_wait=settings.lookup_timeout, metrics=metrics, tier=tier)
    backend = SecretsManagerBackend(make_client(settings), batch=settings.batch, metrics=metrics, budget=budget)
    retrying = RetryingReader(
        backend, attempts=settings.retry_attempts, interval=settings.retry_interval,
        deadline=settings.lookup_timeout, metrics=metrics,
    )
    stores = Stores.for_settings(settings, tier, metrics)
    identities: Identities = NodeIdentity(retrying, identity_of(settings), backend)
    if settings.roles.enabled:
        identities = TeamRoleIdentities(settings, make_sts_client(settings), metrics, budget)
    share = None
    if budget is not None:
        def share(reader: SecretReader, team: str) -> SecretReader:
            return TeamShare(reader, budget, team, lambda paths: identities.calls_for(team, paths))
    stacks = ReaderStacks(settings, identities, metrics, stores, team_share=share, pinned=True)
    cluster = Lookups(settings, stacks, settings.rules.candidate_paths, metrics)
    sources = SourceFactory(settings, identities, stores, metrics, team_share=share)
    return Manager(settings, backend, cluster, sources=sources, identities=identities, metrics=metrics,
                   stores=stores, tier=tier)


def connect(
    *, environ: Mapping[str, str] | None = None, endpoint_url: str | None = None, **options: Any
) -> Manager:
    """A ``Manager`` configured by keyword options named like the flags (``region``,
    ``cache_duration``...); unset options fall back to the ``CONCOURSE_*`` environment variables,
    then to the defaults. ``team_roles`` (team -> ``TeamRole``) are teams' own roles, over the
    role template. ``endpoint_url`` is for emulators; AWS users leave it to the SDK's
    ``AWS_ENDPOINT_URL*`` variables. Raises ``ConfigError`` for invalid options."""
    team_roles = options.pop("team_roles", None)
    return build_manager(resolve_settings(options, environ, endpoint_url=endpoint_url, team_roles=team_roles))
