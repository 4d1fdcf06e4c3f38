from __future__ import annotations

from bson import ObjectId

from tests.support import make_city


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
