from __future__ import annotations

from accounts.models import User
from tests.community.conftest import API, owner
from tests.support import make_person


def test_a_leader_creates_a_city_club_and_owners_join_and_leave(client, leader):
    created = client.post(
        f"{API}/clubs",
        json={"name": "SZ drivers", "kind": "city", "city_code": "SZ"},
        headers=leader.headers,
    )
    assert created.status_code == 201, created.json
    club_id = created.json["id"]
    member = owner()
    joined = client.post(f"{API}/clubs/{club_id}/members", headers=member.headers)
    assert joined.status_code == 201 and joined.json["status"] == "active"
    again = client.post(f"{API}/clubs/{club_id}/members", headers=member.headers)
    assert again.status_code == 409 and again.json["error"] == "already_member"
    details = client.get(f"{API}/clubs/{club_id}", headers=member.headers).json
    assert details["member_count"] == 1 and details["my_membership"]["status"] == "active"
    mine = client.get(f"{API}/me/clubs", headers=member.headers).json["items"]
    assert [club["id"] for club in mine] == [club_id]
    assert (
        client.delete(f"{API}/clubs/{club_id}/members/me", headers=member.headers).status_code
        == 204
    )
    details = client.get(f"{API}/clubs/{club_id}", headers=member.headers).json
    assert details["member_count"] == 0 and details["my_membership"] is None
    assert (
        client.delete(f"{API}/clubs/{club_id}/members/me", headers=member.headers).status_code
        == 404
    )


def test_who_creates_clubs(client, leader, admin):
    national = {"name": "Camping", "kind": "interest", "city_code": None}
    assert client.post(f"{API}/clubs", json=national, headers=leader.headers).status_code == 403
    assert client.post(f"{API}/clubs", json=national, headers=admin.headers).status_code == 201
    other_city = {"name": "CD club", "kind": "city", "city_code": "CD"}
    assert client.post(f"{API}/clubs", json=other_city, headers=leader.headers).status_code == 403
    plain = owner()
    city = {"name": "SZ club", "kind": "city", "city_code": "SZ"}
    assert client.post(f"{API}/clubs", json=city, headers=plain.headers).status_code == 403
    bad = client.post(f"{API}/clubs", json={**city, "kind": "secret"}, headers=leader.headers)
    assert bad.status_code == 422
    listed = client.get(f"{API}/clubs?q=camp", headers=plain.headers).json["items"]
    assert [club["name"] for club in listed] == ["Camping"]
    # A NUL cannot reach the name's regex (it was a 500).
    for query in ("%00", "camp%00", "%01"):
        refused = client.get(f"{API}/clubs?q={query}", headers=plain.headers)
        assert refused.status_code == 422, query
        assert refused.json["errors"]["q"]


def test_approval_and_verified_owner_policies(client, make_club, leader):
    club = make_club(join_policy="approval")
    applicant = owner()
    pending = client.post(f"{API}/clubs/{club.pk}/members", headers=applicant.headers)
    assert pending.json["status"] == "pending"
    outsider = owner()
    listed = client.get(f"{API}/clubs/{club.pk}/members?status=pending", headers=outsider.headers)
    assert listed.status_code == 403
    listed = client.get(f"{API}/clubs/{club.pk}/members?status=pending", headers=leader.headers)
    assert [m["user_id"] for m in listed.json["items"]] == [applicant.id]
    approved = client.post(
        f"{API}/clubs/{club.pk}/members/{applicant.id}/approve", headers=leader.headers
    )
    assert approved.status_code == 200 and approved.json["status"] == "active"
    assert client.get(f"{API}/clubs/{club.pk}", headers=leader.headers).json["member_count"] == 1

    verified_only = make_club(name="Verified", join_policy="verified_owners")
    refused = client.post(f"{API}/clubs/{verified_only.pk}/members", headers=applicant.headers)
    assert refused.status_code == 403 and refused.json["error"] == "not_verified_owner"
    User.objects(pk=applicant.user.pk).update_one(set__verified_owner=True)
    accepted = client.post(f"{API}/clubs/{verified_only.pk}/members", headers=applicant.headers)
    assert accepted.status_code == 201


def test_moderators_are_appointed_among_active_members(client, make_club, leader):
    member, applicant = owner(), owner()
    club = make_club(members=(member,), join_policy="approval")
    # Approval clubs leave the builder's members pending too: approve the first.
    client.post(f"{API}/clubs/{club.pk}/members/{member.id}/approve", headers=leader.headers)
    client.post(f"{API}/clubs/{club.pk}/members", headers=applicant.headers)
    refused = client.put(f"{API}/clubs/{club.pk}/moderators/{applicant.id}", headers=leader.headers)
    assert refused.status_code == 409 and refused.json["error"] == "not_active_member"
    by_owner = client.put(f"{API}/clubs/{club.pk}/moderators/{member.id}", headers=member.headers)
    assert by_owner.status_code == 403
    appointed = client.put(f"{API}/clubs/{club.pk}/moderators/{member.id}", headers=leader.headers)
    assert appointed.status_code == 200 and appointed.json["role"] == "moderator"
    # The club's moderator now declines the pending request.
    declined = client.delete(
        f"{API}/clubs/{club.pk}/members/{applicant.id}", headers=member.headers
    )
    assert declined.status_code == 204
    assert client.get(f"{API}/clubs/{club.pk}", headers=leader.headers).json["member_count"] == 1


def test_a_club_moderator_removes_members_but_not_a_fellow_moderator(client, make_club, leader):
    first, second, member = owner(), owner(), owner()
    club = make_club(members=(first, second, member))
    for moderator in (first, second):
        path = f"{API}/clubs/{club.pk}/moderators/{moderator.id}"
        assert client.put(path, headers=leader.headers).status_code == 200
    members = f"{API}/clubs/{club.pk}/members"
    refused = client.delete(f"{members}/{second.id}", headers=first.headers)
    assert refused.status_code == 403 and refused.json["error"] == "moderator_not_removable"
    assert client.get(f"{API}/clubs/{club.pk}", headers=leader.headers).json["member_count"] == 3
    assert client.delete(f"{members}/{member.id}", headers=first.headers).status_code == 204
    assert client.delete(f"{members}/{second.id}", headers=leader.headers).status_code == 204
    assert client.delete(f"{members}/me", headers=first.headers).status_code == 204
    assert client.get(f"{API}/clubs/{club.pk}", headers=leader.headers).json["member_count"] == 0


def test_club_edits_by_city_leaders_only(client, make_club):
    club = make_club()
    other_leader = make_person("CD", role="circle_leader")
    change = {"join_policy": "approval"}
    assert (
        client.patch(
            f"{API}/clubs/{club.pk}", json=change, headers=other_leader.headers
        ).status_code
        == 403
    )
    assert (
        client.patch(f"{API}/clubs/{club.pk}", json={}, headers=other_leader.headers).status_code
        == 422
    )
    assert client.get(f"{API}/clubs/nope", headers=other_leader.headers).status_code == 404
