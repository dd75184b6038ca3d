"""The routes of the web node and how their errors become HTTP answers.

Every answer is JSON (``{"error": "<message>"}`` for errors) except interpolations of YAML
documents (YAML out) and ``/metrics`` (Prometheus text). Blocking work (AWS calls, bcrypt, parsing
and dumping documents) runs in worker threads under a limiter, never on the event loop (what
this node's memory answers whole, a lookup or a small document within ``ON_LOOP_LIMITS``, is
answered on the loop: the thread hop cost more than the work), and is
admitted fairly (``admission``): per team for lookups and documents, per client address for
password checks. Every input has a budget; see ``WebLimits`` and docs/security.md.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp

from ..errors import (
    DocumentError,
    FieldError,
    LimitError,
    LookupFailed,
    PipelineSecretsError,
    ScopeNameError,
    UndefinedVarsError,
    VarNameError,
    VarSourceError,
    VarSyntaxError,
)
from ..manager import Manager
from ..pure.documents import check_size, encode_document, parse_document
from ..pure.environment import env_mapping
from ..pure.limits import DocumentLimits
from ..tools.environment import resolve_environment
from .admission import AuthQueue, LoginThrottle, Overloaded, Slots, TeamGates
from .auth import MAX_PASSWORD_BYTES, MAX_USER_NAME_CHARS, Authenticator
from .health import CachedHealth
from .heap import give_back_free_memory
from .logs import log
from .observe import SCOPE_KEY, ObserveRequests, WebMetrics
from .parsed import ParsedDocuments
from .teams import MAIN_TEAM, Teams, check_team_name

AWS_THREADS = 32  # the boto3 client's connection pool
AUTH_THREADS = 4  # bcrypt is CPU: a flood of wrong passwords must not take every worker thread
MAX_TOKEN_BODY_BYTES = 16 * 1024  # a password grant is ~200 bytes
TOKEN_BODY_TIMEOUT = 5.0  # ... and comes at once: nobody authenticated waits on a slow one
CHUNK_BYTES = 64 * 1024
LARGE_BODY_BYTES = 1024 * 1024  # after a document this large, free heap pages go back to the system
# A document this small whose every var this node's memory answers is answered on the event loop
# (no thread hop: for small documents the hop cost more than the work), within these budgets, far
# under the flags' defaults, so that no document holds the loop for more than a few milliseconds;
# past any of them, or when memory does not answer, the document goes to a worker thread whole.
# What the event loop may do for one document (the rest goes to a worker thread): one team's
# documents must not hold the loop, and so every other team's requests, for long. Each step
# (reading, interpolating, writing) has 1 ms; a document over any of these starts again in a thread.
ON_LOOP_MAX_BYTES = 16 * 1024
ON_LOOP_LIMITS = DocumentLimits(max_bytes=ON_LOOP_MAX_BYTES, max_expanded_bytes=64 * 1024, max_nodes=1024,
                                max_vars=64, max_seconds=0.001)
ON_LOOP_MAX_SOURCES = 2  # var sources a document answered on the loop may declare


@dataclass(frozen=True)
class WebLimits:
    """The web node's budgets, from its flags (docs/security.md has the table)."""

    team_concurrency: int = 4  # requests of one team doing AWS or document work at once
    team_queue: int = 32  # requests of one team waiting for that; more answer 429
    document_slots: int = 4  # documents read, parsed and interpolated at once (memory)
    body_timeout: float = 30.0  # a request body must arrive within this; 408 otherwise
    auth_queue: int = 32  # password checks in flight or waiting; more answer 503
    auth_per_client: int = 4  # of which from one client address; more answer 429
YAML_MEDIA_TYPE = "application/yaml"
JSON_MEDIA_TYPE = "application/json"
CHALLENGE = 'Basic realm="pipeline-secrets", Bearer realm="pipeline-secrets"'

PIPELINE_ROUTE = "/api/v1/teams/{team}/pipelines/{pipeline}/vars"
TEAM_ROUTE = "/api/v1/teams/{team}/vars"


MAX_LOGGED_NAME_CHARS = 128
BEARER_ATTEMPTS = "\0bearer"  # the login throttle's "user" for tokens this node does not know


def loggable_name(name: str) -> str:
    """A name from the URL as a log line shows it: at most ``MAX_LOGGED_NAME_CHARS`` characters."""
    if len(name) <= MAX_LOGGED_NAME_CHARS:
        return name
    return f"{name[:MAX_LOGGED_NAME_CHARS]}...({len(name):,} characters)"


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def status_for(exc: PipelineSecretsError) -> int:
    """422: the document or the var is wrong; 413: over a budget; 502: AWS did not answer found
    or not found."""
    if isinstance(exc, LookupFailed):
        return 502
    if isinstance(exc, (UndefinedVarsError, VarSyntaxError, VarNameError, FieldError, VarSourceError)):
        return 422
    if isinstance(exc, LimitError):
        return 413
    if isinstance(exc, (ScopeNameError, DocumentError)):
        return 400
    return 500


_ENCODE_JSON = json.JSONEncoder(ensure_ascii=False).encode  # one encoder: json.dumps builds one per call with options


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None, **dumps: Any) -> Response:
    text = (json.dumps(body, ensure_ascii=False, **dumps) if dumps else _ENCODE_JSON(body)) + "\n"
    return Response(text, status, headers, media_type=JSON_MEDIA_TYPE)


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response({"error": message}, status, headers)


class HeldResponse(Response):
    """An answer sent in ``CHUNK_BYTES`` pieces under the server's flow control, calling
    ``release`` once it is sent, or could not be."""

    def __init__(self, content: bytes, media_type: str, release: Callable[[], Awaitable[Any]]) -> None:
        super().__init__(content, media_type=media_type)
        self._release = release

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            body = memoryview(self.body)
            for start in range(0, max(len(body), 1), CHUNK_BYTES):
                await send({"type": "http.response.body", "body": bytes(body[start:start + CHUNK_BYTES]),
                            "more_body": start + CHUNK_BYTES < len(body)})
        finally:
            await self._release()


class DirectRoutes:
    """ASGI app: a GET of one of ``routes`` (the lookups: most of a node's requests) goes straight
    to its endpoint, everything else through ``app``, the Starlette app they are routes of.

    Starlette's middleware (its error and exception handlers) and its router's walk cost a cached
    lookup a tenth of its time, and do nothing for these endpoints: ``endpoint`` turns every
    error into its answer, and the match is the route's own (``Route.matches``: the same path
    parameters, the same methods; a method the route does not take goes on to Starlette, which
    answers 405)."""

    def __init__(self, app: ASGIApp, routes: list[Route]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            for route in self.routes:
                match, child = route.matches(scope)
                if match is Match.FULL:
                    scope.update(child)
                    scope["route"] = route
                    response = await route.endpoint(Request(scope, receive, send))
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def _facts(request: Request) -> dict[str, Any]:
    return request.scope.setdefault(SCOPE_KEY, {})


Handler = Callable[["WebNode", Request], Awaitable[Response]]


def endpoint(handler: Handler) -> Handler:
    """Our errors become their HTTP answer; anything else a 500 that says nothing of what it held."""

    @functools.wraps(handler)
    async def wrapper(self: WebNode, request: Request) -> Response:
        facts = _facts(request)
        try:
            return await handler(self, request)
        except HttpError as exc:
            return error_response(exc.status, exc.message, exc.headers)
        except Overloaded as exc:
            facts["error_type"] = "Overloaded"
            return error_response(exc.status, exc.message, {"Retry-After": str(exc.retry_after)})
        except PipelineSecretsError as exc:
            status = status_for(exc)
            facts["error_type"] = type(exc).__name__
            if status >= 500:  # messages are safe to log; 502s are what operators look for
                facts["error"] = str(exc)
            # AWS's own text (endpoint, account, identity) is for the operator's log, not for clients.
            message = exc.public_message() if isinstance(exc, LookupFailed) else str(exc)
            return error_response(status, message)
        except ClientDisconnect:
            facts["client_closed"] = True
            return error_response(400, "client disconnected")  # nobody reads it
        except Exception as exc:
            facts["error_type"] = type(exc).__name__
            log.error("unexpected error", exc_info=True, extra={"fields": {"route": request.url.path}})
            return error_response(500, "internal error")

    return wrapper


class WebNode:
    """The web node's state: the manager, who may do what, the health cache, the metrics."""

    def __init__(
        self, manager: Manager, auth: Authenticator, teams: Teams, *, health_ttl: float,
        limits: WebLimits = WebLimits(),
    ) -> None:
        self.manager = manager
        self.auth = auth
        self.teams = teams
        self.limits = limits
        self.metrics = WebMetrics(manager.metrics_registry)
        self.health = CachedHealth(self._check_health, health_ttl)
        self._aws_limiter: anyio.CapacityLimiter | None = None
        self._auth_limiter: anyio.CapacityLimiter | None = None
        self._token_limiter: anyio.CapacityLimiter | None = None
        self._password_checks: dict[bytes, asyncio.Future[bool]] = {}
        self._teams_gates = TeamGates(limits.team_concurrency, limits.team_queue)
        self._documents = Slots(limits.document_slots, per_team=max(1, limits.document_slots // 2))
        self._auth_queue = AuthQueue(limits.auth_queue, limits.auth_per_client)
        self._logins = LoginThrottle()
        self._parsed = ParsedDocuments()
        self._on_loop_limits = on_loop_limits(manager.settings.limits)

    def routes(self) -> list[Route]:
        # The router tries routes in order, a regular expression each: the busiest come first.
        return [
            Route(f"{PIPELINE_ROUTE}/lookup", self.lookup, methods=["GET"]),
            Route(f"{TEAM_ROUTE}/lookup", self.lookup, methods=["GET"]),
            Route(f"{PIPELINE_ROUTE}/interpolate", self.interpolate, methods=["POST"]),
            Route(f"{TEAM_ROUTE}/interpolate", self.interpolate, methods=["POST"]),
            Route(f"{PIPELINE_ROUTE}/env", self.environment, methods=["POST"]),
            Route(f"{TEAM_ROUTE}/env", self.environment, methods=["POST"]),
            Route("/api/v1/health", self.alive, methods=["GET"]),
            Route("/api/v1/info/creds", self.info_creds, methods=["GET"]),
            Route(f"{PIPELINE_ROUTE}/cache", self.invalidate, methods=["DELETE"]),
            Route(f"{TEAM_ROUTE}/cache", self.invalidate, methods=["DELETE"]),
            Route("/sky/issuer/token", self.token, methods=["POST"]),
            Route("/metrics", self.prometheus, methods=["GET"]),
        ]

    def asgi(self) -> ASGIApp:
        routes = self.routes()

        async def http_error(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, HTTPException)
            return error_response(exc.status_code, str(exc.detail).lower(), exc.headers)

        # No trailing-slash redirects: Starlette builds them from the request's Host header.
        app = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
        app.router.redirect_slashes = False
        lookups = [route for route in routes if route.endpoint == self.lookup]
        return ObserveRequests(DirectRoutes(app, lookups), routes, self.metrics)

    # --- endpoints ------------------------------------------------------------------------------

    @endpoint
    async def alive(self, request: Request) -> Response:
        """Liveness and readiness for load balancers: no authentication, no AWS call."""
        return json_response({"status": "ok"})

    @endpoint
    async def info_creds(self, request: Request) -> Response:
        user = await self._authenticate(request)
        if not self.teams.is_admin(user):
            raise HttpError(403, "forbidden")
        settings = self.manager.settings
        body = {"secretsmanager": {
            "aws_region": settings.region,
            "health": await self.health.get(),
            "pipeline_secret_template": settings.pipeline_secret_template,
            "shared_secret_template": settings.shared_secret_template,
            "team_secret_template": settings.team_secret_template,
        }}
        tier = self.manager.tier()
        if tier is not None:
            body["redis"] = tier
        roles = await self._aws(self.manager.roles, MAIN_TEAM)  # the admins' team is the probe team
        if roles is not None:
            body["secretsmanager"]["team_roles"] = roles
        return json_response(body, sort_keys=True)

    @endpoint
    async def invalidate(self, request: Request) -> Response:
        """Admins only: forget what the fleet has cached of ``var`` for this team (or pipeline),
        so that the next lookup on any node reads AWS again."""
        team, pipeline = await self._authorize(request)
        if not self.teams.is_admin(_facts(request)["user"]):
            raise HttpError(403, "forbidden: only members of the main team may invalidate cached secrets")
        var = request.query_params.get("var")
        if not var:
            raise HttpError(400, "missing query parameter 'var'")
        paths = await self._aws(self.manager.invalidate, var, team=team, pipeline=pipeline)
        return json_response({"invalidated": paths, "shared": self.manager.tier() is not None})

    @endpoint
    async def lookup(self, request: Request) -> Response:
        team, pipeline = await self._authorize(request)
        var = request.query_params.get("var")
        if not var:
            raise HttpError(400, "missing query parameter 'var'")
        cached, value = self.manager.lookup_cached(var, team=team, pipeline=pipeline)  # on the loop: memory only
        if cached:
            return json_response({"value": value})
        async with self._teams_gates.enter(team):
            value = await self._aws(self.manager.lookup, var, team=team, pipeline=pipeline)
        return json_response({"value": value})

    @endpoint
    async def interpolate(self, request: Request) -> Response:
        team, pipeline = await self._authorize(request)
        as_json = _is_json(request.headers.get("content-type"))
        allow_missing = _flag(request, "allow_missing")
        drop_var_sources = _flag(request, "drop_var_sources")
        limits = self.manager.settings.limits

        def work(body: bytes) -> bytes:
            document = _load(body, as_json, limits)
            result = self.manager.interpolate(document, team=team, pipeline=pipeline,
                                              allow_missing=allow_missing, drop_var_sources=drop_var_sources)
            return encode_document(result, limits, as_json=as_json)

        def from_memory(body: bytes) -> bytes | None:
            return interpolate_on_loop(self.manager, self._parsed, self._on_loop_limits, body, as_json, team, pipeline,
                                       allow_missing, drop_var_sources)

        return await self._document(request, team, work, JSON_MEDIA_TYPE if as_json else YAML_MEDIA_TYPE,
                                    from_memory)

    @endpoint
    async def environment(self, request: Request) -> Response:
        """The resolved environment of a mapping ``NAME -> text with ((vars))`` (YAML, or JSON by
        content type), as ``{"env": {NAME: value}}``: for runners that start their own processes.
        The same gates, budgets and errors as ``interpolate``; every var must be defined."""
        team, pipeline = await self._authorize(request)
        as_json = _is_json(request.headers.get("content-type"))
        limits = self.manager.settings.limits

        def work(body: bytes) -> bytes:
            mapping = env_mapping(_load(body, as_json, limits), "the body")
            resolved = resolve_environment(self.manager, mapping, team=team, pipeline=pipeline, with_secrets=False)
            return encode_document({"env": resolved.values}, limits, as_json=True)

        return await self._document(request, team, work, JSON_MEDIA_TYPE)

    async def _document(
        self, request: Request, team: str, work: Callable[[bytes], bytes], media_type: str,
        from_memory: Callable[[bytes], bytes | None] | None = None,
    ) -> Response:
        """A document endpoint: the body read and ``work`` done (in a worker thread, unless
        ``from_memory`` answers a small body on the loop), with the team's gate and a document
        slot held until the answer is sent: a client that does not read its answer holds its own
        team's slot (until --send-timeout), not memory."""
        limits = self.manager.settings.limits
        held = contextlib.AsyncExitStack()
        await held.enter_async_context(self._teams_gates.enter(team))
        try:
            await held.enter_async_context(self._documents.hold(team))
            body = await self._read_body(request, limits.max_bytes, self.limits.body_timeout)

            def in_thread() -> bytes:
                try:
                    return work(body)
                finally:
                    if len(body) >= LARGE_BODY_BYTES:
                        give_back_free_memory()  # its pieces came from the heap: do not keep them

            data = from_memory(body) if from_memory is not None and len(body) <= ON_LOOP_MAX_BYTES else None
            if data is None:
                data = await self._aws(in_thread)
        except BaseException:
            await held.aclose()
            raise
        return HeldResponse(data, media_type, held.aclose)

    @endpoint
    async def token(self, request: Request) -> Response:
        """OAuth2 password grant, as ``fly login`` uses it: a bearer token for a local user."""
        body = await self._read_body(request, MAX_TOKEN_BODY_BYTES, TOKEN_BODY_TIMEOUT)
        form = await anyio.to_thread.run_sync(_token_form, request.headers.get("content-type"), body)
        if form.get("grant_type") != "password":
            raise HttpError(400, "unsupported_grant_type")
        user, password = form.get("username"), form.get("password")
        if not user or not password:
            raise HttpError(400, "invalid_request: username and password are required")
        if not await self._check_password(request, user, password):
            return json_response({"error": "invalid_grant", "error_description": "invalid username or password"}, 401)
        _facts(request)["user"] = user
        body = {"access_token": self.auth.issue_token(user), "token_type": "bearer",
                "expires_in": int(self.auth.token_duration)}
        return json_response(body, headers={"Pragma": "no-cache"})  # and Cache-Control: no-store, as every answer

    @endpoint
    async def prometheus(self, request: Request) -> Response:
        return Response(self.metrics.render(), headers={"Content-Type": self.metrics.content_type})

    # --- helpers --------------------------------------------------------------------------------

    async def _authenticate(self, request: Request) -> str:
        """The user of a valid Basic or bearer credential; 401 otherwise (the same answer for every
        kind of failure)."""
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        scheme, credentials = scheme.lower(), credentials.strip()
        user: str | None = None
        if scheme == "basic":
            claimed, password = _basic(credentials)
            if claimed and password and await self._check_password(request, claimed, password):
                user = claimed
        elif scheme == "bearer" and credentials:
            user = self.auth.user_for_token(credentials, ask_shared=False)  # memory only: on the loop
            if user is None and self.auth.shares_tokens:
                user = await self._shared_token_user(request, credentials)
        if user is None:
            raise HttpError(401, "not authorized", {"WWW-Authenticate": CHALLENGE})
        _facts(request)["user"] = user
        return user

    async def _authorize(self, request: Request) -> tuple[str, str | None]:
        """(team, pipeline) of the URL once the caller may use that team: 401, 403, then 400 for
        names that cannot be part of a path."""
        team = request.path_params["team"]
        pipeline = request.path_params.get("pipeline")
        facts = _facts(request)
        facts["team"] = loggable_name(team)  # logged before anyone is authenticated: bounded
        if pipeline is not None:
            facts["pipeline"] = loggable_name(pipeline)
        user = await self._authenticate(request)
        if not self.teams.may_access(user, team):
            raise HttpError(403, "forbidden")
        check_team_name(team, pipeline)
        return team, pipeline

    async def _shared_token_user(self, request: Request, token: str) -> str | None:
        """A token this node does not know, asked of the fleet's Redis in a worker thread. An
        address whose made-up tokens keep failing is throttled as failed logins are (429)."""
        client = request.client.host if request.client else ""
        self._logins.check(client, BEARER_ATTEMPTS)
        if self._token_limiter is None:
            self._token_limiter = anyio.CapacityLimiter(AUTH_THREADS)
        user = await anyio.to_thread.run_sync(self.auth.user_for_token, token, limiter=self._token_limiter)
        if user is None:
            self._logins.failed(client, BEARER_ATTEMPTS, of_user=False)
        return user

    async def _check_password(self, request: Request, user: str, password: str) -> bool:
        """bcrypt in a worker thread; concurrent checks of one credential share one bcrypt run.
        A verified pair answers at once; anything else is admitted by the login throttle and the
        bounded auth queue first (``Overloaded``: 429 or 503, the latter costing the address a
        token) and counted if it fails. User names and passwords too long to be anyone's are
        refused before any of that, leaving no state."""
        if len(user) > MAX_USER_NAME_CHARS or len(password) > MAX_PASSWORD_BYTES:
            return False
        key = self.auth.credential_key(user, password)
        if self.auth.remembered(key):
            return True
        client = request.client.host if request.client else ""
        self._logins.check(client, user)
        pending = self._password_checks.get(key)
        first = pending is None
        if pending is None:
            share = (AuthQueue.TRUSTED if self._logins.trusted(client, user)
                     else AuthQueue.KNOWN if self.auth.knows(user) else AuthQueue.UNKNOWN)
            refused = functools.partial(self._logins.spend, "client", client, "")
            with self._auth_queue.admit(client, share, on_refused=refused):
                if self._auth_limiter is None:
                    self._auth_limiter = anyio.CapacityLimiter(AUTH_THREADS)
                pending = asyncio.ensure_future(
                    anyio.to_thread.run_sync(self.auth.check_password, user, password, limiter=self._auth_limiter)
                )
                self._password_checks[key] = pending
                pending.add_done_callback(lambda _: self._password_checks.pop(key, None))
                ok = await asyncio.shield(pending)
        else:
            ok = await asyncio.shield(pending)
        if ok:
            if first:  # one check makes one address trusted, not every address that joined it
                self._logins.succeeded(client, user)
        else:  # the user's bucket pays once per check, each address that joined pays for itself
            self._logins.failed(client, user, of_user=first)
        return ok

    async def _aws(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``func`` in a worker thread; a cancelled request (shutdown) does not wait for it."""
        if self._aws_limiter is None:
            self._aws_limiter = anyio.CapacityLimiter(AWS_THREADS)
        return await anyio.to_thread.run_sync(
            functools.partial(func, *args, **kwargs), limiter=self._aws_limiter, abandon_on_cancel=True
        )

    async def _read_body(self, request: Request, max_bytes: int, timeout: float) -> bytes:
        """The whole body, refused (413) past ``max_bytes`` before reading on, and (408) when it
        does not arrive within ``timeout`` seconds."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit():
            check_size(int(declared), DocumentLimits(max_bytes=max_bytes))
        chunks, size = [], 0
        with anyio.move_on_after(timeout) as timer:
            async for chunk in request.stream():
                size += len(chunk)
                check_size(size, DocumentLimits(max_bytes=max_bytes))
                chunks.append(chunk)
        if timer.cancelled_caught:
            raise HttpError(408, f"the request body did not arrive within {timeout:g}s")
        return b"".join(chunks)

    async def _check_health(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._aws(self.manager.health)
        self.metrics.health_checks.labels("error" if "error" in result else "up").inc()
        if "error" in result:
            log.warning("health check failed", extra={"fields": {"error": result["error"]}})
        return result


def _basic(credentials: str) -> tuple[str | None, str | None]:
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None, None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else (None, None)


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";")[0].strip().lower()
    return media == JSON_MEDIA_TYPE or media.endswith("+json")


def _flag(request: Request, name: str) -> bool:
    value = request.query_params.get(name, "false").strip().lower()
    if value in ("", "1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise HttpError(400, f"query parameter '{name}' must be true or false")


def _load(body: bytes, as_json: bool, limits: DocumentLimits) -> Any:
    return parse_document(_text(body), limits, as_json=as_json).value


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise DocumentError("the document is not UTF-8 text") from None


def _token_form(content_type: str | None, body: bytes) -> dict[str, str]:
    try:
        if _is_json(content_type):
            data = json.loads(body)
            if isinstance(data, dict):
                return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}
            raise ValueError
        return {k: v[0] for k, v in parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20).items()}
    except (ValueError, RecursionError):
        raise HttpError(400, "invalid_request: send a form (application/x-www-form-urlencoded)") from None


def create_app(
    manager: Manager, auth: Authenticator, teams: Teams, *, health_ttl: float, limits: WebLimits = WebLimits()
) -> ASGIApp:
    return WebNode(manager, auth, teams, health_ttl=health_ttl, limits=limits).asgi()


def on_loop_limits(limits: DocumentLimits) -> DocumentLimits:
    """The tighter of ``limits`` (the settings') and ``ON_LOOP_LIMITS``, budget by budget."""
    return DocumentLimits(
        max_bytes=min(limits.max_bytes, ON_LOOP_LIMITS.max_bytes),
        max_expanded_bytes=min(limits.max_expanded_bytes, ON_LOOP_LIMITS.max_expanded_bytes),
        max_nodes=min(limits.max_nodes, ON_LOOP_LIMITS.max_nodes), max_depth=limits.max_depth,
        max_vars=min(limits.max_vars, ON_LOOP_LIMITS.max_vars),
        max_seconds=min(limits.max_seconds, ON_LOOP_LIMITS.max_seconds))


def interpolate_on_loop(manager: Manager, parsed: ParsedDocuments, tight: DocumentLimits, body: bytes,
                        as_json: bool, team: str, pipeline: str | None, allow_missing: bool,
                        drop_var_sources: bool) -> bytes | None:
    """The answer to a small document whose vars this node's memory answers, built on the loop
    within ``tight`` (``on_loop_limits``); None when a worker thread must do it (a var not in
    memory, more than ``ON_LOOP_MAX_SOURCES`` var sources, a budget of the loop's passed: the
    thread starts again within the settings' budgets, and says which one a document is over).
    The team's documents parsed lately (``parsed``) are not parsed again."""
    try:
        kept, document = parsed.get(team, body, as_json)
        if not kept:
            reading = parse_document(_text(body), tight, as_json=as_json)
            parsed.put(team, body, as_json, reading)
            document = reading.value
        sources = document.get("var_sources") if isinstance(document, dict) else None
        if isinstance(sources, list) and len(sources) > ON_LOOP_MAX_SOURCES:
            return None
        cached, result = manager.interpolate_cached(
            document, team=team, pipeline=pipeline, allow_missing=allow_missing,
            drop_var_sources=drop_var_sources, limits=tight)
        return encode_document(result, tight, as_json=as_json) if cached else None
    except LimitError:
        return None
