"""Benchmark: a flagship drop, and the same load as direct claims on one hot reward.

(a) OWNERS owners enter one drop of QUANTITY through the API (gunicorn as the README runs it,
    4 workers x 4 threads, on loopback), CLIENTS at a time, each with an Idempotency-Key,
    while a real Dramatiq worker and the outbox dispatcher run the drop's job. Next to it,
    in the same run and from as many threads, raw pymongo inserts of the same entry
    documents into the same collection (its indexes included): the baseline, measured
    before and after the API's burst. Printed: entries/s and p50/p99 of both, API/raw
    (target 0.8x), every entry acknowledged (202; a 503 is sent again with its key after
    Retry-After, as the API guide says, and counted), no 5xx. Once every entry is
    acknowledged the bench closes the drop (it moves `closes_at` to now; the window is
    otherwise fixed at creation), then waits for the job: exactly QUANTITY won, in arrival
    order for first come (the winners are the first QUANTITY entries by arrival, but for
    those refused) and in the recomputed draw's order for a draw (the seed revealed matches
    the hash published before the drop opened), and the time from the close to the last
    owner told. Both modes run, each on a reward of its own (a draw holds and releases
    every entrant's points), or with `--target event` on an event's seats (no points: an
    entry is 2 commands, not 3).
(b) The same OWNERS owners claim QUANTITY units directly (`POST /redemptions`): once on a
    reward whose stock is its own document, once on one whose stock is split in BUCKETS:
    rate, p50, p99, and answers of each, side by side.

Sizes are flags: `python bench/drop.py --owners 20000 --quantity 500 --clients 16`.
Starts embedded SecantusDB and Redis when MONGODB_URI / REDIS_URL are unset; prints the
machine's load before and after.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import requests
from bson import ObjectId

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support import (  # noqa: E402
    Burst,
    api_server,
    burst,
    credit,
    load,
    owners,
    post_retrying,
    servers,
    workers,
)

POINTS = 100_000
COST = 10


def _reward(stock: int, buckets: int = 1) -> ObjectId:
    from app.auth import load_caller
    from loyalty import rewards

    admin = _admin()
    data = {"title": "Flagship cap", "cost": COST, "stock": stock, "fulfillment": "shipping"}
    return rewards.create_reward(load_caller(admin), {**data, "stock_buckets": buckets}).pk


def _admin() -> ObjectId:
    from accounts.models import User
    from accounts.roles import add_role_grant

    found = User.objects(display_name="Bench admin").first()
    if found is not None:
        return found.pk
    user = User(
        email="bench-admin@example.com",
        password_hash="x",
        display_name="Bench admin",
        city_code="SZ",
        referral_code=f"A{ObjectId()}",
    ).save()
    add_role_grant(user.pk, "admin", [])  # every city
    return user.pk


def _event(capacity: int) -> ObjectId:
    from app.auth import load_caller
    from tests.events.conftest import new_event

    made = new_event(
        load_caller(_admin()),
        timedelta(days=7),
        lasting=timedelta(hours=3),
        title="Flagship launch night",
        venue="Loopback",
        capacity=capacity,
        points_reward=0,
    )
    return made.pk


def _drop(mode: str, quantity: int, window: timedelta, target: str = "reward"):
    from app.auth import load_caller
    from app.clock import utcnow
    from drops.launch import create_drop

    now = utcnow()
    return create_drop(
        load_caller(_admin()),
        target_type=target,
        target_id=str(_reward(quantity * 2) if target == "reward" else _event(quantity * 2)),
        opens_at=now,
        closes_at=now + window,
        quantity=quantity,
        mode=mode,
    )


_local = threading.local()


def _http() -> requests.Session:
    session = getattr(_local, "session", None) or requests.Session()
    _local.session = session
    return session


def enter_all(base_url: str, drop_id: str, people: list[tuple[str, str]], clients: int):
    """Every owner enters once, with a key; (burst, answers by status, resends after 503)."""
    answers: Counter = Counter()
    resent = []
    lock = threading.Lock()

    def attempt(index: int) -> None:
        answer, again = post_retrying(
            _http(),
            f"{base_url}/api/v1/drops/{drop_id}/entries",
            {"Authorization": f"Bearer {people[index][1]}", "Idempotency-Key": f"enter-{index}"},
        )
        with lock:
            answers[answer.status_code] += 1
            resent.append(again)

    return burst(len(people), clients, attempt), answers, sum(resent)


def raw_inserts(people: list[tuple[str, str]], clients: int) -> Burst:
    """The same entry documents, inserted by pymongo alone into the same collection."""
    from app.clock import utcnow
    from drops.entries import arrival_now
    from drops.models import Entry

    entries = Entry._get_collection()
    drop_id = ObjectId()

    def attempt(index: int) -> None:
        entries.insert_one(
            {
                "_id": ObjectId(),
                "drop_id": drop_id,
                "user_id": ObjectId(people[index][0]),
                "quantity": 1,
                "arrival": arrival_now(),
                "entered_at": utcnow(),
                "status": "entered",
                "request_key": f"enter-{index}",
                "request_hash": "0" * 64,
            }
        )

    measured = burst(len(people), clients, attempt)
    entries.delete_many({"drop_id": drop_id})
    return measured


def decided(drop, timeout: float) -> float:
    """Close the drop now and wait until every entrant was told; seconds waited."""
    from app.clock import utcnow
    from drops.models import Drop
    from drops.organiser_figures import told_of

    closed_at = utcnow()
    Drop.objects(pk=drop.pk).update_one(set__closes_at=closed_at)
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        drop.reload()
        if drop.status == "decided" and told_of(drop.pk)[0] >= drop.entries > 0:
            return time.monotonic() - started
        time.sleep(0.5)
    raise SystemExit(
        f"bench: drop not decided after {timeout:.0f} s: {drop.won} won, {drop.lost} lost, "
        f"{drop.refused} refused, {told_of(drop.pk)[0]} told of {drop.entries}"
    )


def check(drop, quantity: int) -> dict[str, Any]:
    """Exactly `quantity` won, in arrival order (first come) or the draw's (draw)."""
    from drops import draw
    from drops.models import Entry
    from drops.organiser_figures import told_of
    from events.models import Registration
    from loyalty.models import Redemption

    entries = [entry.to_mongo().to_dict() for entry in Entry.objects(drop_id=drop.pk)]
    if drop.mode == "draw":
        assert draw.seed_hash(drop.seed) == drop.seed_hash and drop.seed_revealed_at
        order = draw.draw_order(drop.seed, entries)
    else:
        order = draw.arrival_order(entries)
    served = [entry for entry in order if entry["status"] != "refused"]
    winners = [entry["_id"] for entry in served[:quantity]]
    assert [entry["status"] for entry in served] == ["won"] * quantity + ["lost"] * (
        len(served) - quantity
    ), Counter(entry["status"] for entry in served)
    assert sum(entry["allocated"] for entry in served[:quantity]) == quantity
    made = (
        Redemption.objects(reward_id=drop.target_id)
        if drop.target_type == "reward"
        else Registration.objects(event_id=drop.target_id)
    )
    assert made.count() == quantity
    assert {e.made_id for e in Entry.objects(pk__in=winners)} == set(made.scalar("pk"))
    return {
        "won": quantity,
        "refused": len(order) - len(served),
        "close_to_last_told": (told_of(drop.pk)[1] - drop.closes_at).total_seconds(),
        "peak": drop.peak_per_second,
    }


def claims(base_url: str, reward_id: ObjectId, people, clients: int) -> tuple[Burst, Counter]:
    answers: Counter = Counter()
    lock = threading.Lock()

    def attempt(index: int) -> None:
        answer = _http().post(
            f"{base_url}/api/v1/redemptions",
            json={"reward_id": str(reward_id)},
            headers={
                "Authorization": f"Bearer {people[index][1]}",
                "Idempotency-Key": f"claim-{reward_id}-{index}",
            },
            timeout=120,
        )
        with lock:
            answers[(answer.status_code, answer.json().get("error"))] += 1

    return burst(len(people), clients, attempt), answers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--owners", type=int, default=20_000)
    parser.add_argument("--quantity", type=int, default=500)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--buckets", type=int, default=16)
    parser.add_argument("--modes", default="first_come,draw")
    parser.add_argument("--target", choices=("reward", "event"), default="reward")
    parser.add_argument("--skip-claims", action="store_true")
    parser.add_argument("--decide-timeout", type=float, default=1800)
    args = parser.parse_args()
    before = load()
    print(
        f"drop benchmark: {args.owners} owners, {args.clients} clients, API = gunicorn 4 workers"
        f" x 4 threads, a worker (1 process x 4 threads) and the dispatcher; {before} before",
        flush=True,
    )

    def say(*said: str) -> None:
        print("\n".join(said), flush=True)

    with servers("bench-drop-"):
        from app import create_app

        app = create_app({"LOG_LEVEL": "WARNING"})
        with app.app_context(), api_server() as base_url, workers():
            people = owners(args.owners)
            credit(people, POINTS)
            # Warm-up: every gunicorn worker connected and its code paths loaded.
            warm = _drop("first_come", 5, timedelta(minutes=30))
            enter_all(base_url, str(warm.pk), people[:400], args.clients)
            raw_inserts(people[:400], args.clients)
            decided(warm, args.decide_timeout)
            for mode in args.modes.split(","):
                drop = _drop(mode, args.quantity, timedelta(hours=1), args.target)
                raw_before = raw_inserts(people, args.clients)
                api, answers, resent = enter_all(base_url, str(drop.pk), people, args.clients)
                raw_after = raw_inserts(people, args.clients)
                if answers != Counter({202: args.owners}):
                    raise SystemExit(f"bench: entries answered {dict(answers)}")
                waited = decided(drop, args.decide_timeout)
                found = check(drop, args.quantity)
                raw = Burst(
                    raw_before.count + raw_after.count,
                    raw_before.seconds + raw_after.seconds,
                    raw_before.latencies + raw_after.latencies,
                )
                say(
                    f"  {mode}: {args.owners} entries of a {args.target}'s drop of"
                    f" {args.quantity} ({load()})",
                    raw.line("raw pymongo inserts (before+after)", raw, "entries"),
                    api.line("HTTP POST /drops/{id}/entries", raw, "entries"),
                    f"    raw before {raw_before.rate:.0f}/s, after {raw_after.rate:.0f}/s;"
                    f" every entry 202 ({resent} sent again after a 503); busiest second"
                    f" {found['peak']} entries",
                    f"    exactly {found['won']} won in "
                    + ("arrival order" if mode == "first_come" else "the recomputed draw's order")
                    + f" ({found['refused']} refused); close to last owner told"
                    f" {found['close_to_last_told']:.1f} s (waited {waited:.1f} s)",
                )
            if not args.skip_claims:
                one = _reward(args.quantity)
                split = _reward(args.quantity, args.buckets)
                one_burst, one_answers = claims(base_url, one, people, args.clients)
                split_burst, split_answers = claims(base_url, split, people, args.clients)
                say(
                    f"  direct claims: {args.owners} owners on a stock of {args.quantity}"
                    f" ({load()})",
                    one_burst.line("one stock document", one_burst, "answers"),
                    split_burst.line(f"stock in {args.buckets} buckets", one_burst, "answers"),
                    f"    one document {dict(one_answers)}",
                    f"    {args.buckets} buckets {dict(split_answers)}",
                )
    say(f"  {load()} after")
    return 0


if __name__ == "__main__":
    sys.exit(main())
