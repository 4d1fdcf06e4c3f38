"""Benchmark: the points ledger.

(a) Redemptions per second through the HTTP API (gunicorn as the README runs it, 4 workers
    x 4 threads, on loopback, CLIENTS concurrent clients, each request with an
    Idempotency-Key) against the lean baseline: raw pymongo doing only what a redemption
    logically needs, in one transaction, on the same server, from as many threads: the
    conditional debit of the account, the conditional stock decrement, the ledger entry,
    the redemption and its outbox event. Both sides warm up first, then run REDEMPTIONS
    each in ROUNDS alternating bursts (lean first, then the API first, ...), so that a
    change in the machine's load during the run weighs on both alike. Rate, p50 and p99 of
    each over all its bursts, API/lean (target 0.7x), and the ratio of each round.
(b) A flash drop: FLASH_OWNERS owners redeem one reward of stock FLASH_STOCK at once through
    the API; exactly FLASH_STOCK succeed, the others are refused `out_of_stock` (or 503
    past the request's database budget, counted), and the stock ends at 0 (asserted).
(c) Reconciliation time at 10k and at 100k ledger entries (100 entries per account), and
    their ratio: near 10 means it scales with the ledger, not with its square.

Starts embedded servers when MONGODB_URI / REDIS_URL are unset. `python bench/ledger.py`
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import requests
from bson import ObjectId

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support import (  # noqa: E402
    Burst,
    api_server,
    burst,
    credit,
    lean_outbox_event,
    load,
    owners,
    raw_transaction,
    servers,
)

CLIENTS = 16
REDEMPTIONS = 1_600
ROUNDS = 4
FLASH_OWNERS = 2_000
FLASH_STOCK = 500
FLASH_CLIENTS = 64
ENTRIES_PER_ACCOUNT = 100


def _reward(stock: int, cost: int = 1) -> ObjectId:
    from loyalty.models import Reward

    return Reward(title="Bench mug", cost=cost, stock=stock, fulfillment="digital").save().pk


def _lean_redeem(owner_id: ObjectId, reward_id: ObjectId, cost: int) -> None:
    """What a redemption logically needs, in one transaction."""
    from app.clock import utcnow
    from app.db import database

    db = database()
    now = utcnow()

    def unit(session) -> None:
        debited = db.points_accounts.update_one(
            {"_id": owner_id, "balance": {"$gte": cost}},
            {"$inc": {"balance": -cost}, "$set": {"updated_at": now}},
            session=session,
        )
        taken = db.rewards.update_one(
            {"_id": reward_id, "stock": {"$gte": 1}}, {"$inc": {"stock": -1}}, session=session
        )
        if not (debited.matched_count and taken.matched_count):
            raise SystemExit("bench: the lean baseline ran out of points or stock")
        redemption_id, entry_id = ObjectId(), ObjectId()
        db.ledger_entries.insert_one(
            {
                "_id": entry_id,
                "account_id": owner_id,
                "kind": "redeem",
                "amount": -cost,
                "reason": "lean",
                "source": {"rule": "redemption", "id": str(redemption_id)},
                "idempotency_key": f"redemption:{redemption_id}",
                "created_at": now,
            },
            session=session,
        )
        db.redemptions.insert_one(
            {
                "_id": redemption_id,
                "user_id": owner_id,
                "reward_id": reward_id,
                "quantity": 1,
                "points": cost,
                "status": "pending",
                "entry_id": entry_id,
                "created_at": now,
            },
            session=session,
        )
        lean_outbox_event(
            session,
            "redemption",
            redemption_id,
            {"user_id": str(owner_id), "reward_id": str(reward_id)},
        )

    raw_transaction(unit)


def measure_lean(people: list[tuple[str, str]], rewards: list[ObjectId], count: int) -> Burst:
    # Each client its own owner and reward: the figure is the path's, not one counter's.
    return burst(
        count,
        CLIENTS,
        lambda i: _lean_redeem(ObjectId(people[i % CLIENTS][0]), rewards[i % CLIENTS], 1),
    )


def _post_redemption(base_url: str, token: str, reward_id: ObjectId, key: str) -> requests.Response:
    local = _sessions.__dict__
    session = local.get("session") or requests.Session()
    local["session"] = session
    return session.post(
        f"{base_url}/api/v1/redemptions",
        json={"reward_id": str(reward_id)},
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
        timeout=120,
    )


_sessions = threading.local()


def measure_api(
    base_url: str, people: list[tuple[str, str]], rewards: list[ObjectId], run: str, count: int
) -> Burst:
    def attempt(index: int) -> None:
        answer = _post_redemption(
            base_url, people[index % CLIENTS][1], rewards[index % CLIENTS], f"{run}-{index}"
        )
        if answer.status_code != 201:
            raise SystemExit(f"bench: redemption answered {answer.status_code}: {answer.text}")

    return burst(count, CLIENTS, attempt)


def joined(bursts: list[Burst]) -> Burst:
    """Bursts taken as one: their calls over their summed time."""
    return Burst(
        sum(part.count for part in bursts),
        sum(part.seconds for part in bursts),
        [latency for part in bursts for latency in part.latencies],
    )


def lean_against_api(
    base_url: str, people: list[tuple[str, str]]
) -> tuple[Burst, Burst, list[float]]:
    """Both sides warmed up, then measured in alternating rounds; the ratio of each round."""
    lean_people, api_people = people[:CLIENTS], people[CLIENTS:]
    lean_rewards = [_reward(10**6) for _ in range(CLIENTS)]
    api_rewards = [_reward(10**6) for _ in range(CLIENTS)]
    # Warm-up: every gunicorn worker and pymongo pool connected, code paths loaded.
    measure_api(base_url, api_people, api_rewards, "warm-up", REDEMPTIONS // 2)
    measure_lean(lean_people, lean_rewards, REDEMPTIONS // 4)
    lean: list[Burst] = []
    api: list[Burst] = []
    for round_ in range(ROUNDS):
        count = REDEMPTIONS // ROUNDS
        if round_ % 2 == 0:
            lean.append(measure_lean(lean_people, lean_rewards, count))
        api.append(measure_api(base_url, api_people, api_rewards, f"round-{round_}", count))
        if round_ % 2 == 1:
            lean.append(measure_lean(lean_people, lean_rewards, count))
    rounds = [api_part.rate / lean_part.rate for lean_part, api_part in zip(lean, api, strict=True)]
    return joined(lean), joined(api), rounds


def flash_drop(base_url: str) -> tuple[Burst, Counter]:
    """FLASH_OWNERS owners at once on one reward of stock FLASH_STOCK."""
    from loyalty.models import Redemption, Reward

    people = owners(FLASH_OWNERS)
    credit(people, 100)
    reward_id = _reward(FLASH_STOCK, cost=10)
    answers: Counter = Counter()
    lock = threading.Lock()

    def attempt(index: int) -> None:
        answer = _post_redemption(base_url, people[index][1], reward_id, "flash")
        with lock:
            answers[(answer.status_code, answer.json().get("error"))] += 1

    measured = burst(FLASH_OWNERS, FLASH_CLIENTS, attempt)
    # Exactly the stock redeemed; every other owner refused `out_of_stock`, or answered 503
    # when its request outlasted REQUEST_DB_BUDGET_MS (waiting its turn on the reward
    # counts), which a client retries.
    allowed = {(201, None), (409, "out_of_stock"), (503, "service_unavailable")}
    assert answers[(201, None)] == FLASH_STOCK and set(answers) <= allowed, (
        f"bench: the flash drop answered {dict(answers)}"
    )
    assert Reward.objects.get(pk=reward_id).stock == 0
    assert Redemption.objects(reward_id=reward_id).count() == FLASH_STOCK
    return measured, answers


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
    before = load()
    with servers("bench-ledger-"):
        from app import create_app

        app = create_app({"LOG_LEVEL": "WARNING"})
        with app.app_context():
            people = owners(2 * CLIENTS)
            credit(people, 1_000_000)
            with api_server() as base_url:
                lean, through_api, rounds = lean_against_api(base_url, people)
                flash, answers = flash_drop(base_url)
            small = measure_reconciliation(100)
            large = measure_reconciliation(1000)
    print(
        f"ledger benchmark: {REDEMPTIONS} redemptions a side from {CLIENTS} concurrent clients "
        f"in {ROUNDS} alternating rounds; "
        f"API = gunicorn 4 workers x 4 threads; {before} before, {load()} after"
    )
    print(lean.line("lean pymongo (one transaction)", lean, "redemptions"))
    print(through_api.line("HTTP API (POST /redemptions, key)", lean, "redemptions"))
    print(f"  API/lean of each round: {' '.join(f'{ratio:.2f}' for ratio in rounds)}")
    print(
        f"  flash drop: {FLASH_OWNERS} owners, stock {FLASH_STOCK}, {FLASH_CLIENTS} clients: "
        f"{answers[(201, None)]} redeemed, {answers[(409, 'out_of_stock')]} out_of_stock, "
        f"{answers[(503, 'service_unavailable')]} service_unavailable in "
        f"{flash.seconds:.1f} s ({flash.rate:.0f} answers/s), p50 "
        f"{flash.percentile(0.5) * 1000:.0f} ms, p99 {flash.percentile(0.99) * 1000:.0f} ms"
    )
    print(f"  reconciliation {small[0]:>7} entries   {small[1]:7.2f} s")
    print(
        f"  reconciliation {large[0]:>7} entries   {large[1]:7.2f} s   "
        f"ratio {large[1] / small[1]:.1f} (linear would be 10)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
