"""Monthly settlement with an ecosystem partner: the points it credited and owners spent
there in a month of its business days, the money owed each way at the contract's rates,
and the statement exceptions still open. A month is closed once, with the figures it
closed on.

A movement is booked on a business day (`PartnerDayTotal`): what the partner sends, on the
day we receive it; what an admin applies resolving a statement exception, on the
statement's day while that month is open, else on the day it is applied. So once a month
is closed nothing more lands in it: late lines land in the next open month. A month can be
closed `CLOSE_AFTER` past its last business day, once every request of its last moments
has finished; a resolution booking into a month writes the month's settlement document,
so a close running at the same time conflicts with it and one of them runs again, seeing
the other.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta
from typing import Any

import structlog
from pymongo.client_session import ClientSession

from app.auth import Caller
from app.clock import utcnow
from app.db import transaction
from loyalty import errors, statements
from loyalty.models import (
    CREDIT,
    SETTLEMENT_CLOSED,
    SETTLEMENT_OPEN,
    EcosystemPartner,
    PartnerDayTotal,
    PartnerSettlement,
)
from loyalty.partner_systems import business_day, day_window, partner_for

log = structlog.get_logger()

CLOSE_AFTER = timedelta(minutes=10)


def settlement_id(partner_id: Any, month: str) -> str:
    return f"{partner_id}:{month}"


def month_days(month: str) -> tuple[date, date]:
    """The first and last day of `month` (YYYY-MM)."""
    first = date.fromisoformat(f"{month}-01")
    following = (first + timedelta(days=32)).replace(day=1)
    return first, following - timedelta(days=1)


def booking_day(session: ClientSession, partner: EcosystemPartner, day: str, now: datetime) -> str:
    """The business day a movement belonging to `day` is booked on: `day` while its month
    is open, else the day of `now`. Booking into the month writes its settlement document,
    so that closing it meanwhile conflicts with this transaction."""
    settlements = PartnerSettlement._get_collection()
    key = settlement_id(partner.pk, day[:7])
    found = settlements.find_one({"_id": key}, {"status": 1}, session=session)
    if found is not None and found["status"] == SETTLEMENT_CLOSED:
        return business_day(partner, now)
    settlements.update_one(
        {"_id": key},
        {
            "$set": {"updated_at": now},
            "$setOnInsert": {"partner_id": partner.pk, "month": day[:7], "status": SETTLEMENT_OPEN},
        },
        upsert=True,
        session=session,
    )
    return day


def _money(points: int, rate_per_1000: int) -> int:
    """Minor units for `points` at a rate per 1,000 points, rounded half away from zero."""
    sign = -1 if points < 0 else 1
    return sign * ((abs(points) * rate_per_1000 + 500) // 1000)


def figures(
    partner: EcosystemPartner, month: str, session: ClientSession | None = None
) -> dict[str, Any]:
    """The month's figures as the ledger has them now: from the day totals, one read."""
    first, last = month_days(month)
    days: dict[str, dict[str, int]] = {}
    totals = PartnerDayTotal._get_collection().find(
        {"partner_id": partner.pk, "day": {"$gte": first.isoformat(), "$lte": last.isoformat()}},
        session=session,
    )
    for total in totals:
        day = days.setdefault(total["day"], {"points_credited": 0, "points_debited": 0})
        day["points_credited" if total["direction"] == CREDIT else "points_debited"] += total[
            "booked"
        ]
    credited = sum(day["points_credited"] for day in days.values())
    debited = sum(day["points_debited"] for day in days.values())
    partner_owes = _money(credited, partner.credit_rate_per_1000)
    brand_owes = _money(debited, partner.debit_rate_per_1000)
    return {
        "currency": partner.currency,
        "credit_rate_per_1000": partner.credit_rate_per_1000,
        "debit_rate_per_1000": partner.debit_rate_per_1000,
        "points_credited": credited,
        "points_debited": debited,
        "partner_owes": partner_owes,
        "brand_owes": brand_owes,
        "net_owed_to_brand": partner_owes - brand_owes,
        "open_exceptions": statements.open_exception_count(
            partner.pk, first.isoformat(), last.isoformat()
        ),
        "days": [{"day": day, **days[day]} for day in sorted(days)],
    }


def settlement_of(
    admin: Caller, partner_id: str, month: str, now: datetime | None = None
) -> dict[str, Any]:
    """A partner's month: the figures it closed on, or, while open, today's."""
    partner = partner_for(admin, partner_id)
    found = PartnerSettlement.objects(pk=settlement_id(partner.pk, month)).as_pymongo().first()
    head = {"partner_id": partner.pk, "partner_name": partner.name, "month": month}
    if found is not None and found["status"] == SETTLEMENT_CLOSED:
        return {**head, **found["figures"], **_closing(found)}
    return {
        **head,
        **figures(partner, month),
        "status": SETTLEMENT_OPEN,
        "closable_from": closable_from(partner, month),
    }


def _closing(document: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": SETTLEMENT_CLOSED,
        "closed_at": document["closed_at"],
        "closed_by": document["closed_by"],
    }


def closable_from(partner: EcosystemPartner, month: str) -> datetime:
    _, last = month_days(month)
    return day_window(partner, last)[1] + CLOSE_AFTER


def close_month(
    admin: Caller, partner_id: str, month: str, now: datetime | None = None
) -> dict[str, Any]:
    """Close a partner's month once (409 `month_closed` after), on its figures now; 409
    `month_not_over` before it can be."""
    partner = partner_for(admin, partner_id)
    now = now or utcnow()
    if now < (opens := closable_from(partner, month)):
        raise errors.MonthNotOver(closable_from=opens.isoformat())
    settlements = PartnerSettlement._get_collection()
    key = settlement_id(partner.pk, month)

    def unit(session: ClientSession) -> dict[str, Any]:
        found = settlements.find_one({"_id": key}, session=session)
        if found is not None and found["status"] == SETTLEMENT_CLOSED:
            raise errors.MonthClosed()
        closed: dict[str, Any] = {
            "status": SETTLEMENT_CLOSED,
            "figures": figures(partner, month, session),
            "closed_at": now,
            "closed_by": admin.user.pk,
            "updated_at": now,
        }
        settlements.update_one(
            {"_id": key},
            {"$set": closed, "$setOnInsert": {"partner_id": partner.pk, "month": month}},
            upsert=True,
            session=session,
        )
        head = {"partner_id": partner.pk, "partner_name": partner.name, "month": month}
        return {**head, **closed["figures"], **_closing(closed)}

    result = transaction(unit, answers_request=True)
    log.info(
        "partner_month_closed",
        partner_id=partner_id,
        month=month,
        credited=result["points_credited"],
        debited=result["points_debited"],
        by=admin.id,
    )
    return result


CSV_COLUMNS = ("month", "day", "points_credited", "points_debited")
CSV_TOTALS = ("partner_owes", "brand_owes", "net_owed_to_brand", "open_exceptions")


def as_csv(settlement: dict[str, Any]) -> str:
    """A row per business day, then the month's totals and the money (in minor units of
    the currency)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["partner", *CSV_COLUMNS, "currency", *CSV_TOTALS, "status"])
    name = _inert(settlement["partner_name"])
    for day in settlement["days"]:
        writer.writerow(
            [name, settlement["month"], day["day"], day["points_credited"], day["points_debited"]]
        )
    writer.writerow(
        [
            name,
            settlement["month"],
            "total",
            settlement["points_credited"],
            settlement["points_debited"],
            settlement["currency"],
            *(settlement[column] for column in CSV_TOTALS),
            settlement["status"],
        ]
    )
    return out.getvalue()


def _inert(text: str) -> str:
    """Text a spreadsheet will not run as a formula (a name starting with `=`...)."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
