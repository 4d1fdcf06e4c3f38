"""Reports, the review queue, moderation actions with their audit log, and owner stories.

Ambassadors moderate the content of their cities (a post's or comment's city is its club's,
or in a national club its author's; a user's is their home city); admins moderate all.
Outside their cities moderation answers 404, so content there does not reveal itself.

An action, its audit entry, the resolution of the open reports on its target, the
notices to reporters and author, and the domain event that moves points (`post.removed`,
`post.restored`...) are written in one transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import structlog
from bson import ObjectId
from flask import current_app
from mongoengine.errors import NotUniqueError
from pymongo.client_session import ClientSession

from accounts.services import AMBASSADOR, active_owner, suspend
from app.auth import Caller
from app.clock import utcnow
from app.db import object_id, transaction
from app.errors import Forbidden, NotFound
from app.outbox import record_event
from app.web import paginate
from community.errors import (
    ActionNotApplicable,
    InvalidTransition,
    OwnContent,
    PostNotFound,
    UnknownTarget,
)
from community.feed import feed_key
from community.models import (
    BAN,
    COMMENT,
    DELETED,
    HELD,
    HIDDEN,
    HIDE,
    MUTE,
    OPEN_REPORT,
    POST,
    REJECTED,
    REMOVE,
    REMOVED,
    RESTORE,
    UPHELD,
    USER,
    VISIBLE,
    WARN,
    Comment,
    Membership,
    ModerationAction,
    Post,
    Report,
    Standing,
)
from community.posts import count_comment, post_or_404, record_commented, record_published
from notifications.services import notify

log = structlog.get_logger()

CONTENT_ACTIONS = (HIDE, RESTORE, REMOVE)
# Without `duration_days`: a mute lasts a week, a ban ten years.
DEFAULT_DAYS = {MUTE: 7, BAN: 3650}
# Which statuses each content action moves from, and to.
TRANSITIONS = {
    HIDE: ((VISIBLE, HELD), HIDDEN),
    REMOVE: ((VISIBLE, HELD, HIDDEN), REMOVED),
    RESTORE: ((HELD, HIDDEN, REMOVED), VISIBLE),
}
_MODELS: dict[str, type[Post] | type[Comment]] = {POST: Post, COMMENT: Comment}


# --- targets ---------------------------------------------------------------------------


def _content(target_type: str, target_id: str, session: ClientSession | None = None) -> Any:
    oid = object_id(target_id)
    if oid is None:
        return None
    return _MODELS[target_type]._get_collection().find_one({"_id": oid}, session=session)


def _target(target_type: str, target_id: str) -> tuple[dict[str, Any], str | None, Any]:
    """The target document, its city and the account it belongs to (None: unknown)."""
    if target_type == USER:
        user = active_owner(target_id, ("city_code",))
        if user is None:
            raise UnknownTarget()
        return user, user.get("city_code"), user["_id"]
    content = _content(target_type, target_id)
    if content is None or content["status"] == DELETED:
        raise UnknownTarget()
    return content, content.get("city_code"), content.get("author_id")


def _ambassador_cities(caller: Caller) -> set[str] | None:
    """The cities the caller moderates (None: all); refused when none."""
    cities = caller.cities_for(AMBASSADOR)
    if cities is not None and not cities:
        raise Forbidden(message="Only ambassadors and admins moderate.")
    return cities


def _scope(caller: Caller, city: str | None) -> set[str] | None:
    """The cities a moderation list covers: `city` if the caller moderates it, else theirs."""
    cities = _ambassador_cities(caller)
    if city is None:
        return cities
    caller.require(city, AMBASSADOR)
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
    target, city, _ = _target(target_type, target_id)
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
    if target_type in _MODELS:
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
        collection = _MODELS[target_type]._get_collection()
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
    cities = _scope(caller, city)
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
    for target_type, model in _MODELS.items():
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
            if item["target_type"] in _MODELS
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


# --- actions ---------------------------------------------------------------------------


def _city_of_action(caller: Caller, target_type: str, target_id: str) -> tuple[Any, Any, Any]:
    target, city, account = _target(target_type, target_id)
    if not caller.acts_in(city, AMBASSADOR):
        raise NotFound()
    if account is not None and account == caller.user.pk:
        raise OwnContent()
    return target, city, account


def take_action(
    caller: Caller,
    target_type: str,
    target_id: str,
    action: str,
    reason: str,
    duration_days: int | None = None,
) -> ModerationAction:
    """Apply a moderation action (see the module docstring)."""
    try:
        target, city, account = _city_of_action(caller, target_type, target_id)
    except UnknownTarget:
        raise NotFound() from None
    if target_type == USER and action in (HIDE, REMOVE):
        raise ActionNotApplicable()
    if action in (WARN, MUTE, BAN) and account is None:
        raise ActionNotApplicable(message="The author's account no longer exists.")
    now = utcnow()
    days = duration_days or DEFAULT_DAYS.get(action)
    until = now + timedelta(days=days) if days and action in (MUTE, BAN) else None
    entry_id = ObjectId()

    def unit(session: ClientSession) -> ModerationAction:
        if target_type in _MODELS and action in CONTENT_ACTIONS:
            before, after = _act_on_content(session, target_type, target["_id"], action, now)
        else:
            before, after = _act_on_account(session, account, action, until)
        entry = ModerationAction(
            id=entry_id,
            actor_id=caller.user.pk,
            target_type=target_type,
            target_id=str(target["_id"]),
            city_code=city,
            action=action,
            reason=reason,
            duration_days=days if action in (MUTE, BAN) else None,
            before=before,
            after=after,
            created_at=now,
        )
        ModerationAction._get_collection().insert_one(entry.to_mongo(), session=session)
        _resolve_reports(session, caller, target_type, str(target["_id"]), action, reason, now)
        if account is not None:
            notify(
                session,
                account,
                "community",
                "moderation_action",
                {"action": action, "reason": reason},
                dedupe_key=f"{entry_id}:moderation_action",
            )
        return entry

    entry = transaction(unit)
    log.info(
        "moderation_action",
        action=action,
        target_type=target_type,
        target_id=target_id,
        by=caller.id,
        reason=reason,
    )
    return entry


def _act_on_content(
    session: ClientSession, target_type: str, content_id: ObjectId, action: str, now: datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    collection = _MODELS[target_type]._get_collection()
    content = collection.find_one({"_id": content_id}, session=session)
    sources, status = TRANSITIONS[action]
    if content is None or content["status"] not in sources:
        raise InvalidTransition()
    update: dict[str, Any] = {"status": status}
    if target_type == POST:
        update["feed_key"] = feed_key(content["club_id"], content_id, status)
    first_publication = status == VISIBLE and content.get("published_at") is None
    if first_publication:
        update["published_at"] = now
    if status == REMOVED:
        update["removals"] = content.get("removals", 0) + 1
    collection.update_one({"_id": content_id}, {"$set": update}, session=session)
    if target_type == COMMENT and (content["status"] == VISIBLE) != (status == VISIBLE):
        count_comment(session, content["post_id"], 1 if status == VISIBLE else -1)
    # Points follow content: published content earns; removed content loses what it
    # earned, and earns it back when restored.
    document = _MODELS[target_type]._from_son({**content, **update})
    if first_publication:
        if target_type == POST:
            record_published(session, document)
        else:
            post = Post._get_collection().find_one(
                {"_id": content["post_id"]}, {"author_id": 1}, session=session
            )
            record_commented(session, document, post.get("author_id") if post else None)
    elif content.get("published_at") is not None and REMOVED in (status, content["status"]):
        record_event(
            session,
            f"{target_type}.{'removed' if status == REMOVED else 'restored'}",
            subject_type=target_type,
            subject_id=content_id,
            city_code=content.get("city_code"),
            payload={
                "author_id": str(content["author_id"]) if content.get("author_id") else None,
                "round": update.get("removals", content.get("removals", 0)),
            },
        )
    return {"status": content["status"]}, {"status": status}


def _act_on_account(
    session: ClientSession, user_id: ObjectId, action: str, until: datetime | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    standings = Standing._get_collection()
    standing = standings.find_one({"user_id": user_id}, session=session) or {}
    if action == WARN:
        standings.update_one(
            {"user_id": user_id}, {"$inc": {"warnings": 1}}, upsert=True, session=session
        )
        warnings = standing.get("warnings", 0)
        return {"warnings": warnings}, {"warnings": warnings + 1}
    muted_before = standing.get("muted_until")
    mute_until = until if action == MUTE else (None if action == RESTORE else muted_before)
    if mute_until != muted_before:
        standings.update_one(
            {"user_id": user_id},
            {"$set": {"muted_until": mute_until}},
            upsert=True,
            session=session,
        )
        Membership._get_collection().update_many(
            {"user_id": user_id}, {"$set": {"muted_until": mute_until}}, session=session
        )
    before, after = {"muted_until": muted_before}, {"muted_until": mute_until}
    if action in (BAN, RESTORE):
        after["banned_until"] = until if action == BAN else None
        before["banned_until"] = suspend(user_id, after["banned_until"], session)
    return before, after


def _resolve_reports(
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


def audit_log(caller: Caller, city: str | None, cursor: str | None, limit: int) -> dict[str, Any]:
    cities = _scope(caller, city)
    query = ModerationAction.objects
    if cities is not None:
        query = query.filter(city_code__in=sorted(cities))
    return paginate(query, cursor, limit)


# --- owner stories ---------------------------------------------------------------------


def feature_post(caller: Caller, post_id: str) -> Post:
    """Pin a visible post in its club as an owner story; its author earns `post.featured`
    points once (the loyalty handler's once-key). Featuring it again changes nothing."""
    post = post_or_404(post_id)
    if post.status != VISIBLE or not caller.acts_in(post.city_code, AMBASSADOR):
        raise PostNotFound()
    if post.author_id == caller.user.pk:
        raise OwnContent()
    if post.featured:
        return post

    def unit(session: ClientSession) -> None:
        result = Post._get_collection().update_one(
            {"_id": post.pk, "featured": False},
            {"$set": {"featured": True, "featured_by": caller.user.pk, "featured_at": utcnow()}},
            session=session,
        )
        if result.modified_count:
            record_event(
                session,
                "post.featured",
                subject_type="post",
                subject_id=post.pk,
                actor_id=caller.user.pk,
                city_code=post.city_code,
                payload={"author_id": str(post.author_id) if post.author_id else None},
            )

    transaction(unit)
    log.info("post_featured", post_id=post_id, by=caller.id)
    post.reload()
    return post


# --- personal data ---------------------------------------------------------------------


def export_reports(user_id: Any) -> list[dict[str, Any]]:
    fields = ("target_type", "target_id", "reason", "status", "created_at", "resolved_at")
    return [
        {name: report[name] for name in fields}
        for report in Report.objects(reporter_id=object_id(user_id))
    ]
