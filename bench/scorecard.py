"""Benchmark: city partners' monthly scorecards.

(a) Computing one month's scorecards of 20 partners (20 cities, 10k owners, 100k ledger
    entries in total, events with registrations, feedback and verified vehicles) with
    `partners.scorecards.compute` (every domain's part, gathered through app/domains.py,
    stored as a snapshot), against raw pymongo aggregations doing the same counts on the
    same server: the ratio is the price of the domains' hooks, scope and snapshot.
(b) How that time grows from 10k to 100k ledger entries (everything else equal).
(c) The time of reading one stored scorecard through the HTTP API (gunicorn on loopback).

Starts embedded servers when MONGODB_URI / REDIS_URL are unset. `python bench/scorecard.py`
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import requests
from bson import ObjectId

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support import api_server, servers  # noqa: E402

MONTH = "2026-10"
PARTNERS = 20
OWNERS = 10_000
EVENTS_PER_PARTNER = 10
REGISTRATIONS_PER_EVENT = 30
FEEDBACK_PER_EVENT = 10
RULES = ("event.attended", "post.published", "comment.created", "vehicle.verified")
READS = 200
ZONE = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 10, 1, tzinfo=ZONE).astimezone(UTC)
SECONDS = 31 * 24 * 3600


def _city_codes() -> list[str]:
    return [f"C{chr(ord('A') + n)}" for n in range(PARTNERS)]


def _moment(rng: random.Random) -> datetime:
    return START + timedelta(seconds=rng.randrange(SECONDS))


def _insert(collection, documents: list[dict]) -> None:
    for first in range(0, len(documents), 1000):
        collection.insert_many(documents[first : first + 1000], ordered=False)


def seed_world() -> tuple[list, dict[str, list[ObjectId]]]:
    """Cities, partners, owners, verified vehicles, events, registrations and feedback."""
    from accounts import services as accounts
    from app.db import database
    from partners import services as partners

    rng = random.Random(7)
    db = database()
    owners_by_city: dict[str, list[ObjectId]] = {}
    users, vehicles, events, registrations, feedback, follow_ups = [], [], [], [], [], []
    created = []
    for code in _city_codes():
        accounts.create_city(code, f"City {code}", "Province", "Asia/Shanghai")
        partner = partners.contract_partner(
            name=f"{code} Partner",
            contact="ops@example.com",
            city_code=code,
            contract_start=date(2026, 1, 1),
            contract_end=date(2027, 12, 31),
        )
        created.append(partner)
        owner_ids = [ObjectId() for _ in range(OWNERS // PARTNERS)]
        owners_by_city[code] = owner_ids
        for number, owner_id in enumerate(owner_ids):
            users.append(
                {
                    "_id": owner_id,
                    "email": f"{owner_id}@bench.example",
                    "password_hash": "x",
                    "display_name": f"Owner {number}",
                    "city_code": code,
                    "verified_owner": number % 5 == 0,
                    "referral_code": f"R{owner_id}",
                    "referred_by": owner_ids[0] if number % 10 == 0 else None,
                    "created_at": START - timedelta(days=30),
                    "grants": [],
                    "sessions": [],
                }
            )
            if number % 5 == 0:
                vehicles.append(
                    {
                        "owner_id": owner_id,
                        "vin": f"LSJA{str(owner_id)[-13:].upper()}",
                        "model": "smart #1",
                        "city_code": code,
                        "status": "verified",
                        "reviewed_at": _moment(rng),
                        "created_at": START - timedelta(days=1),
                    }
                )
        for _ in range(EVENTS_PER_PARTNER):
            event_id, starts_at = ObjectId(), _moment(rng)
            events.append(
                {
                    "_id": event_id,
                    "city_code": code,
                    "organizer_id": owner_ids[1],
                    "title": "Bench salon",
                    "venue": "Space",
                    "starts_at": starts_at,
                    "ends_at": starts_at + timedelta(hours=2),
                    "registration_closes_at": starts_at,
                    "capacity": REGISTRATIONS_PER_EVENT,
                    "seats_left": 0,
                    "waitlist_seq": 0,
                    "points_reward": 100,
                    "status": "completed",
                    "city_partner_id": partner.pk,
                    "budget_month": MONTH,
                }
            )
            for number, owner_id in enumerate(rng.sample(owner_ids, REGISTRATIONS_PER_EVENT)):
                attended = number % 10 < 7
                registrations.append(
                    {
                        "event_id": event_id,
                        "user_id": owner_id,
                        "city_code": code,
                        "status": "attended" if attended else "no_show",
                        "attended_at": starts_at + timedelta(minutes=30) if attended else None,
                    }
                )
                if number < FEEDBACK_PER_EVENT:
                    feedback_id, score = ObjectId(), rng.randint(1, 5)
                    at = starts_at + timedelta(hours=3)
                    feedback.append(
                        {
                            "_id": feedback_id,
                            "event_id": event_id,
                            "user_id": owner_id,
                            "city_code": code,
                            "city_partner_id": partner.pk,
                            "score": score,
                            "recommend": rng.randint(0, 10),
                            "created_at": at,
                        }
                    )
                    if score <= 2:
                        follow_ups.append(
                            {
                                "feedback_id": feedback_id,
                                "event_id": event_id,
                                "user_id": owner_id,
                                "city_code": code,
                                "city_partner_id": partner.pk,
                                "score": score,
                                "status": "open",
                                "created_at": at,
                            }
                        )
    _insert(db.users, users)
    _insert(db.vehicles, vehicles)
    _insert(db.events, events)
    _insert(db.registrations, registrations)
    _insert(db.event_feedback, feedback)
    _insert(db.follow_ups, follow_ups)
    return created, owners_by_city


def fill_ledger(owners_by_city: dict[str, list[ObjectId]], total: int) -> None:
    from app.db import database

    rng = random.Random(11)
    ledger = database().ledger_entries
    ledger.delete_many({})
    codes = list(owners_by_city)
    entries = []
    for number in range(total):
        code = codes[number % len(codes)]
        redeem = number % 10 == 0
        entries.append(
            {
                "account_id": rng.choice(owners_by_city[code]),
                "kind": "redeem" if redeem else "earn",
                "amount": -50 if redeem else rng.choice((1, 5, 100, 500)),
                "balance_after": 0,
                "reason": "bench",
                "source": {} if redeem else {"rule": rng.choice(RULES)},
                "idempotency_key": f"bench:{number}",
                "city_code": code,
                "created_at": _moment(rng),
            }
        )
    _insert(ledger, entries)


def compute_ours(partners: list) -> float:
    from partners import scorecards

    started = time.perf_counter()
    for partner in partners:
        scorecards.compute(partner, MONTH)
    return time.perf_counter() - started


def _raw_one(db, code: str, partner_id: ObjectId) -> dict:
    """The same figures by hand: the same collections, filters and aggregations, without
    the domains' hooks, the scope, or the snapshot."""
    period = {"$gte": START, "$lt": START + timedelta(days=31)}
    first = [
        row["_id"]
        for row in db.vehicles.aggregate(
            [
                {
                    "$match": {
                        "status": "verified",
                        "city_code": code,
                        "reviewed_at": {"$lt": period["$lt"]},
                    }
                },
                {"$group": {"_id": "$owner_id", "first": {"$min": "$reviewed_at"}}},
                {"$match": {"first": {"$gte": START}}},
            ]
        )
    ]
    referred = db.users.count_documents({"_id": {"$in": first}, "referred_by": {"$ne": None}})
    events = list(
        db.events.aggregate(
            [
                {
                    "$match": {
                        "city_partner_id": partner_id,
                        "starts_at": period,
                        "status": {"$in": ["published", "completed"]},
                    }
                },
                {"$group": {"_id": "$status", "count": {"$sum": 1}, "ids": {"$push": "$_id"}}},
            ]
        )
    )
    ids = [event_id for row in events for event_id in row["ids"]]
    by_status = list(
        db.registrations.aggregate(
            [
                {"$match": {"event_id": {"$in": ids}}},
                {"$group": {"_id": "$status", "count": {"$sum": 1}}},
            ]
        )
    )
    all_ids = db.events.distinct("_id", {"city_partner_id": partner_id})
    attendees = db.registrations.distinct(
        "user_id", {"event_id": {"$in": all_ids}, "status": "attended", "attended_at": period}
    )
    answers = list(
        db.event_feedback.find(
            {"city_partner_id": partner_id, "created_at": period},
            {"user_id": 1, "score": 1, "recommend": 1},
        )
    )
    opened = list(
        db.follow_ups.aggregate(
            [
                {"$match": {"city_partner_id": partner_id, "created_at": period, "status": "open"}},
                {"$group": {"_id": None, "count": {"$sum": 1}}},
            ]
        )
    )
    issued = list(
        db.ledger_entries.aggregate(
            [
                {
                    "$match": {
                        "city_code": code,
                        "created_at": period,
                        "kind": {"$in": ["earn", "reverse"]},
                    }
                },
                {"$group": {"_id": "$source.rule", "amount": {"$sum": "$amount"}}},
            ]
        )
    )
    redeemers = db.ledger_entries.distinct(
        "account_id", {"city_code": code, "created_at": period, "kind": "redeem"}
    )
    published = {"status": {"$ne": "held"}, "city_code": code, "published_at": period}
    posts = list(db.posts.find(published, {"author_id": 1}))
    comments = list(db.comments.find(published, {"author_id": 1}))
    reports = list(
        db.reports.find(
            {"status": {"$in": ["upheld", "rejected"]}, "city_code": code, "resolved_at": period},
            {"created_at": 1, "resolved_at": 1},
        )
    )
    budget = db.city_partner_budgets.find_one({"city_partner_id": partner_id, "month": MONTH})
    active = (
        set(attendees)
        | {answer["user_id"] for answer in answers}
        | set(redeemers)
        | {content["author_id"] for content in posts + comments}
    )
    return {
        "first": len(first),
        "referred": referred,
        "events": events,
        "by_status": by_status,
        "answers": len(answers),
        "opened": opened,
        "issued": issued,
        "active": len(active),
        "budget": budget,
        "community": (len(posts), len(comments), len(reports)),
    }


def compute_raw(partners: list) -> float:
    from app.db import database

    db = database()
    started = time.perf_counter()
    for partner in partners:
        _raw_one(db, partner.city_code, partner.pk)
    return time.perf_counter() - started


def best_of_interleaved(runs: int, partners: list) -> tuple[float, float]:
    """The best of `runs` of each, alternating, so that neither gains from a cache the other
    warmed or loses to a neighbour's load."""
    ours, raw = [], []
    for _ in range(runs):
        raw.append(compute_raw(partners))
        ours.append(compute_ours(partners))
    return min(ours), min(raw)


def measure_reads(base_url: str, partner, token: str) -> list[float]:
    url = f"{base_url}/api/v1/city-partners/{partner.pk}/scorecard?month={MONTH}"
    headers = {"Authorization": f"Bearer {token}"}
    with requests.Session() as session:
        session.get(url, headers=headers, timeout=30).raise_for_status()
        times = []
        for _ in range(READS):
            started = time.perf_counter()
            session.get(url, headers=headers, timeout=30).raise_for_status()
            times.append(time.perf_counter() - started)
    return times


def main() -> int:
    with servers("bench-scorecard-"):
        from accounts import roles, services, sessions
        from app import create_app

        app = create_app({"LOG_LEVEL": "WARNING"})
        with app.app_context():
            partners, owners_by_city = seed_world()
            figures = {}
            for total in (10_000, 100_000):
                fill_ledger(owners_by_city, total)
                figures[total] = best_of_interleaved(3, partners)
            admin = services.register(
                email="admin@bench.example",
                password="bench-password",
                display_name="Admin",
                city_code=partners[0].city_code,
            )
            roles.add_role_grant(admin.pk, "admin", [])
            token = sessions.start_session(admin.pk, "bench")["access_token"]
            with api_server(workers=2, threads=4) as base_url:
                reads = measure_reads(base_url, partners[0], token)
    print(
        f"scorecard benchmark: {PARTNERS} partners, {OWNERS} owners, "
        f"{PARTNERS * EVENTS_PER_PARTNER} events, "
        f"{PARTNERS * EVENTS_PER_PARTNER * REGISTRATIONS_PER_EVENT} registrations; best of 3, "
        "alternating"
    )
    for total, (ours, raw) in figures.items():
        print(
            f"  {total:>7} ledger entries: scorecards {ours:6.2f} s, raw aggregations "
            f"{raw:6.2f} s, ratio {ours / raw:.2f}x"
        )
    small, large = figures[10_000][0], figures[100_000][0]
    print(f"  growth 10k -> 100k entries: {large / small:.2f}x")
    reads.sort()
    print(
        f"  reading one scorecard (HTTP, {READS} reads): median "
        f"{statistics.median(reads) * 1000:.1f} ms, p95 {reads[int(READS * 0.95)] * 1000:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
