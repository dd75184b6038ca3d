"""``web --dev``: a demo admin user and a banner with the URL, the credentials and two curl
commands that work as printed."""

from __future__ import annotations

import secrets
import shlex
from pathlib import Path

from ..dev import default_secrets_file, example_pipeline_file
from .server import Listener

DEMO_USER = "admin"
EXAMPLE_TEAM, EXAMPLE_PIPELINE = "main", "hello"


def demo_password() -> str:
    """A fresh password each start: the demo user is an admin, and the port may be reachable."""
    return secrets.token_urlsafe(12)


def local_url(listener: Listener) -> str:
    """The listener's URL as a client on this machine reaches it (0.0.0.0 and :: are no address)."""
    url = listener.url
    for wildcard, loopback in (("://0.0.0.0:", "://127.0.0.1:"), ("://[::]:", "://[::1]:")):
        url = url.replace(wildcard, loopback)
    return url


def curl_commands(url: str, user: str, password: str, pipeline_file: Path | None = None) -> list[str]:
    credentials = shlex.quote(f"{user}:{password}")
    document = pipeline_file or example_pipeline_file()
    return [
        f"curl -sS -u {credentials} {shlex.quote(url + '/api/v1/info/creds')}",
        f"curl -sS -u {credentials} -H 'Content-Type: application/yaml' "
        f"--data-binary @{shlex.quote(str(document))} "
        + shlex.quote(f"{url}/api/v1/teams/{EXAMPLE_TEAM}/pipelines/{EXAMPLE_PIPELINE}/vars/interpolate"),
    ]


def banner(listener: Listener, password: str, secrets_file: Path | None) -> str:
    url = local_url(listener)
    lines = [
        "pipeline-secrets web node, dev mode: the embedded Secrets Manager emulator, seeded from",
        f"  {secrets_file or default_secrets_file()}",
        "",
        f"  URL:       {url}",
        f"  user:      {DEMO_USER}   (team {EXAMPLE_TEAM}: an admin)",
        f"  password:  {password}",
        "",
        "Try:",
        *(f"  {command}" for command in curl_commands(url, DEMO_USER, password)),
        "",
        "Stop with Ctrl+C. Request logs (JSON) go to stderr.",
    ]
    return "\n".join(lines)
