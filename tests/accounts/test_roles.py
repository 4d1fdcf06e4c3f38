"""Role grants: given and taken back by admins, copied onto the user they name."""

from __future__ import annotations

from accounts.models import RoleGrant, User
from tests.accounts.calls import API
from tests.support import make_city, make_person


def test_role_grants_by_admin_only(client):
    admin = make_person(role="admin")
    ann = make_person("SZ")
    make_city("CD")
    forbidden = client.post(
        "/api/v1/admin/role-grants", headers=ann.headers, json={"user_id": ann.id, "role": "admin"}
    )
    assert forbidden.status_code == 403
    granted = client.post(
        "/api/v1/admin/role-grants",
        headers=admin.headers,
        json={"user_id": ann.id, "role": "circle_leader", "city_codes": ["SZ", "CD"]},
    )
    assert granted.status_code == 201, granted.json
    assert granted.json["city_codes"] == ["CD", "SZ"]
    assert client.get("/api/v1/me", headers=ann.headers).json["roles"] == ["circle_leader", "owner"]
    revoked = client.delete(
        f"/api/v1/admin/role-grants/{granted.json['id']}", headers=admin.headers
    )
    assert revoked.status_code == 204
    assert client.get("/api/v1/me", headers=ann.headers).json["roles"] == ["owner"]


def test_role_grant_refusals(client):
    admin = make_person(role="admin")
    ann = make_person("SZ")
    no_city = client.post(
        "/api/v1/admin/role-grants",
        headers=admin.headers,
        json={"user_id": ann.id, "role": "ambassador"},
    )
    assert no_city.status_code == 422 and no_city.json["error"] == "city_codes_required"
    unknown_city = client.post(
        "/api/v1/admin/role-grants",
        headers=admin.headers,
        json={"user_id": ann.id, "role": "ambassador", "city_codes": ["ZZ"]},
    )
    assert unknown_city.json["error"] == "unknown_city"
    nobody = client.post(
        "/api/v1/admin/role-grants",
        headers=admin.headers,
        json={"user_id": "0" * 24, "role": "admin"},
    )
    assert nobody.status_code == 404
    bad_role = client.post(
        "/api/v1/admin/role-grants", headers=admin.headers, json={"user_id": ann.id, "role": "king"}
    )
    assert bad_role.status_code == 422
    assert (
        client.delete("/api/v1/admin/role-grants/" + "0" * 24, headers=admin.headers).status_code
        == 404
    )


def test_init_db_copies_grants_recorded_before_the_copy_existed(app, client):
    leader = make_person()
    admin = make_person()
    # As the release before stored them: a RoleGrant, nothing on the user.
    RoleGrant(user_id=leader.user.pk, role="circle_leader", city_codes=["SZ"]).save()
    RoleGrant(user_id=admin.user.pk, role="admin").save()
    assert client.get(f"{API}/vehicles", headers=leader.headers).status_code == 403

    result = app.test_cli_runner().invoke(args=["init-db"])
    assert result.exit_code == 0, result.output
    assert "role grants copied onto 2 users" in result.output
    assert client.get(f"{API}/vehicles", headers=leader.headers).status_code == 200
    assert client.get(f"{API}/me", headers=admin.headers).json["roles"] == ["admin", "owner"]
    again = app.test_cli_runner().invoke(args=["init-db"])
    assert again.exit_code == 0
    assert [g.role for g in User.objects.get(pk=leader.user.pk).grants] == ["circle_leader"]
