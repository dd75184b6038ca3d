"""Client-side helpers of the web tests: credentials headers and the password grant."""

from __future__ import annotations

import base64

import httpx

from .webserver import PASSWORDS


def basic(user: str, password: str | None = None) -> dict[str, str]:
    """An Authorization header for HTTP Basic; the user's own password unless given."""
    pair = f"{user}:{PASSWORDS[user] if password is None else password}"
    return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def login(http: httpx.Client, user: str, password: str | None = None) -> httpx.Response:
    """The password grant, as ``fly login`` sends it (form body, fly's client credentials)."""
    return http.post(
        "/sky/issuer/token",
        data={"grant_type": "password", "username": user,
              "password": PASSWORDS[user] if password is None else password,
              "scope": "openid profile email federated:id groups"},
        auth=("fly", "Zmx5"),
    )


def token_for(http: httpx.Client, user: str) -> str:
    response = login(http, user)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])
