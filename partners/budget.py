"""A city partner's monthly points budget, kept like the owners' points: immutable entries
(allocate, reserve, draw, release) and cached figures per month (`CityPartnerBudget`) and
per event (`CityPartnerReservation`), changed in the entry's transaction by conditional
`$inc`s, so concurrent publishes can never take the month's `left` below zero.

Events call in at publish (reserve capacity x reward), at a capacity or reward change
(resize), at check-in (draw the base reward: tier multipliers are paid by the brand) and at
completion or cancellation (release what was not drawn). A city run by HQ (no active
partner) draws on no budget.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from bson import ObjectId
from pymongo.client_session import ClientSession
from pymongo.errors import DuplicateKeyError

from accounts.services import city_timezone
from app.auth import Caller
from app.db import get_or_404, transaction
from app.web import paginate
from partners.errors import BudgetExceeded, MonthOutsideContract
from partners.models import (
    ALLOCATE,
    DRAW,
    RELEASE,
    RESERVE,
    CityPartner,
    CityPartnerBudget,
    CityPartnerBudgetEntry,
    CityPartnerReservation,
)

log = structlog.get_logger()

FIGURES = ("allocated", "reserved", "drawn", "released", "left")


def month_of(moment: datetime, city_code: str) -> str:
    """The `YYYY-MM` a moment falls in, in the city's time zone."""
    return moment.astimezone(ZoneInfo(city_timezone(city_code))).strftime("%Y-%m")


def _entry(
    session: ClientSession,
    partner_id: ObjectId,
    month: str,
    kind: str,
    points: int,
    *,
    event_id: ObjectId | None = None,
    once_key: str | None = None,
    actor_id: ObjectId | None = None,
) -> None:
    entry = CityPartnerBudgetEntry(
        city_partner_id=partner_id,
        month=month,
        kind=kind,
        points=points,
        event_id=event_id,
        once_key=once_key,
        actor_id=actor_id,
    )
    CityPartnerBudgetEntry._get_collection().insert_one(entry.to_mongo(), session=session)


def _move(
    session: ClientSession,
    partner_id: ObjectId,
    month: str,
    inc: dict[str, int],
    condition: dict[str, Any] | None = None,
    upsert: bool = False,
) -> bool:
    changed = CityPartnerBudget._get_collection().update_one(
        {"city_partner_id": partner_id, "month": month, **(condition or {})},
        {"$inc": inc},
        upsert=upsert,
        session=session,
    )
    return bool(changed.matched_count or changed.upserted_id)


# --- admins ------------------------------------------------------------------------------


def allocate(
    admin: Caller, partner_id: str, month: str, points: int, key: str | None = None
) -> dict[str, Any]:
    """Add `points` to the partner's month (a month of its contract), for an admin. With
    `key` (a console form's), the same allocation sent again adds nothing."""
    admin.require_admin()
    partner = get_or_404(CityPartner, partner_id)
    once_key = f"allocate:{admin.id}:{key}" if key else None
    add_allocation(partner, month, points, admin.user.pk, once_key)
    log.info("budget_allocated", city_partner_id=partner_id, month=month, points=points)
    return summary(partner.pk, month)


def add_allocation(
    partner: CityPartner,
    month: str,
    points: int,
    actor_id: ObjectId | None = None,
    once_key: str | None = None,
) -> None:
    """The allocation itself (no role check: the demo seed calls this)."""
    if not partner.contract_start[:7] <= month <= partner.contract_end[:7]:
        raise MonthOutsideContract(errors={"month": ["Outside the partner's contract."]})
    # The month's document is created outside the transaction: two first allocations
    # racing to insert it inside transactions would fail with a duplicate key, not retry.
    with contextlib.suppress(DuplicateKeyError):
        CityPartnerBudget._get_collection().update_one(
            {"city_partner_id": partner.pk, "month": month},
            {"$setOnInsert": dict.fromkeys(FIGURES, 0)},
            upsert=True,
        )

    def unit(session: ClientSession) -> None:
        entries = CityPartnerBudgetEntry._get_collection()
        if once_key and entries.find_one({"once_key": once_key}, {"_id": 1}, session=session):
            return
        _move(session, partner.pk, month, {"allocated": points, "left": points})
        _entry(session, partner.pk, month, ALLOCATE, points, actor_id=actor_id, once_key=once_key)

    try:
        transaction(unit)
    except DuplicateKeyError:
        if once_key is None:
            raise
        # The same key committed by a concurrent request: that one allocated.


# --- events ------------------------------------------------------------------------------


def reserve(
    session: ClientSession, partner_id: ObjectId, month: str, event_id: ObjectId, points: int
) -> None:
    """Hold `points` of the month for a published event (409 `budget_exceeded` when less is
    left), in the publishing transaction."""
    if points and not _move(
        session,
        partner_id,
        month,
        {"reserved": points, "left": -points},
        {"left": {"$gte": points}},
    ):
        raise BudgetExceeded(left=left_in(partner_id, month, session), needed=points)
    CityPartnerReservation._get_collection().update_one(
        {"_id": event_id},
        {
            "$setOnInsert": {"city_partner_id": partner_id, "month": month},
            "$inc": {"reserved": points, "outstanding": points},
        },
        upsert=True,
        session=session,
    )
    if points:
        _entry(session, partner_id, month, RESERVE, points, event_id=event_id)


def _reservation(session: ClientSession | None, event_id: ObjectId) -> dict[str, Any] | None:
    return CityPartnerReservation._get_collection().find_one({"_id": event_id}, session=session)


def resize(event_id: ObjectId, outstanding: int) -> None:
    """Make what the event holds for check-ins to come `outstanding`: more is reserved
    (409 `budget_exceeded`) or the surplus released."""

    def unit(session: ClientSession) -> None:
        held = _reservation(session, event_id)
        if held is None:
            return
        delta = outstanding - held["outstanding"]
        if delta > 0:
            reserve(session, held["city_partner_id"], held["month"], event_id, delta)
        elif delta < 0:
            _release(session, held, -delta)

    transaction(unit)


def draw(
    session: ClientSession, event_id: ObjectId, registration_id: ObjectId, points: int
) -> None:
    """Take one attendance's reward from the event's reservation, in the check-in's
    transaction; an event without a reservation (run by HQ) draws nothing."""
    if not points:
        return
    held = _reservation(session, event_id)
    if held is None:
        return
    taken = CityPartnerReservation._get_collection().update_one(
        {"_id": event_id, "outstanding": {"$gte": points}},
        {"$inc": {"outstanding": -points, "drawn": points}},
        session=session,
    )
    if not taken.matched_count:
        raise BudgetExceeded(message="The event's budget reservation is used up.")
    _move(session, held["city_partner_id"], held["month"], {"drawn": points})
    _entry(
        session,
        held["city_partner_id"],
        held["month"],
        DRAW,
        points,
        event_id=event_id,
        once_key=f"draw:{registration_id}",
    )


def _release(session: ClientSession, held: dict[str, Any], points: int) -> None:
    if not points:
        return
    CityPartnerReservation._get_collection().update_one(
        {"_id": held["_id"], "outstanding": {"$gte": points}},
        {"$inc": {"outstanding": -points, "released": points}},
        session=session,
    )
    _move(session, held["city_partner_id"], held["month"], {"released": points, "left": points})
    _entry(session, held["city_partner_id"], held["month"], RELEASE, points, event_id=held["_id"])


def release_rest(session: ClientSession, event_id: ObjectId) -> None:
    """Give back what the event did not draw, when it completes or is cancelled."""
    held = _reservation(session, event_id)
    if held is not None:
        _release(session, held, held["outstanding"])


# --- reading -----------------------------------------------------------------------------


def left_in(partner_id: ObjectId, month: str, session: ClientSession | None = None) -> int:
    budget = CityPartnerBudget._get_collection().find_one(
        {"city_partner_id": partner_id, "month": month}, {"left": 1}, session=session
    )
    return (budget or {}).get("left", 0)


def summary(partner_id: ObjectId, month: str) -> dict[str, Any]:
    budget = (
        CityPartnerBudget.objects(city_partner_id=partner_id, month=month).as_pymongo().first()
        or {}
    )
    return {"month": month, **{name: budget.get(name, 0) for name in FIGURES}}


def budget_of(partner: CityPartner, month: str, cursor: str | None, limit: int) -> dict[str, Any]:
    """The month's figures and a page of its entries, newest first."""
    entries = CityPartnerBudgetEntry.objects(city_partner_id=partner.pk, month=month)
    page = paginate(entries, cursor, limit, order=("-id",))
    return {
        **summary(partner.pk, month),
        "entries": page["items"],
        "next_cursor": page["next_cursor"],
    }


# --- reconciliation ----------------------------------------------------------------------


def reconcile(repair: bool = True) -> list[dict[str, Any]]:
    """Recompute every month's and every reservation's figures from the entries; report
    (and repair) each difference. The entries are the source of truth."""
    months: dict[tuple[ObjectId, str], dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(FIGURES, 0)
    )
    events: dict[ObjectId, dict[str, int]] = defaultdict(
        lambda: {"reserved": 0, "drawn": 0, "released": 0}
    )
    by_kind = {ALLOCATE: "allocated", RESERVE: "reserved", DRAW: "drawn", RELEASE: "released"}
    for row in CityPartnerBudgetEntry._get_collection().aggregate(
        [
            {
                "$group": {
                    "_id": {
                        "partner": "$city_partner_id",
                        "month": "$month",
                        "kind": "$kind",
                        "event": "$event_id",
                    },
                    "points": {"$sum": "$points"},
                }
            }
        ]
    ):
        key = row["_id"]
        figure = by_kind[key["kind"]]
        months[(key["partner"], key["month"])][figure] += row["points"]
        if key.get("event") is not None:
            events[key["event"]][figure] += row["points"]
    drifts = []
    for (partner_id, month), expected in months.items():
        expected["left"] = expected["allocated"] - expected["reserved"] + expected["released"]
        cached = (
            CityPartnerBudget._get_collection().find_one(
                {"city_partner_id": partner_id, "month": month}
            )
            or {}
        )
        wrong = {
            name: cached.get(name, 0) for name in FIGURES if cached.get(name, 0) != expected[name]
        }
        if wrong:
            drifts.append(
                {
                    "city_partner_id": str(partner_id),
                    "month": month,
                    "cached": wrong,
                    "expected": expected,
                }
            )
            if repair:
                CityPartnerBudget._get_collection().update_one(
                    {"city_partner_id": partner_id, "month": month}, {"$set": expected}, upsert=True
                )
    for event_id, expected in events.items():
        expected["outstanding"] = expected["reserved"] - expected["drawn"] - expected["released"]
        cached = _reservation(None, event_id) or {}
        wrong = {
            name: cached.get(name, 0) for name in expected if cached.get(name, 0) != expected[name]
        }
        if wrong:
            drifts.append({"event_id": str(event_id), "cached": wrong, "expected": expected})
            if repair:
                CityPartnerReservation._get_collection().update_one(
                    {"_id": event_id}, {"$set": expected}
                )
    log.info("budget_reconciled", drifts=len(drifts), repaired=repair)
    return drifts
