from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from bson import ObjectId

from app.auth import load_caller
from app.clock import utcnow
from events import services as events
from tests.support import make_city, make_person

API = "/api/v1"
OID = '{"$oid": "5f0000000000000000000000"}'
# Cursors a client could write by hand, in the Extended JSON an unsigned cursor was made of.
CRAFTED = [
    '[{"$oid": "zz"}]',
    '[{"$foo": 1}, ' + OID + "]",
    '[{"$regex": "a"}, ' + OID + "]",
    '[{"$numberDecimal": "x"}, ' + OID + "]",
    # On /events this replaced the `starts_at >= now` bound: past events were listed.
    '[{"$gte": {"$date": 0}}, ' + OID + "]",
    "[" + OID + "]",
    '[{"$date": 0}, ' + OID + "]",
]


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def test_keyset_pages_cover_everything_once(client):
    codes = [f"C{chr(65 + i)}" for i in range(7)]
    for code in reversed(codes):
        make_city(code)
    seen, cursor = [], None
    while True:
        url = "/api/v1/cities?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url).json
        seen.extend(city["code"] for city in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(codes)


def test_inserts_between_pages_are_not_skipped(client):
    for code in ("AA", "CC", "EE"):
        make_city(code)
    first = client.get("/api/v1/cities?limit=2").json
    assert [c["code"] for c in first["items"]] == ["AA", "CC"]
    make_city("DD")
    second = client.get(f"/api/v1/cities?limit=2&cursor={first['next_cursor']}").json
    assert [c["code"] for c in second["items"]] == ["DD", "EE"]
    assert second["next_cursor"] is None


def test_ties_in_the_first_sort_field_are_broken_by_id(app):
    from datetime import UTC, datetime

    from accounts.models import Vehicle
    from app.web import paginate

    same_time = datetime(2026, 1, 1, tzinfo=UTC)
    later = datetime(2026, 1, 2, tzinfo=UTC)
    vehicles = [
        Vehicle(
            owner_id=ObjectId(),
            vin=f"LSJA24U69MS0000{n:02d}",
            model="m",
            city_code="SZ",
            created_at=later if n >= 5 else same_time,
        ).save()
        for n in range(7)
    ]
    expected = [v.pk for v in sorted(vehicles, key=lambda v: (v.created_at, v.pk))]
    seen, cursor = [], None
    while True:
        page = paginate(Vehicle.objects, cursor, 2, order=("created_at", "id"))
        seen.extend(v.pk for v in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == expected


def _publish_events(count: int) -> list[str]:
    leader = load_caller(make_person(role="circle_leader").id)
    ids = []
    for hours in range(count):
        starts_at = utcnow() + timedelta(days=2, hours=hours)
        event = events.create_event(
            leader,
            city_code="SZ",
            title=f"Drive {hours}",
            venue="Brand space",
            starts_at=starts_at,
            ends_at=starts_at + timedelta(hours=1),
            capacity=10,
        )
        ids.append(str(events.publish_event(leader, str(event.pk)).pk))
    return ids


@pytest.mark.parametrize("path", ["/events", "/me/points/ledger", "/me/notifications"])
@pytest.mark.parametrize("crafted", CRAFTED)
def test_hand_made_cursors_are_400(client, path, crafted):
    owner = make_person()
    response = client.get(f"{API}{path}?cursor={_b64(crafted)}", headers=owner.headers)
    assert response.status_code == 400
    assert response.json["error"] == "invalid_cursor"


def test_event_pages_follow_their_cursors(client):
    owner = make_person()
    expected = _publish_events(5)
    seen, cursor = [], None
    while True:
        url = f"{API}/events?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url, headers=owner.headers)
        assert page.status_code == 200, page.json
        seen.extend(event["id"] for event in page.json["items"])
        cursor = page.json["next_cursor"]
        if cursor is None:
            break
    assert seen == expected


def test_a_cursor_opens_only_the_list_it_came_from(client):
    owner = make_person()
    for code in ("AA", "BB", "CC"):
        make_city(code)
    _publish_events(3)
    city_cursor = client.get(f"{API}/cities?limit=1").json["next_cursor"]
    event_cursor = client.get(f"{API}/events?limit=1", headers=owner.headers).json["next_cursor"]
    for path, cursor in (
        ("/events", city_cursor),
        ("/me/notifications", city_cursor),
        ("/cities", event_cursor),
        ("/me/points/ledger", event_cursor),
    ):
        response = client.get(f"{API}{path}?cursor={cursor}", headers=owner.headers)
        assert response.status_code == 400, path
        assert response.json["error"] == "invalid_cursor"


def test_a_tampered_cursor_is_400(client):
    for code in ("AA", "BB"):
        make_city(code)
    cursor = client.get(f"{API}/cities?limit=1").json["next_cursor"]
    payload, signature = cursor.rsplit(".", 1)
    forged = _b64('["ZZ"]') + "." + signature
    assert client.get(f"{API}/cities?cursor={payload}.{signature}").status_code == 200
    response = client.get(f"{API}/cities?cursor={forged}")
    assert response.status_code == 400
    assert response.json["error"] == "invalid_cursor"
