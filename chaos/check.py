"""The checker of `make chaos` (chaos/run.py): from the history of acknowledged operations
and the database, after the workers have drained, every violation it can prove.

- Nothing acknowledged was lost: each acknowledged registration, cancellation, check-in,
  redemption and redemption cancellation is in the database in its acknowledged state or
  in one a later attempt (acknowledged or not) may legitimately have led to.
- Nothing was applied twice: ledger idempotency keys and once-keys unique, one attendance
  award per owner and event, one refund per cancelled redemption and none otherwise.
- Each acknowledged post exists in the state the last acknowledged moderation left it in.
- docs/product.md's invariants: balance = sum of entries = sum of open lots, >= 0; confirmed
  places <= capacity (and the seats left say so); stock >= 0 and stock + redeemed = initial.
- Every domain event was handled by each of its handlers (the handlers' markers), and
  each owner got each notification they were owed (points earned, promotion) once.
- The loyalty reconciliation finds no drift.

Needs an app context with the installed domains' handlers loaded.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from bson import ObjectId

from app.handlers import HandledEvent, handlers_for
from app.outbox import OutboxEvent
from community.models import HIDDEN, REMOVED, VISIBLE, Post
from events.models import ATTENDED, CANCELLED, CONFIRMED, NO_SHOW, WAITLISTED, Event, Registration
from loyalty.models import CANCELLED as REDEMPTION_CANCELLED
from loyalty.models import PENDING, LedgerEntry, Lot, PointsAccount, Redemption, Reward
from loyalty.reconciliation import check_account
from notifications.models import Notification

HOLDS_A_SEAT = (CONFIRMED, ATTENDED, NO_SHOW)


def acknowledged(entry: dict[str, Any]) -> bool:
    return 200 <= entry["status"] < 300


def unhandled_events() -> list[str]:
    """ "<event id> <type> <handler>" for each handler that has not handled an event of the
    outbox yet."""
    markers = {row["_id"] for row in HandledEvent._get_collection().find({}, {"_id": 1})}
    missing = []
    for event in OutboxEvent._get_collection().find({}, {"type": 1}):
        for handler in handlers_for(event["type"]):
            if HandledEvent.key(event["_id"], handler.name) not in markers:
                missing.append(f"{event['_id']} {event['type']} {handler.name}")
    return missing


def check(history: list[dict[str, Any]], world: dict[str, Any]) -> list[str]:
    history = sorted(history, key=lambda entry: entry["seq"])
    return [
        *_registrations(history),
        *_redemptions(history),
        *_ledger(),
        *_events(world),
        *_rewards(world),
        *_notifications(),
        *_posts(history),
    ]


def _registrations(history: list[dict[str, Any]]) -> list[str]:
    violations = []
    by_pair: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for entry in history:
        if entry["op"] in {"register", "cancel_registration", "check_in"}:
            by_pair[(entry["owner"], entry["event"])].append(entry)
    stored = {
        (str(row["user_id"]), str(row["event_id"])): row["status"]
        for row in Registration._get_collection().find(
            {}, {"user_id": 1, "event_id": 1, "status": 1}
        )
    }
    for pair, entries in by_pair.items():
        status = stored.get(pair)
        if any(e["op"] == "check_in" and acknowledged(e) for e in entries):
            # Attended is final: no later operation leaves it.
            if status != ATTENDED:
                violations.append(f"checked-in registration {pair} is {status}")
            continue
        last = next((e for e in reversed(entries) if acknowledged(e)), None)
        if last is None:
            continue
        later = {e["op"] for e in entries if e["seq"] > last["seq"]}
        if last["op"] == "register":
            allowed = {CONFIRMED, WAITLISTED, ATTENDED, NO_SHOW}
            if "cancel_registration" in later:
                allowed.add(CANCELLED)
            if last["body"]["status"] == CONFIRMED:
                allowed.discard(WAITLISTED)
        elif last["op"] == "cancel_registration":
            allowed = {CANCELLED}
            if "register" in later:
                allowed |= {CONFIRMED, WAITLISTED}
            if "check_in" in later:
                allowed.add(ATTENDED)
        else:
            continue
        if status not in allowed:
            violations.append(
                f"registration {pair}: last acknowledged {last['op']} "
                f"({(last['body'] or {}).get('status')}), stored {status}"
            )
    return violations


def _redemptions(history: list[dict[str, Any]]) -> list[str]:
    violations = []
    redeemed = {
        entry["body"]["id"]: entry
        for entry in history
        if entry["op"] == "redeem" and acknowledged(entry)
    }
    cancels: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in history:
        if entry["op"] == "cancel_redemption":
            cancels[entry["redemption"]].append(entry)
    stored = {
        str(row["_id"]): row
        for row in Redemption._get_collection().find(
            {}, {"status": 1, "user_id": 1, "refund_entry_id": 1}
        )
    }
    for redemption_id, entry in redeemed.items():
        row = stored.get(redemption_id)
        if row is None:
            violations.append(f"acknowledged redemption {redemption_id} is missing")
            continue
        if str(row["user_id"]) != entry["owner"]:
            violations.append(f"redemption {redemption_id} belongs to someone else")
        attempts = cancels.get(redemption_id, [])
        if any(acknowledged(attempt) for attempt in attempts):
            if row["status"] != REDEMPTION_CANCELLED:
                violations.append(f"cancelled redemption {redemption_id} is {row['status']}")
        elif row["status"] != PENDING and not attempts:
            violations.append(f"redemption {redemption_id} is {row['status']}, nobody cancelled it")
    refunds = Counter(
        row["idempotency_key"].removeprefix("refund:")
        for row in LedgerEntry._get_collection().find({"kind": "refund"}, {"idempotency_key": 1})
    )
    for redemption_id, row in stored.items():
        expected = 1 if row["status"] == REDEMPTION_CANCELLED else 0
        if refunds.get(redemption_id, 0) != expected:
            violations.append(
                f"redemption {redemption_id} ({row['status']}) has "
                f"{refunds.get(redemption_id, 0)} refunds"
            )
    return violations


def _duplicates(field: str) -> list[str]:
    rows = LedgerEntry._get_collection().aggregate(
        [
            {"$match": {field: {"$type": "string"}}},
            {"$group": {"_id": f"${field}", "count": {"$sum": 1}}},
            {"$match": {"count": {"$gt": 1}}},
        ]
    )
    return [f"ledger {field} {row['_id']} used {row['count']} times" for row in rows]


def _ledger() -> list[str]:
    violations = [*_duplicates("idempotency_key"), *_duplicates("once_key")]
    entries = LedgerEntry._get_collection()
    sums = {
        row["_id"]: row["total"]
        for row in entries.aggregate(
            [{"$group": {"_id": "$account_id", "total": {"$sum": "$amount"}}}]
        )
    }
    lots = {
        row["_id"]: row["total"]
        for row in Lot._get_collection().aggregate(
            [{"$group": {"_id": "$account_id", "total": {"$sum": "$remaining"}}}]
        )
    }
    for account in PointsAccount._get_collection().find({}, {"balance": 1}):
        key = account["_id"]
        balance, entries_total, lots_total = account["balance"], sums.get(key, 0), lots.get(key, 0)
        if not balance == entries_total == lots_total or balance < 0:
            violations.append(
                f"account {key}: balance {balance}, entries {entries_total}, lots {lots_total}"
            )
        _, drift = check_account(key)
        if drift is not None:
            violations.append(f"reconciliation drift {drift}")
    # One attendance award per attended registration, and none without one.
    attended = {
        f"event.attended:{row['user_id']}:{row['event_id']}"
        for row in Registration._get_collection().find(
            {"status": ATTENDED}, {"user_id": 1, "event_id": 1}
        )
    }
    awarded = Counter(
        row["once_key"]
        for row in entries.find({"once_key": {"$regex": "^event\\.attended:"}}, {"once_key": 1})
    )
    for key in attended - set(awarded):
        violations.append(f"attendance without its award: {key}")
    for key in set(awarded) - attended:
        violations.append(f"award without an attendance: {key}")
    return violations


def _events(world: dict[str, Any]) -> list[str]:
    violations = []
    registrations = Registration._get_collection()
    for event in Event._get_collection().find(
        {"_id": {"$in": [ObjectId(e) for e in world["events"]]}}
    ):
        seated = registrations.count_documents(
            {"event_id": event["_id"], "status": {"$in": list(HOLDS_A_SEAT)}}
        )
        waiting = registrations.count_documents({"event_id": event["_id"], "status": WAITLISTED})
        if seated > event["capacity"]:
            violations.append(
                f"event {event['_id']}: {seated} seated, capacity {event['capacity']}"
            )
        if event["seats_left"] != event["capacity"] - seated:
            violations.append(
                f"event {event['_id']}: seats_left {event['seats_left']} but {seated} of "
                f"{event['capacity']} seated"
            )
        if waiting and seated < event["capacity"]:
            violations.append(
                f"event {event['_id']}: {waiting} waitlisted while {seated} of "
                f"{event['capacity']} seats are taken"
            )
    return violations


def _rewards(world: dict[str, Any]) -> list[str]:
    violations = []
    held = Counter()
    for row in Redemption._get_collection().find(
        {"status": {"$ne": REDEMPTION_CANCELLED}}, {"reward_id": 1, "quantity": 1}
    ):
        held[str(row["reward_id"])] += row["quantity"]
    for reward in Reward._get_collection().find(
        {"_id": {"$in": [ObjectId(r) for r in world["rewards"]]}}, {"stock": 1}
    ):
        if reward["stock"] < 0 or reward["stock"] + held[str(reward["_id"])] != world["stock"]:
            violations.append(
                f"reward {reward['_id']}: stock {reward['stock']}, "
                f"{held[str(reward['_id'])]} redeemed, {world['stock']} at the start"
            )
    return violations


def _notifications() -> list[str]:
    """Each owner got each notification they were owed, once: the inbox's unique dedupe key
    makes "more than once" impossible to store, so this looks for the missing ones."""
    violations = []
    keys = {row["dedupe_key"] for row in Notification._get_collection().find({}, {"dedupe_key": 1})}
    # Earned by a rule (loyalty.rules.award tells the owner); an earn that gives back what
    # a moderation removal took is not news of its own.
    earned = {"kind": "earn", "source.restores": {"$exists": False}}
    for entry in LedgerEntry._get_collection().find(earned, {"_id": 1}):
        if f"{entry['_id']}:points_earned" not in keys:
            violations.append(f"no points_earned notification for entry {entry['_id']}")
    for event in OutboxEvent._get_collection().find({"type": "registration.promoted"}, {"_id": 1}):
        if f"{event['_id']}:registration_promoted" not in keys:
            violations.append(f"no promotion notification for event {event['_id']}")
    return violations


# Where an acknowledged moderation action leaves a post.
_AFTER_ACTION = {"hide": HIDDEN, "restore": VISIBLE, "remove": REMOVED}


def _posts(history: list[dict[str, Any]]) -> list[str]:
    """Each acknowledged post exists, in the state the last acknowledged moderation action
    left it in (visible without one), unless an unanswered action came after it."""
    violations = []
    posted = [
        entry["body"]["id"] for entry in history if entry["op"] == "post" and acknowledged(entry)
    ]
    actions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in history:
        if entry["op"] == "moderate":
            actions[entry["post"]].append(entry)
    stored = {
        str(row["_id"]): row["status"] for row in Post._get_collection().find({}, {"status": 1})
    }
    for post_id in posted:
        if post_id not in stored:
            violations.append(f"acknowledged post {post_id} is missing")
            continue
        attempts = actions.get(post_id, [])
        last = next((e for e in reversed(attempts) if acknowledged(e)), None)
        if any(not acknowledged(e) and (last is None or e["seq"] > last["seq"]) for e in attempts):
            continue
        expected = _AFTER_ACTION[last["body"]["action"]] if last else VISIBLE
        if stored[post_id] != expected:
            violations.append(f"post {post_id} is {stored[post_id]}, expected {expected}")
    return violations
