"""A city's engagement figures (GET /cities/{code}/stats): the report that gathers every
installed domain's part for the city's leaders and admins, and the events' part."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from accounts.services import CIRCLE_LEADER, city_timezones
from app import domains
from app.auth import Caller
from app.clock import utcnow
from app.domains import ScorecardPart, ScorecardScope
from app.errors import NotFound, ValidationFailed
from events.feedback import overdue_before, summarize
from events.listings import as_utc
from events.models import (
    ACTIVE,
    ATTENDED,
    COMPLETED,
    NO_SHOW,
    OPEN,
    PUBLISHED,
    SEATED,
    Event,
    EventFeedback,
    FollowUp,
    Registration,
)

DEFAULT_STATS_PERIOD = timedelta(days=30)


def city_stats(
    caller: Caller, code: str, start: datetime | None, end: datetime | None
) -> dict[str, Any]:
    """Engagement figures of one city for [start, end), every installed domain's part: the
    city's leaders and admins only (404 for others, like every city-scoped thing). Every
    count is an aggregation or count on indexed fields."""
    caller.require(code, CIRCLE_LEADER)
    if code not in city_timezones({code}):
        raise NotFound(message="City not found.")
    end = as_utc(end or utcnow())
    start = as_utc(start or end - DEFAULT_STATS_PERIOD)
    if start >= end:
        raise ValidationFailed(errors={"from": ["Must be before `to`."]})
    return {"city_code": code, "from": start, "to": end, **domains.city_figures(code, start, end)}


def _event_figures(match: dict[str, Any]) -> dict[str, Any]:
    """Events held and scheduled among those `match` selects, their registrations and
    attendance: two aggregations."""
    events = {
        row["_id"]: row
        for row in Event._get_collection().aggregate(
            [
                {"$match": {**match, "status": {"$in": [PUBLISHED, COMPLETED]}}},
                {"$group": {"_id": "$status", "count": {"$sum": 1}, "ids": {"$push": "$_id"}}},
            ]
        )
    }
    event_ids = [event_id for row in events.values() for event_id in row["ids"]]
    by_status = {
        row["_id"]: row["count"]
        for row in Registration._get_collection().aggregate(
            [
                {"$match": {"event_id": {"$in": event_ids}, "status": {"$in": list(ACTIVE)}}},
                {"$group": {"_id": "$status", "count": {"$sum": 1}}},
            ]
        )
    }
    attended, no_show = by_status.get(ATTENDED, 0), by_status.get(NO_SHOW, 0)
    return {
        "events_held": events.get(COMPLETED, {}).get("count", 0),
        "events_scheduled": events.get(PUBLISHED, {}).get("count", 0),
        "registrations": sum(by_status.values()),
        "seated": sum(by_status.get(status, 0) for status in SEATED),
        "attended": attended,
        "no_show": no_show,
        "attendance_rate": _rate(attended, attended + no_show),
    }


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def city_figures(code: str, start: datetime, end: datetime) -> dict[str, Any]:
    """Events' part: events held and scheduled that start in [start, end), their
    registrations and attendance."""
    return _event_figures({"city_code": code, "starts_at": {"$gte": start, "$lt": end}})


def scorecard_figures(scope: ScorecardScope) -> ScorecardPart:
    """Events' part of a city partner's scorecard: the partner's events starting in the
    period (held, registrations, attendance and no-show rates), the feedback given and the
    follow-ups opened in it; active are the owners who attended or gave feedback in it."""
    period = {"$gte": scope.start, "$lt": scope.end}
    partner = {"city_partner_id": scope.city_partner_id}
    held = _event_figures({**partner, "starts_at": period})
    partner_events = Event._get_collection().distinct("_id", partner)
    attendees = Registration._get_collection().distinct(
        "user_id",
        {"event_id": {"$in": partner_events}, "status": ATTENDED, "attended_at": period},
    )
    answers = list(
        EventFeedback._get_collection().find(
            {**partner, "created_at": period}, {"user_id": 1, "score": 1, "recommend": 1}
        )
    )
    opened = {
        row["_id"]: row["count"]
        for row in FollowUp._get_collection().aggregate(
            [
                {"$match": {**partner, "created_at": period, "status": OPEN}},
                {
                    "$group": {
                        "_id": {"$lt": ["$created_at", overdue_before()]},
                        "count": {"$sum": 1},
                    }
                },
            ]
        )
    }
    seen = held["attended"] + held["no_show"]
    rated = summarize(answers)
    return ScorecardPart(
        {
            "events_held": held["events_held"],
            "registrations": held["registrations"],
            "attended": held["attended"],
            "no_shows": held["no_show"],
            "attendance_rate": held["attendance_rate"],
            "no_show_rate": _rate(held["no_show"], seen),
            "feedback_count": rated["count"],
            "average_rating": rated["average_score"],
            "nps": rated["nps"],
            "follow_ups_open": sum(opened.values()),
            "follow_ups_overdue": opened.get(True, 0),
        },
        set(attendees) | {answer["user_id"] for answer in answers},
    )
