"""Counters of the lookups of one manager: AWS calls, cache, throttles, retries, latency.

Kept in a prometheus-client registry of the manager's own, so that the web node can publish them
as they are, and the library can hand out a plain snapshot. Labels never carry var names, paths or
values: only operations and outcome classes.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

MAX_SOURCE_LABELS = 100
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.aws_calls = Counter(
            "pipeline_secrets_aws_calls", "AWS API calls by operation and outcome.",
            ["operation", "outcome"], registry=self.registry,
        )
        self.cache = Counter(
            "pipeline_secrets_cache_lookups", "Cache lookups by result: hit, miss, stale (served under an AWS error).",
            ["result"], registry=self.registry,
        )
        self.throttles = Counter(
            "pipeline_secrets_throttles", "Throttling answers from AWS.", registry=self.registry
        )
        self.retries = Counter("pipeline_secrets_retries", "Retried AWS reads.", registry=self.registry)
        self.lookup_seconds = Histogram(
            "pipeline_secrets_lookup_duration_seconds", "Time to resolve the vars of one lookup or document.",
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.var_source_lookups = Counter(
            "pipeline_secrets_var_source_lookups", "Vars looked up through a pipeline's var sources, by source name "
            f"(the first {MAX_SOURCE_LABELS} names seen; 'other' after them) and type.",
            ["source", "type"], registry=self.registry,
        )
        self._source_labels: set[str] = set()
        # The shared tier (Redis), when one is configured.
        self.redis_up = Gauge("pipeline_secrets_redis_up", "1 while the shared tier (Redis) is used, 0 during an outage.",
                              registry=self.registry)
        self.redis_errors = Counter("pipeline_secrets_redis_errors", "Redis calls that failed or timed out.",
                                    registry=self.registry)
        self.redis_outages = Counter("pipeline_secrets_redis_outages", "Times the circuit breaker opened.",
                                     registry=self.registry)
        self.shared_cache = Counter("pipeline_secrets_shared_cache_lookups",
                                    "Shared cache (Redis) lookups by result: hit, miss.", ["result"], registry=self.registry)
        self.flights = Counter("pipeline_secrets_fleet_fetches",
                               "Cold paths by who fetched them: fetched (this node, for the fleet), waited (another node "
                               "did), took_over (the holder vanished).", ["role"], registry=self.registry)
        self.flight_wait_seconds = Counter("pipeline_secrets_fleet_wait_seconds",
                                           "Time spent waiting for another node's fetch.", registry=self.registry)
        self.budget_waits = Counter("pipeline_secrets_rate_budget_waits",
                                    "AWS calls that waited for the rate budget (--aws-rate-limit), by operation.",
                                    ["operation"], registry=self.registry)
        self.budget_wait_seconds = Counter("pipeline_secrets_rate_budget_wait_seconds",
                                           "Time AWS calls waited for the rate budget.", registry=self.registry)
        self.budget_refused = Counter("pipeline_secrets_rate_budget_refused",
                                      "AWS calls not made: no budget within the lookup deadline.", registry=self.registry)
        # Bound children: the hot path then costs no label lookup.
        self.cache_hit = self.cache.labels("hit")
        self.cache_miss = self.cache.labels("miss")
        self.cache_stale = self.cache.labels("stale")

    def var_source_lookup(self, name: str, kind: str, count: int) -> None:
        """Count ``count`` names looked up through var source ``name``. Names come from pipeline
        documents, so only so many become labels: a document cannot grow /metrics without end."""
        if name not in self._source_labels:
            if len(self._source_labels) >= MAX_SOURCE_LABELS:
                name = "other"
            else:
                self._source_labels.add(name)
        self.var_source_lookups.labels(name, kind).inc(count)

    def aws_call(self, operation: str, outcome: str) -> None:
        self.aws_calls.labels(operation, outcome.replace("-", "_")).inc()
        if outcome == "throttled":
            self.throttles.inc()

    def snapshot(self) -> dict[str, Any]:
        """A plain dict of every counter, e.g. ``{"aws_calls": {"GetSecretValue": {"found": 3}}, ...}``."""
        out: dict[str, Any] = {"aws_calls": {}, "cache": {"hit": 0, "miss": 0, "stale": 0}}
        for metric in self.registry.collect():
            for sample in metric.samples:
                name, labels, value = sample.name, sample.labels, sample.value
                if name == "pipeline_secrets_aws_calls_total":
                    out["aws_calls"].setdefault(labels["operation"], {})[labels["outcome"]] = int(value)
                elif name == "pipeline_secrets_cache_lookups_total":
                    out["cache"][labels["result"]] = int(value)
                elif name == "pipeline_secrets_throttles_total":
                    out["throttles"] = int(value)
                elif name == "pipeline_secrets_retries_total":
                    out["retries"] = int(value)
                elif name == "pipeline_secrets_lookup_duration_seconds_count":
                    out.setdefault("lookups", {})["count"] = int(value)
                elif name == "pipeline_secrets_lookup_duration_seconds_sum":
                    out.setdefault("lookups", {})["seconds_total"] = value
                elif name == "pipeline_secrets_var_source_lookups_total":
                    out.setdefault("var_sources", {})[labels["source"]] = int(value)
                elif name == "pipeline_secrets_shared_cache_lookups_total":
                    out.setdefault("shared_cache", {})[labels["result"]] = int(value)
                elif name == "pipeline_secrets_fleet_fetches_total":
                    out.setdefault("fleet", {})[labels["role"]] = int(value)
                elif name == "pipeline_secrets_rate_budget_waits_total":
                    out.setdefault("rate_budget_waits", {})[labels["operation"]] = int(value)
                elif name == "pipeline_secrets_rate_budget_refused_total":
                    out["rate_budget_refused"] = int(value)
                elif name == "pipeline_secrets_redis_outages_total":
                    out["redis_outages"] = int(value)
        return out
