"""An ecosystem partner's system for tests: registered by an admin through the API, sending
requests signed as docs/api-guide.md says, through the test client or a live server."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import requests

from tests.support import partner_signature

API = "/api/v1"


@dataclass
class PartnerSystem:
    id: str
    key: str
    secret: str

    def headers(self, raw: bytes, *, secret: str | None = None, stamp: int | None = None) -> dict:
        timestamp = str(stamp or int(time.time()))
        return {
            "Content-Type": "application/json",
            "X-Partner-Key": self.key,
            "X-Timestamp": timestamp,
            "X-Signature": partner_signature(secret or self.secret, timestamp, raw),
        }

    def post(self, client: Any, path: str, body: dict[str, Any], **signing: Any) -> Any:
        """A signed POST through the Flask test client."""
        raw = json.dumps(body).encode()
        return client.post(f"{API}{path}", data=raw, headers=self.headers(raw, **signing))

    def post_live(self, http: requests.Session, base: str, path: str, body: dict) -> Any:
        """A signed POST to a live server."""
        raw = json.dumps(body).encode()
        return http.post(f"{base}{API}{path}", data=raw, headers=self.headers(raw))


def register_partner(client: Any, admin: Any, **settings: Any) -> PartnerSystem:
    """An ecosystem partner registered by `admin`, with `settings` set (caps, rates...)."""
    created = client.post(
        f"{API}/admin/partners",
        headers=admin.headers,
        json={"name": settings.pop("name", "ChargeCo"), "max_points_per_txn": 5_000},
    )
    assert created.status_code == 201, created.json
    partner = PartnerSystem(created.json["id"], created.json["key"], created.json["secret"])
    if settings:
        changed = client.patch(
            f"{API}/admin/partners/{partner.id}", headers=admin.headers, json=settings
        )
        assert changed.status_code == 200, changed.json
    return partner


def pay_code(client: Any, owner: Any, max_points: int, partner_id: str | None = None) -> str:
    body: dict[str, Any] = {"max_points": max_points}
    if partner_id:
        body["partner_id"] = partner_id
    issued = client.post(f"{API}/me/pay-codes", headers=owner.headers, json=body)
    assert issued.status_code == 201, issued.json
    return issued.json["code"]
