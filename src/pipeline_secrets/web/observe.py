"""What the web node publishes about itself: Prometheus metrics (the manager's lookup metrics
plus HTTP requests) and one JSON log line per request.

Route labels and log fields are route templates (``/api/v1/teams/{team}/vars/lookup``), never
the concrete path nor its query, so neither carries var names or values.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from bisect import bisect_left
from itertools import accumulate
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..metrics import LATENCY_BUCKETS
from .logs import request_line

UNMATCHED = "unmatched"
SCOPE_KEY = "pipeline_secrets"  # per-request facts the handlers leave for the log line
# The method label takes these values only: a client's invented method must not make a new series.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
CLIENT_CLOSED = 499  # nginx's code for "the client went away before the answer": logs and metrics only
NO_STORE = (b"cache-control", b"no-store")
CUT_BODY = b'{"error": "the server is shutting down: the request was cut"}\n'


class _Forward:
    """Publishes another registry's metrics (the manager's) from this one."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Any:
        return self._registry.collect()


class RequestMetrics:
    """The request counter, the duration histogram and the in-flight gauge, kept in plain numbers
    and published through prometheus-client as a collector.

    They are only ever changed on the event loop (the middleware), and read there (``/metrics``
    answers on the loop too), so prometheus-client's own metric objects, a lock per increment
    (five or six a request), bought nothing but their cost on every request. What they publish is
    the same text: the same names, help, labels, buckets and ``_created`` samples."""

    REQUESTS = "pipeline_secrets_http_requests"
    SECONDS = "pipeline_secrets_http_request_duration_seconds"
    IN_FLIGHT = "pipeline_secrets_http_requests_in_flight"

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.bounds = [float(bound) for bound in buckets if bound != float("inf")]
        self.in_flight = 0
        self.counts: dict[tuple[str, str, str], list[float]] = {}  # labels -> [count, created]
        # (method, route) -> [count per bucket (not cumulative), then +Inf], sum, created
        self.durations: dict[tuple[str, str], tuple[list[int], list[float]]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        count = self.counts.get((method, route, str(status)))
        if count is None:
            count = self.counts[(method, route, str(status))] = [0.0, time.time()]
        count[0] += 1
        series = self.durations.get((method, route))
        if series is None:
            series = self.durations[(method, route)] = ([0] * (len(self.bounds) + 1), [0.0, time.time()])
        series[0][bisect_left(self.bounds, seconds)] += 1
        series[1][0] += seconds

    def collect(self) -> list[Metric]:
        requests = CounterMetricFamily(self.REQUESTS, "HTTP requests by method, route template and status.",
                                       labels=["method", "route", "status"])
        for labels, (count, created) in self.counts.items():
            requests.add_metric(labels, count, created=created)
        seconds = HistogramMetricFamily(self.SECONDS, "HTTP request durations by route template.",
                                        labels=["method", "route"])
        les = [floatToGoString(bound) for bound in self.bounds] + ["+Inf"]
        created_samples = []
        for (method, route), (counts, (total, created)) in self.durations.items():
            seconds.add_metric([method, route], list(zip(les, accumulate(counts))), total)
            created_samples.append(Sample(f"{self.SECONDS}_created", {"method": method, "route": route}, created))
        seconds.samples.extend(created_samples)
        in_flight = GaugeMetricFamily(self.IN_FLIGHT, "HTTP requests being answered.", value=self.in_flight)
        return [requests, seconds, in_flight]


class WebMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, manager_registry: CollectorRegistry | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        if manager_registry is not None:
            self.registry.register(_Forward(manager_registry))  # type: ignore[arg-type]
        self.requests = RequestMetrics()
        self.registry.register(self.requests)  # type: ignore[arg-type]
        self.health_checks = Counter(
            "pipeline_secrets_health_checks", "Health checks made against AWS (cached polls not counted), by result.",
            ["result"], registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


class ObserveRequests:
    """ASGI middleware: counts, times and logs every HTTP request."""

    def __init__(self, app: ASGIApp, routes: list[BaseRoute], metrics: WebMetrics) -> None:
        self.app = app
        self.routes = routes
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        facts: dict[str, Any] = {}
        scope[SCOPE_KEY] = facts
        status = 500
        response_started = False

        async def send_observed(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status, response_started = message["status"], True
                # No answer of ours may be stored by a cache on the way: many carry secrets.
                headers = [h for h in message.get("headers", []) if h[0].lower() != NO_STORE[0]]
                message = {**message, "headers": [*headers, NO_STORE]}
            await send(message)

        requests = self.metrics.requests
        requests.in_flight += 1
        app = self.app
        names = {name for name, _ in scope.get("headers", ())}
        if b"content-length" in names and b"transfer-encoding" in names:
            app = _ambiguous_framing  # RFC 9112 6.3: a request smuggling vector behind proxies
        try:
            await app(scope, receive, send_observed)
        except asyncio.CancelledError:
            # uvicorn cancels what is still running once --shutdown-timeout is over: answer in
            # JSON rather than let uvicorn send its plain-text 500.
            facts.setdefault("error_type", "Cut")
            if response_started:
                raise
            with contextlib.suppress(Exception):
                await send_observed({"type": "http.response.start", "status": 503, "headers": [
                    (b"content-type", b"application/json"), (b"connection", b"close")]})
                await send_observed({"type": "http.response.body", "body": CUT_BODY})
        except BaseException as exc:
            facts.setdefault("error_type", type(exc).__name__)
            raise
        finally:
            requests.in_flight -= 1
            elapsed = time.perf_counter() - started
            route = self._route(scope)
            method = scope["method"] if scope["method"] in METHODS else "other"
            if facts.get("client_closed"):
                status = CLIENT_CLOSED
            requests.observe(method, route, status, elapsed)
            fields = {"method": method, "route": route, "status": status,
                      "duration_ms": round(elapsed * 1000, 3), "user": facts.pop("user", None), **facts}
            request_line(logging.WARNING if 500 <= status < 600 else logging.INFO, fields)

    def _route(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is not None and hasattr(route, "path"):
            return str(route.path)
        for candidate in self.routes:
            match, _ = candidate.matches(scope)
            if match is not Match.NONE and hasattr(candidate, "path"):
                return str(candidate.path)
        return UNMATCHED


async def _ambiguous_framing(scope: Scope, receive: Receive, send: Send) -> None:
    body = b'{"error": "a request may not have both Content-Length and Transfer-Encoding"}\n'
    await send({"type": "http.response.start", "status": 400, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
