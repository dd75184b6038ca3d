"""The reference for the web benchmark: a bare Starlette app on the same uvicorn settings, doing
the minimum our endpoints must do and nothing else.

- ``GET /api/v1/teams/{team}/pipelines/{pipeline}/vars/lookup?var=VAR``: parse the request, decode
  the Basic header, check the pair against a memory cache of verified credentials (an HMAC, as
  ours), answer ``{"value": ...}`` from a dict.
- ``POST .../vars/interpolate``: YAML load and dump of the body (PyYAML's C loader and dumper,
  as ours), no vars replaced.

    python bench/bare_app.py PORT USER PASSWORD
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import sys

import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

KEY = secrets.token_bytes(32)
VALUES = {"bench-value": "value-of-the-bench-secret"}


def make_app(user: str, password: str) -> Starlette:
    verified = {hmac.new(KEY, f"{user}\0{password}".encode(), hashlib.sha256).digest()}

    def authorized(request: Request) -> bool:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        name, _, secret = base64.b64decode(credentials).decode().partition(":")
        return hmac.new(KEY, f"{name}\0{secret}".encode(), hashlib.sha256).digest() in verified

    async def lookup(request: Request) -> Response:
        if not authorized(request):
            return JSONResponse({"error": "not authorized"}, 401)
        return JSONResponse({"value": VALUES.get(request.query_params.get("var", ""))})

    async def interpolate(request: Request) -> Response:
        if not authorized(request):
            return JSONResponse({"error": "not authorized"}, 401)
        document = yaml.load(await request.body(), Loader=yaml.CSafeLoader)
        text = yaml.dump(document, Dumper=yaml.CSafeDumper, sort_keys=False, allow_unicode=True)
        return Response(text, media_type="application/yaml")

    return Starlette(routes=[
        Route("/api/v1/teams/{team}/pipelines/{pipeline}/vars/lookup", lookup, methods=["GET"]),
        Route("/api/v1/teams/{team}/pipelines/{pipeline}/vars/interpolate", interpolate, methods=["POST"]),
    ])


if __name__ == "__main__":
    port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    # The same settings as the web node: h11, no access log, no server header, keep-alive 5 s.
    uvicorn.run(make_app(user, password), host="127.0.0.1", port=port, http="h11", access_log=False,
                server_header=False, timeout_keep_alive=5, log_level="warning", lifespan="off")
