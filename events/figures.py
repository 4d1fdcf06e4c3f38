"""A city's engagement figures (GET /cities/{code}/stats): the report that gathers every
installed domain's part for the city's leaders and admins, and the events' part."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from accounts.services import CIRCLE_LEADER, city_timezones
from app import domains
from app.auth import Caller
from app.clock import utcnow
from app.errors import NotFound, ValidationFailed
from events.models import (
    ACTIVE,
    ATTENDED,
    COMPLETED,
    NO_SHOW,
    PUBLISHED,
    SEATED,
    Event,
    Registration,
)
from events.services import as_utc

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


def city_figures(code: str, start: datetime, end: datetime) -> dict[str, Any]:
    """Events' part: events held and scheduled that start in [start, end), their
    registrations and attendance."""
    events = {
        row["_id"]: row
        for row in Event._get_collection().aggregate(
            [
                {
                    "$match": {
                        "city_code": code,
                        "status": {"$in": [PUBLISHED, COMPLETED]},
                        "starts_at": {"$gte": start, "$lt": end},
                    }
                },
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
        "attendance_rate": round(attended / (attended + no_show), 4)
        if attended + no_show
        else None,
    }
