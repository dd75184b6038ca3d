"""Fixtures of the web tests, loaded by the modules that use them with
``pytest_plugins = ["support.webfixtures"]`` (never imported directly); ``web`` is module-scoped,
so each module gets its own server process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .faultproxy import FaultProxy
from .webserver import TEAMS_YAML, WebServer, start_test_server


@pytest.fixture(scope="module")
def teams_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("web") / "teams.yml"
    path.write_text(TEAMS_YAML)
    return path


@pytest.fixture(scope="module")
def web(_session_proxy: FaultProxy, teams_file: Path) -> Iterator[WebServer]:
    server = start_test_server(_session_proxy, teams_file)
    yield server
    server.close()


@pytest.fixture
def client(web: WebServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=web.url, trust_env=False, timeout=30) as http:
        yield http
