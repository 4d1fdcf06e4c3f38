"""Benchmark: the points ledger.

(a) Redemptions per second through the HTTP API (gunicorn, 2 workers x 4 threads, on
    loopback, concurrent clients) against raw pymongo running the same transaction shape
    (reward read, rolling-earned aggregate, stock and balance debits, lot update, entry and
    redemption inserts) from the same number of threads on the same server.
(b) Reconciliation time at 10k and at 100k ledger entries (100 entries per account), and
    their ratio: near 10 means it scales with the ledger, not with its square.

Starts embedded servers when MONGODB_URI / REDIS_URL are unset. `python bench/ledger.py`
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import requests
from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support import api_server, servers  # noqa: E402

CLIENTS = 8
REDEMPTIONS_PER_CLIENT = 120
ENTRIES_PER_ACCOUNT = 100


def _seed_redeemers(count: int) -> list[tuple[ObjectId, ObjectId, str]]:
    """Owners with plenty of points and one reward each, so clients measure the path rather
    than contention on one stock counter. Returns (owner, reward, token) triples."""
    from accounts import services as accounts
    from app.db import transaction
    from loyalty import rules
    from loyalty.models import Reward

    accounts.create_city("SZ", "Shenzhen", "Guangdong", "Asia/Shanghai")
    triples = []
    for number in range(count):
        owner = accounts.register(
            email=f"bench{number}@example.com",
            password="bench-password",
            display_name=f"Bench {number}",
            city_code="SZ",
        )
        transaction(
            lambda session, owner=owner: rules.award(
                session,
                owner.pk,
                "vehicle.verified",
                key=f"bench:{owner.pk}",
                source={},
                points=1_000_000,
            )
        )
        reward = Reward(title="Bench mug", cost=1, stock=1_000_000, fulfillment="digital").save()
        token = accounts.start_session(owner.pk, "bench")["access_token"]
        triples.append((owner.pk, reward.pk, token))
    return triples


def _raw_redeem(owner_id: ObjectId, reward_id: ObjectId) -> None:
    """The transaction `rewards.redeem` runs, written directly with pymongo."""
    from app.clock import utcnow
    from app.db import client, database

    db = database()
    now = utcnow()

    def unit(session) -> None:
        reward = db.rewards.find_one({"_id": reward_id, "active": True}, session=session)
        list(
            db.ledger_entries.aggregate(
                [
                    {
                        "$match": {
                            "account_id": owner_id,
                            "kind": "earn",
                            "created_at": {"$gt": now - timedelta(days=365), "$lte": now},
                        }
                    },
                    {"$group": {"_id": None, "earned": {"$sum": "$amount"}}},
                ],
                session=session,
            )
        )
        db.rewards.find_one_and_update(
            {"_id": reward_id, "stock": {"$gte": 1}}, {"$inc": {"stock": -1}}, session=session
        )
        account = db.points_accounts.find_one_and_update(
            {"_id": owner_id, "balance": {"$gte": reward["cost"]}},
            {"$inc": {"balance": -reward["cost"]}, "$set": {"updated_at": now}},
            return_document=ReturnDocument.AFTER,
            session=session,
        )
        lot = db.points_lots.find_one(
            {"account_id": owner_id, "remaining": {"$gt": 0}},
            sort=[("expires_at", 1), ("_id", 1)],
            session=session,
        )
        db.points_lots.update_one(
            {"_id": lot["_id"]}, {"$inc": {"remaining": -reward["cost"]}}, session=session
        )
        redemption_id = ObjectId()
        entry_id = db.ledger_entries.insert_one(
            {
                "account_id": owner_id,
                "kind": "redeem",
                "amount": -reward["cost"],
                "balance_after": account["balance"],
                "reason": "raw",
                "source": {},
                "idempotency_key": f"redemption:{redemption_id}",
                "lots": [],
                "created_at": now,
            },
            session=session,
        ).inserted_id
        db.redemptions.insert_one(
            {
                "_id": redemption_id,
                "user_id": owner_id,
                "reward_id": reward_id,
                "quantity": 1,
                "points": reward["cost"],
                "status": "pending",
                "entry_id": entry_id,
                "created_at": now,
            },
            session=session,
        )

    with client().start_session() as session:
        session.with_transaction(
            unit, read_concern=ReadConcern("snapshot"), write_concern=WriteConcern("majority")
        )


def _rate(work, triples) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(triples)) as pool:
        list(pool.map(work, triples))
    return len(triples) * REDEMPTIONS_PER_CLIENT / (time.perf_counter() - started)


def measure_api(base_url: str, triples) -> float:
    def client(triple) -> None:
        _, reward_id, token = triple
        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {token}"
            for _ in range(REDEMPTIONS_PER_CLIENT):
                answer = session.post(
                    f"{base_url}/api/v1/redemptions", json={"reward_id": str(reward_id)}, timeout=60
                )
                if answer.status_code != 201:
                    raise SystemExit(f"bench: redemption answered {answer.status_code}")

    return _rate(client, triples)


def measure_raw(triples) -> float:
    def client(triple) -> None:
        owner_id, reward_id, _ = triple
        for _ in range(REDEMPTIONS_PER_CLIENT):
            _raw_redeem(owner_id, reward_id)

    return _rate(client, triples)


def _fill_ledger(accounts: int) -> int:
    """Consistent accounts: one earn of 1,000 (one lot) then 99 redemptions of 1 point."""
    from app.clock import utcnow
    from app.db import database

    db = database()
    for name in ("points_accounts", "ledger_entries", "points_lots"):
        db[name].delete_many({})
    now = utcnow()
    spent = ENTRIES_PER_ACCOUNT - 1
    for first in range(0, accounts, 50):
        entries, lots, cached = [], [], []
        for _ in range(min(50, accounts - first)):
            account_id = ObjectId()
            cached.append(
                {
                    "_id": account_id,
                    "balance": 1000 - spent,
                    "lifetime_earned": 1000,
                    "tier": "member",
                    "created_at": now,
                    "updated_at": now,
                }
            )
            lots.append(
                {
                    "account_id": account_id,
                    "entry_id": ObjectId(),
                    "amount": 1000,
                    "remaining": 1000 - spent,
                    "expired": 0,
                    "expires_at": now + timedelta(days=700),
                    "created_at": now,
                }
            )
            entries.append(
                {
                    "account_id": account_id,
                    "kind": "earn",
                    "amount": 1000,
                    "balance_after": 1000,
                    "reason": "bench",
                    "source": {},
                    "idempotency_key": f"earn:{account_id}",
                    "created_at": now,
                }
            )
            entries.extend(
                {
                    "account_id": account_id,
                    "kind": "redeem",
                    "amount": -1,
                    "balance_after": 999 - n,
                    "reason": "bench",
                    "source": {},
                    "idempotency_key": f"redeem:{account_id}:{n}",
                    "created_at": now,
                }
                for n in range(spent)
            )
        db.points_accounts.insert_many(cached)
        db.points_lots.insert_many(lots)
        db.ledger_entries.insert_many(entries)
    return accounts * ENTRIES_PER_ACCOUNT


def measure_reconciliation(accounts: int) -> tuple[int, float]:
    from loyalty import reconciliation

    entries = _fill_ledger(accounts)
    started = time.perf_counter()
    run = reconciliation.run_reconciliation()
    elapsed = time.perf_counter() - started
    if run is None or run.entries_checked != entries or run.drifts:
        raise SystemExit(
            f"bench: reconciliation checked {run and run.entries_checked} of "
            f"{entries} entries, drifts {run and len(run.drifts)}"
        )
    return entries, elapsed


def main() -> int:
    with servers("bench-ledger-"):
        from app import create_app

        app = create_app({"LOG_LEVEL": "WARNING"})
        with app.app_context():
            triples = _seed_redeemers(CLIENTS)
            with api_server(workers=2, threads=4) as base_url:
                raw = measure_raw(triples)
                through_api = measure_api(base_url, triples)
            small = measure_reconciliation(100)
            large = measure_reconciliation(1000)
    print(
        f"ledger benchmark: {CLIENTS} concurrent clients x {REDEMPTIONS_PER_CLIENT} "
        "redemptions; API = gunicorn 2 workers x 4 threads"
    )
    print(f"  raw pymongo (same transaction)   {raw:8.1f} redemptions/s   1.00x")
    print(
        f"  HTTP API (POST /redemptions)     {through_api:8.1f} redemptions/s   "
        f"{through_api / raw:.2f}x"
    )
    print(f"  reconciliation {small[0]:>7} entries   {small[1]:7.2f} s")
    print(
        f"  reconciliation {large[0]:>7} entries   {large[1]:7.2f} s   "
        f"ratio {large[1] / small[1]:.1f} (linear would be 10)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
