"""The web node's request metrics, counted in plain numbers on the event loop, publish the text
prometheus-client's own Counter, Histogram and Gauge would."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from pipeline_secrets.metrics import LATENCY_BUCKETS
from pipeline_secrets.web.observe import WebMetrics

OBSERVED = [("GET", "/a", 200, 0.0004), ("GET", "/a", 200, 0.0005), ("GET", "/a", 200, 0.3),
            ("POST", "/b", 502, 7.0), ("GET", "/a", 404, 100.0), ("GET", "/a", 200, 30.0), ("other", "unmatched", 405, 0.0)]


def reference(in_flight: int) -> str:
    registry = CollectorRegistry(auto_describe=False)
    requests = Counter("pipeline_secrets_http_requests", "HTTP requests by method, route template and status.",
                       ["method", "route", "status"], registry=registry)
    seconds = Histogram("pipeline_secrets_http_request_duration_seconds", "HTTP request durations by route template.",
                        ["method", "route"], buckets=LATENCY_BUCKETS, registry=registry)
    gauge = Gauge("pipeline_secrets_http_requests_in_flight", "HTTP requests being answered.", registry=registry)
    for method, route, status, elapsed in OBSERVED:
        requests.labels(method, route, str(status)).inc()
        seconds.labels(method, route).observe(elapsed)
    gauge.set(in_flight)
    return generate_latest(registry).decode()


def without_times(text: str) -> str:
    return re.sub(r"(_created\{[^}]*\}) \S+", r"\1 T", text)


def test_the_text_is_prometheus_clients_own():
    metrics = WebMetrics()
    for method, route, status, elapsed in OBSERVED:
        metrics.requests.observe(method, route, status, elapsed)
    metrics.requests.in_flight = 3
    ours = metrics.render().decode()
    health = ours.index("# HELP pipeline_secrets_health_checks_total")
    assert without_times(ours[:health]) == without_times(reference(3))
    assert 'pipeline_secrets_http_request_duration_seconds_bucket{le="0.0005",method="GET",route="/a"} 2.0' in ours
