"""The web node: ``pipeline-secrets web``, an authenticated HTTP service over the manager.

- ``app``: the routes (Starlette) and how errors become HTTP answers;
- ``auth``: local users, passwords (bcrypt) and bearer tokens;
- ``teams``: who belongs to which team (the teams file, the main team's admins);
- ``health``: the cached health check behind ``/api/v1/info/creds``;
- ``observe``: HTTP metrics and the one-line-per-request log, as ASGI middleware;
- ``logs``: JSON log lines;
- ``server``: uvicorn listeners, TLS and graceful shutdown on SIGTERM;
- ``admission``: fairness between teams and clients (gates, slots, the auth queue, login throttling);
- ``devmode``: the demo user and the banner of ``web --dev``.

The click command ``web`` is in ``cli.webnode``.
"""
