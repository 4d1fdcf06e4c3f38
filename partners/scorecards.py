"""Monthly scorecards of city partners: each installed domain's figures for the partner's
city and month (in the city's time zone, within the contract), gathered through
`app.domains.scorecard_figures` and stored as a snapshot, so reading one is one indexed
lookup. The nightly job computes the current and the previous month; the current month is
also refreshed on demand, at most once per SCORECARD_REFRESH.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from flask import current_app

from accounts.services import city_timezone
from app import domains
from app.auth import Caller
from app.clock import utcnow
from partners import budget, services
from partners.errors import FutureMonth, MonthOutsideContract
from partners.models import CityPartner, CityPartnerScorecard

log = structlog.get_logger()

# The figures, in the order the CSV shows them, with the value of one no installed domain
# provides (a domain taken out of app/domains.py leaves its figures at these).
FIGURES: dict[str, Any] = {
    "new_verified_owners": 0,
    "active_owners": 0,
    "events_held": 0,
    "registrations": 0,
    "attended": 0,
    "no_shows": 0,
    "attendance_rate": None,
    "no_show_rate": None,
    "feedback_count": 0,
    "average_rating": None,
    "nps": None,
    "follow_ups_open": 0,
    "follow_ups_overdue": 0,
    "points_issued": 0,
    "budget_allocated": 0,
    "budget_used": 0,
    "posts": 0,
    "comments": 0,
    "reports_resolved": 0,
    "median_hours_to_resolve": None,
    "referrals_completed": 0,
}
SORTABLE = tuple(FIGURES)


def month_bounds(month: str, timezone: str) -> tuple[datetime, datetime]:
    """The month's first instant and the next month's, in UTC, for the city's zone."""
    zone = ZoneInfo(timezone)
    first = date.fromisoformat(f"{month}-01")
    following = (first + timedelta(days=32)).replace(day=1)
    return (
        datetime.combine(first, time(), zone).astimezone(ZoneInfo("UTC")),
        datetime.combine(following, time(), zone).astimezone(ZoneInfo("UTC")),
    )


def current_month(city_code: str, now: datetime | None = None) -> str:
    return services.local_today(city_code, now)[:7]


def scope_of(partner: CityPartner, month: str) -> domains.ScorecardScope:
    """The month within the partner's contract, in the city's time zone."""
    timezone = city_timezone(partner.city_code)
    start, end = month_bounds(month, timezone)
    zone = ZoneInfo(timezone)
    contract_start = datetime.combine(date.fromisoformat(partner.contract_start), time(), zone)
    contract_end = datetime.combine(
        date.fromisoformat(partner.contract_end) + timedelta(days=1), time(), zone
    )
    start, end = max(start, contract_start), min(end, contract_end)
    return domains.ScorecardScope(
        city_code=partner.city_code,
        city_partner_id=partner.pk,
        month=month,
        start=start,
        end=max(start, end),
    )


def compute(partner: CityPartner, month: str) -> dict[str, Any]:
    """Compute and store the partner's scorecard of `month`; returns its figures."""
    scope = scope_of(partner, month)
    found, active = domains.scorecard_figures(scope)
    spent = budget.summary(partner.pk, month)
    figures = {
        **FIGURES,
        **found,
        "active_owners": len(active),
        "budget_allocated": spent["allocated"],
        "budget_used": spent["drawn"],
    }
    CityPartnerScorecard._get_collection().update_one(
        {"city_partner_id": partner.pk, "month": month},
        {
            "$set": {
                "figures": figures,
                "computed_at": utcnow(),
                "city_code": partner.city_code,
                "name": partner.name,
            }
        },
        upsert=True,
    )
    return figures


def _fresh(partner: CityPartner, month: str, this_month: str) -> dict[str, Any]:
    """The stored scorecard, computed first when missing, or when it is of the current
    month and older than SCORECARD_REFRESH_SECONDS (of concurrent readers, the one whose
    conditional update claims the refresh recomputes it)."""
    stored = _stored(partner.pk, month)
    now = utcnow()
    if stored is None:
        compute(partner, month)
    elif month >= this_month and stored["computed_at"] < now - timedelta(
        seconds=current_app.config["SCORECARD_REFRESH_SECONDS"]
    ):
        claimed = CityPartnerScorecard._get_collection().update_one(
            {"_id": stored["_id"], "computed_at": stored["computed_at"]},
            {"$set": {"computed_at": now}},
        )
        if claimed.modified_count:
            compute(partner, month)
    else:
        return stored
    computed = _stored(partner.pk, month)
    assert computed is not None  # `compute` has just stored it
    return computed


def _row(stored: dict[str, Any]) -> dict[str, Any]:
    return {
        "city_partner_id": stored["city_partner_id"],
        "name": stored["name"],
        "city_code": stored["city_code"],
        "month": stored["month"],
        "computed_at": stored["computed_at"],
        "figures": stored["figures"],
    }


def _check_month(month: str, latest: str) -> None:
    if month > latest:
        raise FutureMonth(errors={"month": ["Not started yet."]})


def scorecard(caller: Caller, partner_id: str, month: str | None) -> dict[str, Any]:
    """One partner's scorecard of `month` (default the current one, or the contract's last
    once it ended): its leaders, admins."""
    return scorecard_of(services.partner_for(caller, partner_id), month)


def scorecard_of(partner: CityPartner, month: str | None) -> dict[str, Any]:
    """The scorecard of a partner the caller was found to see (`services.partner_for`,
    `services.my_partners`)."""
    this_month = current_month(partner.city_code)
    month = _contract_month(partner, month, this_month)
    return _row(_fresh(partner, month, this_month))


def _contract_month(partner: CityPartner, month: str | None, this_month: str) -> str:
    """`month`, or by default the current one (the contract's last once it ended), refused
    unless it is a month of the contract that has begun: only those are computed and stored,
    so no one makes the server compute and keep one per month back to year 1."""
    month = month or min(this_month, partner.contract_end[:7])
    _check_month(month, this_month)
    first, last = partner.contract_start[:7], partner.contract_end[:7]
    if not first <= month <= last:
        raise MonthOutsideContract(errors={"month": [f"The contract runs from {first} to {last}."]})
    return month


def _months_before(month: str, count: int) -> list[str]:
    """`month` and the `count - 1` months before it, oldest first."""
    months = [month]
    while len(months) < count:
        first = date.fromisoformat(f"{months[0]}-01")
        months.insert(0, (first - timedelta(days=1)).strftime("%Y-%m"))
    return months


def history(caller: Caller, partner_id: str, month: str | None, count: int = 6) -> dict[str, Any]:
    """A partner's scorecard of `month` (default the current one) and of the months before
    it within the contract, oldest first, for charts: the stored snapshots in one read,
    the current month refreshed as `scorecard` does and a month never computed computed
    now (its leaders, admins)."""
    return history_of(services.partner_for(caller, partner_id), month, count)


def history_of(partner: CityPartner, month: str | None, count: int = 6) -> dict[str, Any]:
    """`history` of a partner the caller was found to see."""
    this_month = current_month(partner.city_code)
    month = _contract_month(partner, month, this_month)
    wanted = [
        m
        for m in _months_before(month, count)
        if m == month or partner.contract_start[:7] <= m <= partner.contract_end[:7]
    ]
    stored = {
        document["month"]: document
        for document in CityPartnerScorecard._get_collection().find(
            {"city_partner_id": partner.pk, "month": {"$in": wanted}}
        )
    }
    rows = [
        _row(_fresh(partner, m, this_month) if m not in stored or m >= this_month else stored[m])
        for m in wanted
    ]
    return {"partner": services.describe(partner), "month": month, "months": rows}


def ranked(caller: Caller, month: str, sort: str, order: str = "desc") -> dict[str, Any]:
    """Every partner under contract in `month`, ranked by the figure `sort` (`order`
    `desc`: highest first). Without a value (a rate with no events) a partner ranks last."""
    caller.require_admin()
    # The month has begun somewhere once it has in the zone furthest ahead (UTC+14).
    _check_month(month, (utcnow() + timedelta(hours=14)).strftime("%Y-%m"))
    first_day, last_day = f"{month}-01", f"{month}-31"
    partners = CityPartner.objects(contract_start__lte=last_day, contract_end__gte=first_day)
    rows = [_row(_fresh(partner, month, current_month(partner.city_code))) for partner in partners]
    present = [row for row in rows if row["figures"].get(sort) is not None]
    missing = [row for row in rows if row["figures"].get(sort) is None]
    present.sort(key=lambda row: row["figures"][sort], reverse=order == "desc")
    return {"month": month, "sort": sort, "order": order, "items": present + missing}


def compute_all(now: datetime | None = None) -> int:
    """The nightly job: every partner's current and previous month. Returns how many."""
    now = now or utcnow()
    count = 0
    for partner in CityPartner.objects:
        this_month = current_month(partner.city_code, now)
        first = date.fromisoformat(f"{this_month}-01")
        previous = (first - timedelta(days=1)).strftime("%Y-%m")
        for month in (previous, this_month):
            if partner.contract_start[:7] <= month <= partner.contract_end[:7]:
                compute(partner, month)
                count += 1
    log.info("scorecards_computed", count=count)
    return count


def inert(text: str) -> str:
    """Text a spreadsheet will not run as a formula (a name starting with `=`...)."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def as_csv(rows: list[dict[str, Any]]) -> str:
    """The scorecards as one CSV table: a row per partner and month, a column per figure
    (points issued by source as `points_issued:<source>`)."""
    sources = sorted(
        {source for row in rows for source in row["figures"].get("points_issued_by_source", {})}
    )
    columns = ["city_partner_id", "name", "city_code", "month", *FIGURES]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*columns, *(f"points_issued:{source}" for source in sources)])
    for row in rows:
        figures = row["figures"]
        by_source = figures.get("points_issued_by_source", {})
        writer.writerow(
            [
                row["city_partner_id"],
                inert(row["name"]),
                row["city_code"],
                row["month"],
                *("" if figures.get(name) is None else figures.get(name) for name in FIGURES),
                *(by_source.get(source, 0) for source in sources),
            ]
        )
    return out.getvalue()


def _stored(partner_id: Any, month: str) -> dict[str, Any] | None:
    return (
        CityPartnerScorecard.objects(city_partner_id=partner_id, month=month).as_pymongo().first()
    )
