"""Reports and the review queue. Any owner reports a post, comment or user; a report
weighs more from a verified owner and from one whose past reports were upheld, and content
whose open reports weigh REPORT_HIDE_THRESHOLD is hidden at once, pending review. The
ambassadors of the content's city (admins: every city) work through the queue; the
moderation action that settles a target resolves its reports (`community.moderation`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from bson import ObjectId
from flask import current_app
from mongoengine.errors import NotUniqueError
from pymongo.client_session import ClientSession

from accounts.services import AMBASSADOR, active_owner
from app.auth import Caller
from app.db import object_id, transaction
from app.errors import Forbidden
from community.errors import UnknownTarget
from community.models import (
    COMMENT,
    DELETED,
    HELD,
    HIDDEN,
    OPEN_REPORT,
    POST,
    REJECTED,
    RESTORE,
    UPHELD,
    USER,
    VISIBLE,
    Comment,
    Post,
    Report,
    Standing,
)
from community.posts import count_comment
from notifications.services import notify

log = structlog.get_logger()

# The content a report or a moderation action may target, by target type (and `user`).
CONTENT_MODELS: dict[str, type[Post] | type[Comment]] = {POST: Post, COMMENT: Comment}


# --- targets and scopes ----------------------------------------------------------------


def _content(target_type: str, target_id: str, session: ClientSession | None = None) -> Any:
    oid = object_id(target_id)
    if oid is None:
        return None
    return CONTENT_MODELS[target_type]._get_collection().find_one({"_id": oid}, session=session)


def find_target(
    target_type: str, target_id: str, deleted: bool = False
) -> tuple[dict[str, Any], str | None, Any]:
    """The target document, its city and the account it belongs to (UnknownTarget: none;
    content its author deleted only with `deleted`, for moderation)."""
    if target_type == USER:
        user = active_owner(target_id, ("city_code",))
        if user is None:
            raise UnknownTarget()
        return user, user.get("city_code"), user["_id"]
    content = _content(target_type, target_id)
    if content is None or (content["status"] == DELETED and not deleted):
        raise UnknownTarget()
    return content, content.get("city_code"), content.get("author_id")


def moderated_cities(caller: Caller, city: str | None) -> set[str] | None:
    """The cities a moderation list (the queue, the audit log) covers: `city` if the caller
    moderates it, else all theirs (None: every city). Refused (403) for someone who
    moderates no city, or not `city`: which cities exist is no secret."""
    cities = caller.cities_for(AMBASSADOR)
    if cities is not None and not cities:
        raise Forbidden(message="Only ambassadors and admins moderate.")
    if city is None:
        return cities
    if not caller.acts_in(city, AMBASSADOR):
        raise Forbidden(message="You do not moderate this city.")
    return {city}


# --- reports ---------------------------------------------------------------------------


def _weight(caller: Caller) -> float:
    """1, +1 for a verified owner, + up to 1 for the share of their past reports upheld."""
    weight = 1.0 + (1.0 if caller.user.verified_owner else 0.0)
    standing = Standing._get_collection().find_one({"user_id": caller.user.pk})
    if standing and standing.get("reports_resolved"):
        weight += standing.get("reports_upheld", 0) / standing["reports_resolved"]
    return round(weight, 3)


def file_report(
    caller: Caller, target_type: str, target_id: str, reason: str
) -> tuple[Report, bool]:
    """Report a post, comment or user. Returns the report and whether it is new: a repeat
    while the caller's report on the target is open returns that report."""
    target, city, _ = find_target(target_type, target_id)
    key = f"{caller.id}:{target_type}:{target['_id']}"
    existing = Report.objects(open_key=key).first()
    if existing is not None:
        return existing, False
    report = Report(
        reporter_id=caller.user.pk,
        target_type=target_type,
        target_id=str(target["_id"]),
        city_code=city,
        reason=reason,
        weight=_weight(caller),
        open_key=key,
    )
    try:
        report.save(force_insert=True)
    except NotUniqueError:  # a concurrent repeat won
        return Report.objects.get(open_key=key), False
    if target_type in CONTENT_MODELS:
        _hide_when_reported_enough(target_type, target["_id"])
    log.info("report_filed", report_id=str(report.pk), target_type=target_type, by=caller.id)
    return report, True


def _open_weight(target_type: str, target_id: str) -> float:
    rows = Report._get_collection().aggregate(
        [
            {"$match": {"target_type": target_type, "target_id": target_id, "status": OPEN_REPORT}},
            {"$group": {"_id": None, "weight": {"$sum": "$weight"}}},
        ]
    )
    return next((row["weight"] for row in rows), 0.0)


def _hide_when_reported_enough(target_type: str, content_id: ObjectId) -> None:
    """Hide visible content at once once its open reports weigh the threshold."""
    if _open_weight(target_type, str(content_id)) < current_app.config["REPORT_HIDE_THRESHOLD"]:
        return

    def unit(session: ClientSession) -> None:
        collection = CONTENT_MODELS[target_type]._get_collection()
        hidden = collection.update_one(
            {"_id": content_id, "status": VISIBLE},
            {"$set": {"status": HIDDEN, "feed_key": None}},
            session=session,
        )
        if hidden.modified_count and target_type == COMMENT:
            comment = collection.find_one({"_id": content_id}, {"post_id": 1}, session=session)
            count_comment(session, comment["post_id"], -1)

    transaction(unit)
    log.info("content_hidden_by_reports", target_type=target_type, target_id=str(content_id))


# --- the review queue ------------------------------------------------------------------

QUEUE_SIZE = 100


def review_queue(caller: Caller, city: str | None) -> dict[str, Any]:
    """Open reports grouped by target, heaviest first then oldest; then held content."""
    cities = moderated_cities(caller, city)
    match: dict[str, Any] = {"status": OPEN_REPORT}
    if cities is not None:
        match["city_code"] = {"$in": sorted(cities)}
    groups = list(
        Report._get_collection().aggregate(
            [
                {"$match": match},
                {
                    "$group": {
                        "_id": {"type": "$target_type", "id": "$target_id"},
                        "city_code": {"$first": "$city_code"},
                        "weight": {"$sum": "$weight"},
                        "reports": {"$sum": 1},
                        "reasons": {"$push": "$reason"},
                        "first_reported_at": {"$min": "$created_at"},
                    }
                },
                {"$sort": {"weight": -1, "first_reported_at": 1}},
                {"$limit": QUEUE_SIZE},
            ]
        )
    )
    items = [
        {
            "target_type": group["_id"]["type"],
            "target_id": group["_id"]["id"],
            **{k: group[k] for k in ("city_code", "weight", "reports", "first_reported_at")},
            "reasons": group["reasons"][:10],
        }
        for group in groups
    ]
    queued = {(item["target_type"], item["target_id"]) for item in items}
    for target_type, model in CONTENT_MODELS.items():
        held = model.objects(status=HELD)
        if cities is not None:
            held = held.filter(city_code__in=sorted(cities))
        for content in held.order_by("id").limit(QUEUE_SIZE):
            if (target_type, str(content.pk)) not in queued:
                items.append(
                    {
                        "target_type": target_type,
                        "target_id": str(content.pk),
                        "city_code": content.city_code,
                        "weight": 0.0,
                        "reports": 0,
                        "reasons": ["sensitive_word"],
                        "first_reported_at": content.created_at,
                    }
                )
    for item in items:
        content = (
            _content(item["target_type"], item["target_id"])
            if item["target_type"] in CONTENT_MODELS
            else None
        )
        item["status"] = content["status"] if content else None
        item["content"] = (
            {
                "body": content["body"],
                "author_id": str(content["author_id"]) if content.get("author_id") else None,
            }
            if content
            else None
        )
    return {"items": items}


# --- resolution ------------------------------------------------------------------------


def resolve_reports(
    session: ClientSession,
    caller: Caller,
    target_type: str,
    target_id: str,
    action: str,
    reason: str,
    now: datetime,
) -> None:
    """Close the open reports on the target: upheld unless the action restored it. Each
    reporter learns the outcome, and it counts in the weight of their next reports."""
    outcome = REJECTED if action == RESTORE else UPHELD
    reports = Report._get_collection()
    for report in reports.find(
        {"target_type": target_type, "target_id": target_id, "status": OPEN_REPORT},
        session=session,
    ):
        reports.update_one(
            {"_id": report["_id"], "status": OPEN_REPORT},
            {
                "$set": {"status": outcome, "resolved_at": now, "resolved_by": caller.user.pk},
                "$unset": {"open_key": ""},
            },
            session=session,
        )
        Standing._get_collection().update_one(
            {"user_id": report["reporter_id"]},
            {"$inc": {"reports_resolved": 1, "reports_upheld": 1 if outcome == UPHELD else 0}},
            upsert=True,
            session=session,
        )
        notify(
            session,
            report["reporter_id"],
            "community",
            "report_resolved",
            {"outcome": outcome, "reason": reason},
            dedupe_key=f"{report['_id']}:report_resolved",
        )


# --- personal data ---------------------------------------------------------------------


def export_reports(user_id: Any) -> list[dict[str, Any]]:
    fields = ("target_type", "target_id", "reason", "status", "created_at", "resolved_at")
    return [
        {name: report[name] for name in fields}
        for report in Report.objects(reporter_id=object_id(user_id))
    ]
