"""An owner's personal data: its export and its erasure."""

from __future__ import annotations

from accounts.models import User, Vehicle
from app.outbox import OutboxEvent
from tests.support import add_vehicle, make_person


def test_export_contains_the_callers_data_only(client):
    ann = make_person("SZ", email="ann@example.com")
    make_person("SZ", email="bob@example.com")
    add_vehicle(client, ann.headers, "LSJA24U69MS000006")
    export = client.get("/api/v1/me/export", headers=ann.headers)
    assert export.status_code == 200
    body = export.json
    assert body["user_id"] == ann.id
    assert body["account"]["profile"]["email"] == "ann@example.com"
    assert [v["vin"] for v in body["account"]["vehicles"]] == ["LSJA24U69MS000006"]
    assert "bob@example.com" not in export.get_data(as_text=True)


def test_erasure_anonymises_and_revokes_access(client):
    ann = make_person("SZ", email="ann@example.com", phone="13800138000")
    add_vehicle(client, ann.headers, "LSJA24U69MS000007")
    assert client.delete("/api/v1/me", headers=ann.headers).status_code == 204
    erased = User.objects.get(pk=ann.user.pk)
    assert (erased.email, erased.phone, erased.display_name) == (None, None, "Deleted user")
    assert erased.erased_at is not None
    assert Vehicle.objects.get(owner_id=ann.user.pk).vin.startswith("ERASED-")
    assert OutboxEvent.objects(type="user.erased", subject_id=ann.id).count() == 1
    assert client.get("/api/v1/me", headers=ann.headers).status_code == 401
    login = client.post(
        "/api/v1/auth/login", json={"email": "ann@example.com", "password": "password-123"}
    )
    assert login.status_code == 401
    # The email and the VIN are free again.
    make_person("SZ", email="ann@example.com")
    other = make_person("SZ")
    add_vehicle(client, other.headers, "LSJA24U69MS000007")
