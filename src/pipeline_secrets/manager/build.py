"""Assembly: settings -> AWS backend -> retry -> (per team) cache -> single-flight -> ``Manager``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..aws import SecretsManagerBackend, identity_of, make_client
from ..config.settings import Settings, resolve_settings
from ..metrics import Metrics
from ..resilience import RetryingReader
from .library import Manager
from .lookups import Lookups
from .sources import SourceFactory
from .stacks import ReaderStacks, Stores


def build_manager(settings: Settings) -> Manager:
    """Assemble the reader stack for ``settings``, per team:
    ``SingleFlightReader(CachingReader(RetryingReader(SecretsManagerBackend)))``.

    Single-flight sits outside the cache, so a caller that arrives just after a fetch finds the
    cache filled rather than starting a second call for the same path.
    """
    metrics = Metrics()
    backend = SecretsManagerBackend(make_client(settings), batch=settings.batch, metrics=metrics)
    retrying = RetryingReader(
        backend, attempts=settings.retry_attempts, interval=settings.retry_interval,
        deadline=settings.lookup_timeout, metrics=metrics,
    )
    stores = Stores.for_settings(settings)
    stacks = ReaderStacks(settings, retrying, metrics, stores, identity_of(settings))
    cluster = Lookups(settings, stacks, settings.rules.candidate_paths, metrics)
    sources = SourceFactory(settings, retrying, stores, metrics)
    return Manager(settings, backend, cluster, sources=sources, uncached=retrying, metrics=metrics)


def connect(
    *, environ: Mapping[str, str] | None = None, endpoint_url: str | None = None, **options: Any
) -> Manager:
    """A ``Manager`` configured by keyword options named like the flags (``region``,
    ``cache_duration``...); unset options fall back to the ``CONCOURSE_*`` environment variables,
    then to the defaults. ``endpoint_url`` is for emulators; AWS users leave it to the SDK's
    ``AWS_ENDPOINT_URL*`` variables. Raises ``ConfigError`` for invalid options."""
    return build_manager(resolve_settings(options, environ, endpoint_url=endpoint_url))
