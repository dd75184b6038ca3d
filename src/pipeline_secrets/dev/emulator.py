"""The embedded default behind ``--dev``: moto's Secrets Manager emulator, in-process on a random
loopback port, seeded from a YAML file of path -> value."""

from __future__ import annotations

import http.client
import json
import logging
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from ..aws import SecretsManagerBackend, make_client
from ..config import Settings
from ..errors import ConfigError, PipelineSecretsError
from ..pure.documents import load_document

DEV_ACCESS_KEY = "dev-access-key"
DEV_SECRET_KEY = "dev-secret-key"


def default_secrets_file() -> Path:
    return Path(str(resources.files("pipeline_secrets") / "examples" / "dev-secrets.yml"))


def example_pipeline_file() -> Path:
    return Path(str(resources.files("pipeline_secrets") / "examples" / "hello-pipeline.yml"))


@dataclass
class Emulator:
    """A running emulator; ``settings`` point at it with dummy credentials."""

    settings: Settings
    server: Any

    def stop(self) -> None:
        self.server.stop()


def read_seed(path: Path) -> dict[str, str]:
    """path -> SecretString from a seed file; mappings are stored as JSON objects."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--dev-secrets: cannot read '{path}': {exc}") from None
    try:
        data = load_document(text)
    except PipelineSecretsError as exc:
        raise ConfigError(f"--dev-secrets: '{path}': {exc}") from None
    if not isinstance(data, dict) or not all(isinstance(key, str) for key in data):
        raise ConfigError(f"--dev-secrets: '{path}' must be a mapping of secret path -> value")
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in data.items()}


def start_emulator(settings: Settings, secrets_file: Path | None = None) -> Emulator:
    """Start moto on 127.0.0.1 (random port), seed it, and return settings that use it."""
    seed = read_seed(secrets_file or default_secrets_file())
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        raise ConfigError(
            "--dev needs the embedded emulator: pip install 'pipeline-secrets[dev]'"
        ) from None
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    # moto keeps its state per process, not per server: without a reset, an emulator started
    # after another one in the same process would still hold the earlier seed's secrets.
    reset_moto(host, port)
    dev_settings = replace(
        settings,
        endpoint_url=f"http://{host}:{port}",
        access_key=DEV_ACCESS_KEY,
        secret_key=DEV_SECRET_KEY,
        session_token=None,
    )
    backend = SecretsManagerBackend(make_client(dev_settings))
    try:
        for path, value in seed.items():
            backend.put(path, value)
    finally:
        backend.close()
    return Emulator(dev_settings, server)


def reset_moto(host: str, port: int) -> None:
    """Drop all of moto's in-process state through its reset API (``POST /moto-api/reset``)."""
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request("POST", "/moto-api/reset", body=b"")
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise ConfigError(f"--dev: resetting the embedded emulator failed: HTTP {response.status}")
    finally:
        connection.close()
