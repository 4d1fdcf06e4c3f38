"""A drop's job: count its entries, hold a draw's points, serve the entries in order, and
tell each entrant how their entry ended.

One pass (`run`, from the `drops.run` actor) does what is due and says when the next is:
every second while the drop is open, until every entry is decided. Passes of one drop
never overlap: a pass holds the drop's lease, and the message that starts the next pass
carries the lease's token (a second chain, or the minute's sweep, finds the lease held
and stops).

Which entries a pass may read. The API stamps an entry's arrival before inserting it, and
an insert either lands within the request's database budget (REQUEST_DB_BUDGET_MS) or
fails, so every entry stamped before `now - settle` (the budget and a second) is in the
collection: a pass reads only those, and a first-come order is final up to there.

Serving, in order (arrival, or the draw once the drop has closed): a batch of entries is
`selected` with the places it takes (the drop's `allocated` grows in the same
transaction, so no pass ever gives more than the quantity, invariant 11); then each
selected entry's redemption or registration is made through loyalty's or events' own
service, which is idempotent by the entry's id (a pass that dies in between and runs again
makes nothing twice); then the batch is settled, won or refused (the owner banned, gone
from the city, short of points...), in one transaction, and a refusal gives its place back
to the next entry in order. Once the places are all won, every other entry has lost; a
draw's held points are released. Each decision is recorded with its domain event,
`drop.entries_decided`, whose handler tells the entrants.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog
from bson import ObjectId
from flask import current_app
from pymongo.client_session import ClientSession

from app.auth import Caller, load_caller
from app.clock import utcnow
from app.db import batch, transaction
from app.errors import DomainError
from app.outbox import record_event
from drops import draw, errors
from drops.domain_events import DROP_ENTRIES_DECIDED, EntriesDecided
from drops.entries import as_arrival, from_arrival, standing_refusal
from drops.launch import Rules, rules_of
from drops.models import (
    DECIDED,
    ENTERED,
    FIRST_COME,
    LOST,
    REFUSED,
    REWARD,
    SELECTED,
    UNDECIDED,
    WON,
    Drop,
    Entry,
)
from events import registration as event_places
from events.errors import NoSeatLeft
from loyalty import holds, rewards
from loyalty.errors import InsufficientPoints, OutOfStock

log = structlog.get_logger()

# While a drop is open, a pass every second: a first-come winner learns it within a few
# seconds of the settle time.
RUN_EVERY = 1.0
# A pass works this long at most, then hands over to the next message.
PASS_SECONDS = 20.0
# A pass holds the drop this long; the chain's next message re-takes it, and a lost
# message lets the minute's sweep start the drop again once it runs out.
LEASE = timedelta(seconds=60)
# Entries selected per transaction, and named per domain event.
BATCH = 100
TOLD_PER_EVENT = 500
# Every arrival, once the drop closed and settled.
ALL = 2**62
# When a refusal means nothing is left to give: the rest of the entries lose.
NOTHING_LEFT = {OutOfStock.error, NoSeatLeft.error}


def settle_time() -> timedelta:
    """How long after its arrival stamp an entry is surely in the collection."""
    return timedelta(milliseconds=current_app.config["REQUEST_DB_BUDGET_MS"] + 1000)


def run(drop_id: ObjectId, token: str) -> float | None:
    """One pass over the drop, if its lease is free or this chain's. Returns the seconds
    until the next pass is due; None when the drop is decided or another pass holds it."""
    now = utcnow()
    drops = Drop._get_collection()
    taken = drops.update_one(
        {
            "_id": drop_id,
            "status": {"$ne": DECIDED},
            "$or": [{"lease": token}, {"lease_until": None}, {"lease_until": {"$lt": now}}],
        },
        {"$set": {"lease": token, "lease_until": now + LEASE}},
    )
    if not taken.matched_count:
        return None
    next_in: float | None = None
    try:
        next_in = _pass(drop_id, time.monotonic() + PASS_SECONDS)
        return next_in
    finally:
        # Held until the next pass is due (and a grace), so that only this chain runs it.
        until = utcnow() + timedelta(seconds=next_in or 0) + LEASE if next_in is not None else None
        drops.update_one({"_id": drop_id, "lease": token}, {"$set": {"lease_until": until}})


def _pass(drop_id: ObjectId, deadline: float) -> float | None:
    drop = Drop._get_collection().find_one({"_id": drop_id})
    if drop is None or drop["status"] == DECIDED:
        return None
    now = utcnow()
    if now < drop["opens_at"]:
        return (drop["opens_at"] - now).total_seconds()
    settled = now - settle_time()
    all_in = settled >= drop["closes_at"]
    until = ALL if all_in else as_arrival(settled)
    rules = rules_of(drop_id)
    reward_draw = rules.holds_points
    since = min(
        drop["counted_until"],
        drop["ordered_until"] if drop["mode"] == FIRST_COME else ALL,
        drop["held_until"] if reward_draw else ALL,
    )
    arrived = _entries(drop_id, since, until) if since < until else []
    _count(drop, [entry for entry in arrived if entry["arrival"] >= drop["counted_until"]], until)
    held = not reward_draw or drop["held_until"] >= until
    if not held:
        fresh = [e for e in arrived if e["arrival"] >= drop["held_until"]]
        held = _hold(drop, rules, draw.arrival_order(fresh), until, deadline)
    done = False
    if drop["mode"] == FIRST_COME:
        fresh = [e for e in arrived if e["arrival"] >= drop["ordered_until"]]
        if _serve(drop_id, rules, draw.arrival_order(fresh), deadline):
            Drop._get_collection().update_one({"_id": drop_id}, {"$set": {"ordered_until": until}})
            done = all_in
    elif all_in and held:
        if not drop["drawn"]:
            Drop._get_collection().update_one(
                {"_id": drop_id}, {"$set": {"drawn": True, "seed_revealed_at": utcnow()}}
            )
            log.info("drop_drawn", drop_id=str(drop_id))
        undecided = _entries(drop_id, 0, ALL, statuses=UNDECIDED)
        done = _serve(drop_id, rules, draw.draw_order(drop["seed"], undecided), deadline)
    if done and _decide(drop, rules):
        return None
    if time.monotonic() > deadline:
        return 0.0  # more to do at once
    return RUN_EVERY if now < drop["closes_at"] else settle_time().total_seconds() / 2


def _entries(
    drop_id: ObjectId, since: int, until: int, statuses: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    """The drop's entries that arrived in [since, until), read on (drop_id, arrival)."""
    query: dict[str, Any] = {"drop_id": drop_id, "arrival": {"$gte": since, "$lt": until}}
    if statuses is not None:
        query["status"] = {"$in": list(statuses)}
    return list(
        Entry._get_collection().find(
            query, {"user_id": 1, "arrival": 1, "quantity": 1, "status": 1, "allocated": 1}
        )
    )


# --- the figures -----------------------------------------------------------------------


def _count(drop: dict[str, Any], arrived: list[dict[str, Any]], until: int) -> None:
    """Add the entries that arrived since the last count to the drop's figures: how many,
    the first and last, and the busiest second (a second is counted whole once over)."""
    if drop["counted_until"] >= until:
        return
    seconds = Counter({int(second): count for second, count in drop["per_second"].items()})
    seconds.update(entry["arrival"] // 1_000_000 for entry in arrived)
    open_second = until // 1_000_000
    complete = {second: count for second, count in seconds.items() if second < open_second}
    changes: dict[str, Any] = {
        "counted_until": until,
        "per_second": {str(s): c for s, c in seconds.items() if s >= open_second},
    }
    busiest = max(complete.items(), key=lambda item: item[1], default=None)
    if busiest and busiest[1] > drop["peak_per_second"]:
        changes.update(
            peak_per_second=busiest[1], peak_second_at=from_arrival(busiest[0] * 1_000_000)
        )
    update: dict[str, Any] = {"$set": changes, "$inc": {"entries": len(arrived)}}
    if arrived:
        arrivals = [entry["arrival"] for entry in arrived]
        update["$min"] = {"first_entry_at": from_arrival(min(arrivals))}
        update["$max"] = {"last_entry_at": from_arrival(max(arrivals))}
    Drop._get_collection().update_one({"_id": drop["_id"]}, update)


# --- a reward's draw: points held while the drop is open -------------------------------


def _hold(
    drop: dict[str, Any], rules: Rules, arrived: list[dict[str, Any]], until: int, deadline: float
) -> bool:
    """Hold the points of new entries (in arrival order), a command per few hundred; an
    entrant who spent them since entering is refused. Whether all are held (else the pass
    ran out of time, and the next goes on from the last held)."""
    drops = Drop._get_collection()
    for start in range(0, len(arrived), holds.CHUNK):
        if start and time.monotonic() > deadline:
            return False
        chunk = arrived[start : start + holds.CHUNK]
        waiting = [entry for entry in chunk if entry["status"] == ENTERED]
        placed = holds.hold_points([_hold_of(rules, entry) for entry in waiting])
        short = [entry for entry in waiting if entry["user_id"] not in placed]
        if short:
            _settle(drop["_id"], rules, [], [(entry, InsufficientPoints.error) for entry in short])
        # From the last held on (holding again changes nothing), however many share its time.
        drops.update_one({"_id": drop["_id"]}, {"$set": {"held_until": chunk[-1]["arrival"]}})
    drops.update_one({"_id": drop["_id"]}, {"$set": {"held_until": until}})
    return True


def _hold_of(rules: Rules, entry: dict[str, Any]) -> holds.Hold:
    return holds.Hold(entry["user_id"], rules.hold_key, rules.cost * entry["quantity"])


# --- serving the entries in order ------------------------------------------------------


def _serve(drop_id: ObjectId, rules: Rules, ordered: list[dict[str, Any]], deadline: float) -> bool:
    """Serve `ordered` entries in turn until the places run out, then the rest lose.
    Returns False when the pass ran out of time first."""
    # Selected by a pass that died: their places are taken, their turn came first.
    unfinished = [entry for entry in ordered if entry["status"] == SELECTED]
    if unfinished:
        _make_and_settle(drop_id, rules, unfinished)
    queue = deque(entry for entry in ordered if entry["status"] == ENTERED)
    served = 0
    while queue:
        # Each pass serves a batch at least, so that a slow one still gets somewhere.
        if served and time.monotonic() > deadline:
            return False
        served += 1
        drop = Drop._get_collection().find_one(
            {"_id": drop_id}, {"quantity": 1, "allocated": 1, "considered": 1, "full": 1}
        )
        room = drop["quantity"] - drop["allocated"]
        if drop["full"] or room <= 0:
            return _lose(drop_id, rules, list(queue), deadline)
        chosen: list[dict[str, Any]] = []
        while queue and room > 0 and len(chosen) < BATCH:
            entry = queue.popleft()
            entry["allocated"] = min(entry["quantity"], room)
            entry["position"] = drop["considered"] + len(chosen) + 1
            room -= entry["allocated"]
            chosen.append(entry)
        _select(drop_id, chosen)
        for entry in chosen:
            entry["status"] = SELECTED
        _make_and_settle(drop_id, rules, chosen)
    return True


def _select(drop_id: ObjectId, chosen: list[dict[str, Any]]) -> None:
    """Set places aside for the chosen entries, in one transaction with the drop's count
    of places given, so that no pass can give more than the quantity."""

    def unit(session: ClientSession) -> None:
        writes = batch(session)
        for entry in chosen:
            writes.update(
                Entry._get_collection(),
                {"_id": entry["_id"], "status": ENTERED},
                {
                    "$set": {
                        "status": SELECTED,
                        "allocated": entry["allocated"],
                        "position": entry["position"],
                    }
                },
            )
        writes.update(
            Drop._get_collection(),
            {"_id": drop_id},
            {
                "$inc": {
                    "allocated": sum(entry["allocated"] for entry in chosen),
                    "considered": len(chosen),
                }
            },
        )

    transaction(unit)


def _make_and_settle(drop_id: ObjectId, rules: Rules, selected: list[dict[str, Any]]) -> None:
    won: list[tuple[dict[str, Any], ObjectId]] = []
    refused: list[tuple[dict[str, Any], str]] = []
    for entry in selected:
        made, refusal = _make(rules, entry)
        if made is not None:
            won.append((entry, made))
        else:
            assert refusal is not None
            refused.append((entry, refusal))
    _settle(drop_id, rules, won, refused)


def _make(rules: Rules, entry: dict[str, Any]) -> tuple[ObjectId | None, str | None]:
    """The redemption or registration the entry won, made by its domain's own service;
    or why it cannot be (a refusal's slug)."""
    caller = load_caller(entry["user_id"])
    now = utcnow()
    if caller is None or caller.user.banned(now):
        return None, errors.EntrantGone.error
    refusal = _standing_refusal(caller, rules, entry, now)
    if refusal is not None:
        return None, refusal
    try:
        if rules.target_type == REWARD:
            hold = rules.hold_key if rules.holds_points else None
            redemption = rewards.redeem(
                caller.user,
                str(rules.target_id),
                entry["allocated"],
                drop=rewards.ThroughDrop(rules.id, entry["_id"], hold),
            )
            return redemption.pk, None
        place = event_places.register(
            caller, str(rules.target_id), drop=event_places.ThroughDrop(rules.id, entry["_id"])
        )
        return place.pk, None
    except DomainError as refused:
        return None, refused.error


def _standing_refusal(
    caller: Caller, rules: Rules, entry: dict[str, Any], now: datetime
) -> str | None:
    """The drop's own rules, asked again when the entry's turn comes (staff since, moved
    away...). The redemption or registration then checks its own: points, tier, the
    city's tenure, seats (a draw's points are held, so they would not count here)."""
    refusal = standing_refusal(caller, rules, entry["quantity"])
    return refusal.error if refusal is not None else None


def _settle(
    drop_id: ObjectId,
    rules: Rules,
    won: list[tuple[dict[str, Any], ObjectId]],
    refused: list[tuple[dict[str, Any], str]],
) -> None:
    """Write the decisions of selected (or, refused at their hold, entered) entries, give
    the places of the refused back, and record what to tell their owners."""
    if refused and rules.holds_points:
        holds.release_points([_hold_of(rules, entry) for entry, _ in refused])
    now = utcnow()
    given_back = sum(
        entry.get("allocated") or 0 for entry, _ in refused if entry["status"] != ENTERED
    )
    nothing_left = any(reason in NOTHING_LEFT for _, reason in refused)

    def unit(session: ClientSession) -> None:
        writes = batch(session)
        entries = Entry._get_collection()
        for entry, made in won:
            writes.update(
                entries,
                {"_id": entry["_id"], "status": SELECTED},
                {"$set": {"status": WON, "made_id": made, "decided_at": now}},
            )
        for entry, reason in refused:
            writes.update(
                entries,
                {"_id": entry["_id"], "status": entry["status"]},
                {"$set": {"status": REFUSED, "reason": reason, "decided_at": now}},
            )
        counts: dict[str, int] = {"won": len(won), "allocated": -given_back}
        for reason, count in Counter(reason for _, reason in refused).items():
            counts[f"refused.{reason}"] = count
        update: dict[str, Any] = {"$inc": counts}
        if nothing_left:
            update["$set"] = {"full": True}
        writes.update(Drop._get_collection(), {"_id": drop_id}, update)
        _record_decisions(session, rules, WON, [(entry, None) for entry, _ in won])
        _record_decisions(session, rules, REFUSED, refused)

    transaction(unit)
    if won or refused:
        log.info("drop_entries_settled", drop_id=str(drop_id), won=len(won), refused=len(refused))


def _lose(drop_id: ObjectId, rules: Rules, losing: list[dict[str, Any]], deadline: float) -> bool:
    """Every place is won: these entries lose (a draw's held points are released). Whether
    all of them are decided (else the pass ran out of time)."""
    now = utcnow()
    for start in range(0, len(losing), TOLD_PER_EVENT):
        if start and time.monotonic() > deadline:
            return False
        chunk = losing[start : start + TOLD_PER_EVENT]
        if rules.holds_points:
            holds.release_points([_hold_of(rules, entry) for entry in chunk])

        def unit(session: ClientSession, chunk: list[dict[str, Any]] = chunk) -> None:
            Entry._get_collection().update_many(
                {"_id": {"$in": [entry["_id"] for entry in chunk]}, "status": ENTERED},
                {"$set": {"status": LOST, "decided_at": now}},
                session=session,
            )
            batch(session).update(
                Drop._get_collection(),
                {"_id": drop_id},
                {"$inc": {"lost": len(chunk)}, "$set": {"full": True}},
            )
            _record_decisions(session, rules, LOST, [(entry, None) for entry in chunk])

        transaction(unit)
        log.info("drop_entries_lost", drop_id=str(drop_id), lost=len(chunk))
    return True


def _record_decisions(
    session: ClientSession,
    rules: Rules,
    outcome: str,
    decided: Sequence[tuple[dict[str, Any], str | None]],
) -> None:
    for start in range(0, len(decided), TOLD_PER_EVENT):
        chunk = decided[start : start + TOLD_PER_EVENT]
        record_event(
            session,
            DROP_ENTRIES_DECIDED,
            EntriesDecided(
                outcome,
                [str(entry["user_id"]) for entry, _ in chunk],
                [reason for _, reason in chunk] if outcome == REFUSED else [],
            ),
            subject_id=rules.id,
        )


def _decide(drop: dict[str, Any], rules: Rules) -> bool:
    """Once every entry is decided, the drop is over, and what it left of the reward's
    stock or the event's seats is claimed directly again. Whether it is over."""
    left = Entry._get_collection().count_documents(
        {"drop_id": drop["_id"], "arrival": {"$gte": 0}, "status": {"$in": list(UNDECIDED)}}
    )
    if left:
        return False
    if rules.target_type == REWARD:
        rewards.release_from_drop(rules.target_id, rules.id)
    else:
        event_places.release_from_drop(rules.target_id, rules.id)
    Drop._get_collection().update_one(
        {"_id": drop["_id"]},
        {"$set": {"status": DECIDED, "decided_at": utcnow()}, "$unset": {"lease": ""}},
    )
    log.info("drop_decided", drop_id=str(drop["_id"]))
    return True
