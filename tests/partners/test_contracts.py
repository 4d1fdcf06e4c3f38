"""City partner contracts and their staff: one partner per city and day (under concurrent
requests too), leaders attached and taken over, contracts that end."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

import requests

from accounts.models import User
from accounts.roles import add_role_grant
from app.clock import utcnow
from events import services
from events.models import Event
from partners import services as partners
from partners.models import CityPartner, CityPartnerLeader
from tests.events.conftest import as_caller, deliver
from tests.partners.conftest import FAR_AHEAD, LONG_AGO, draft
from tests.support import make_city, make_person

API = "/api/v1"


def body(**fields):
    return {
        "name": "Shenzhen Motors",
        "contact": "ops@example.com",
        "city_code": "SZ",
        "contract_start": "2027-01-01",
        "contract_end": "2027-12-31",
        **fields,
    }


def test_ten_concurrent_contracts_for_one_city_one_wins(live_server, admin):
    def create(day: int) -> requests.Response:
        return requests.post(
            f"{live_server}{API}/admin/city-partners",
            json=body(name=f"Partner {day}", contract_start=f"2027-0{day % 9 + 1}-01"),
            headers=admin.headers,
            timeout=60,
        )

    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(create, range(10)))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [201] + [409] * 9, [answer.text for answer in answers]
    assert {a.json()["error"] for a in answers if a.status_code == 409} == {"city_taken"}
    assert CityPartner.objects(city_code="SZ").count() == 1


def test_contracts_that_do_not_overlap_coexist_and_an_extension_may_not_overlap(client, admin):
    first = client.post(f"{API}/admin/city-partners", json=body(), headers=admin.headers)
    assert first.status_code == 201, first.json
    assert first.json["active"] is False
    second = client.post(
        f"{API}/admin/city-partners",
        json=body(name="Next", contract_start="2028-01-01", contract_end="2028-06-30"),
        headers=admin.headers,
    )
    assert second.status_code == 201
    overlapping = client.post(
        f"{API}/admin/city-partners",
        json=body(contract_start="2027-12-31", contract_end="2027-12-31"),
        headers=admin.headers,
    )
    assert overlapping.status_code == 409
    assert overlapping.json["error"] == "city_taken"
    extended = client.patch(
        f"{API}/admin/city-partners/{first.json['id']}",
        json={"contract_end": "2028-01-15"},
        headers=admin.headers,
    )
    assert extended.status_code == 409 and extended.json["error"] == "city_taken"
    assert CityPartner.objects(pk=first.json["id"]).first().contract_end == "2027-12-31"
    changed = client.patch(
        f"{API}/admin/city-partners/{first.json['id']}",
        json={"contact": "new@example.com", "contract_end": "2027-11-30"},
        headers=admin.headers,
    )
    assert changed.status_code == 200
    assert (changed.json["contact"], changed.json["contract_end"]) == (
        "new@example.com",
        "2027-11-30",
    )
    listed = client.get(f"{API}/admin/city-partners?city=SZ", headers=admin.headers)
    assert {item["name"] for item in listed.json["items"]} == {"Shenzhen Motors", "Next"}


def test_bad_contracts_are_refused_and_leave_nothing(client, admin):
    make_city("SZ")
    for bad, slug in [
        (body(contract_end="2026-12-31"), "invalid_contract"),
        (body(city_code="XX"), "unknown_city"),
        (body(contract_start="2027-02-30"), "validation_failed"),
        (body(contract_start="9999-01-01"), "validation_failed"),
        (body(name=""), "validation_failed"),
        (body(extra=1), "validation_failed"),
    ]:
        answer = client.post(f"{API}/admin/city-partners", json=bad, headers=admin.headers)
        assert answer.status_code == 422, (bad, answer.json)
        assert answer.json["error"] == slug
    owner = make_person("SZ")
    assert (
        client.post(f"{API}/admin/city-partners", json=body(), headers=owner.headers).status_code
        == 403
    )
    assert CityPartner.objects.count() == 0


def test_a_partner_takes_over_the_city_leaders_and_new_leaders_join_it(client, make_partner):
    earlier = make_person("SZ", role="circle_leader")
    elsewhere = make_person("GZ", role="circle_leader")
    partner = make_partner()
    later = make_person("SZ")
    add_role_grant(later.user.pk, "circle_leader", ["SZ"])
    deliver("role.granted")
    leaders = {leader.user_id for leader in CityPartnerLeader.objects(city_partner_id=partner.pk)}
    assert leaders == {earlier.user.pk, later.user.pk}
    seen = client.get(f"{API}/city-partners/{partner.pk}", headers=earlier.headers)
    assert seen.status_code == 200
    assert {leader["user_id"] for leader in seen.json["leaders"]} == {earlier.id, later.id}
    assert seen.json["budget"]["left"] == 0
    assert (
        client.get(f"{API}/city-partners/{partner.pk}", headers=elsewhere.headers).status_code
        == 404
    )
    owner = make_person("SZ")
    assert client.get(f"{API}/city-partners/{partner.pk}", headers=owner.headers).status_code == 404


def test_an_ended_contract_withdraws_the_city_and_keeps_the_history(make_partner, admin):
    leader = make_person("SZ", role="circle_leader", cities=["SZ", "GZ"])
    today = date.fromisoformat(partners.local_today("SZ"))
    old = make_partner(contract_start=LONG_AGO, contract_end=today + timedelta(days=1))
    event = draft(leader, points_reward=0)
    services.publish_event(as_caller(leader), str(event.pk))
    assert Event.objects(pk=event.pk).first().city_partner_id == old.pk
    newcomer = make_person("SZ", role="circle_leader")
    deliver("role.granted")
    assert partners.end_contracts() == []  # not over yet
    successor = make_partner(
        name="Successor", contract_start=today + timedelta(days=2), contract_end=FAR_AHEAD
    )

    ended = partners.end_contracts(utcnow() + timedelta(days=2))
    assert ended == [str(old.pk)]
    for person in (leader, newcomer):
        grants = User.objects(pk=person.user.pk).first().grants
        assert all("SZ" not in grant.city_codes for grant in grants)
    assert [grant.city_codes for grant in User.objects(pk=leader.user.pk).first().grants] == [
        ["GZ"]
    ]
    assert CityPartnerLeader.objects(city_partner_id=old.pk, detached_at=None).count() == 0
    assert Event.objects(pk=event.pk).first().city_partner_id == old.pk
    assert CityPartnerLeader.objects(city_partner_id=successor.pk).count() == 0
    assert partners.end_contracts(utcnow() + timedelta(days=2)) == []


def test_me_names_each_grant_with_its_cities_and_the_partners_a_leader_works_for(
    client, admin, leader, make_partner
):
    partner = make_partner("SZ")  # takes over the city's leaders
    make_partner("CD")  # another city's partner, not theirs
    add_role_grant(leader.user.pk, "ambassador", ["GZ"])
    me = client.get(f"{API}/me", headers=leader.headers).json
    assert me["grants"] == [
        {"role": "circle_leader", "city_codes": ["SZ"]},
        {"role": "ambassador", "city_codes": ["GZ"]},
    ]
    assert me["city_partners"] == [{"id": str(partner.pk), "name": "SZ Motors", "city_code": "SZ"}]
    assert sorted(me["roles"]) == ["ambassador", "circle_leader", "owner"]

    hq = client.get(f"{API}/me", headers=admin.headers).json
    assert (hq["grants"], hq["city_partners"]) == ([{"role": "admin", "city_codes": []}], [])
    owner = client.get(f"{API}/me", headers=make_person("SZ").headers).json
    assert (owner["grants"], owner["city_partners"]) == ([], [])
