"""What the accounts tests send: sign-ups, logins, refreshes and the caller's profile."""

from __future__ import annotations

API = "/api/v1"
REGISTER = f"{API}/auth/register"
PASSWORD = "password-123"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def register(client, **overrides):
    body = {
        "email": "Ann@Example.com",
        "password": PASSWORD,
        "display_name": "Ann",
        "city_code": "SZ",
        **overrides,
    }
    return client.post(REGISTER, json={k: v for k, v in body.items() if v is not None})


def log_in(client, email: str, password: str = PASSWORD, **extra) -> dict:
    response = client.post(
        f"{API}/auth/login", json={"email": email, "password": password, **extra}
    )
    assert response.status_code == 200, response.json
    return response.json


def refresh(client, refresh_token: str):
    return client.post(f"{API}/auth/refresh", headers=bearer(refresh_token))


def me(client, access_token: str):
    return client.get(f"{API}/me", headers=bearer(access_token))
