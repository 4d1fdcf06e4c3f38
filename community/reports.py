"""Reports and the review queue. Any owner reports a post, comment or user they can see.
What a report weighs comes from who files it (`reporter_weight`: nothing from new, muted,
non-member or unverified accounts without visible content; more from verified owners whose
past reports were upheld, never enough alone to hide), and content whose open reports weigh
REPORT_HIDE_THRESHOLD from two or more distinct reporters is hidden at once, pending review
(its author still sees it). The ambassadors of the content's city (admins: every city) work
through the queue; the moderation action that settles a target resolves its reports
(`community.moderation`), deleted content included.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import structlog
from bson import ObjectId
from flask import current_app
from mongoengine.errors import NotUniqueError
from pymongo.client_session import ClientSession

from accounts.services import AMBASSADOR, CIRCLE_LEADER, active_owner, fingerprint_of
from app.auth import Caller
from app.clock import utcnow
from app.db import object_id, transaction
from app.errors import Forbidden
from community import words
from community.errors import SelfReport, UnknownTarget
from community.models import (
    ACTIVE,
    COMMENT,
    DELETED,
    HELD,
    HIDDEN,
    OPEN_REPORT,
    POST,
    REJECTED,
    UPHELD,
    USER,
    VISIBLE,
    Comment,
    Membership,
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
        owner = active_owner(target_id)
        if owner is None:
            raise UnknownTarget()
        return {"_id": owner.id, "city_code": owner.city_code}, owner.city_code, owner.id
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


def _reportable(caller: Caller, target_type: str, target_id: str) -> tuple[dict[str, Any], Any]:
    """The target and its city, if the caller may see it. Content or an account they may
    not see answers as an id that does not exist (422 `unknown_target`), so reports are no
    oracle; one's own content or account is 422 `self_report`."""
    target, city, account = find_target(target_type, target_id)
    if target_type in CONTENT_MODELS:
        own = account is not None and account == caller.user.pk
        seen = target["status"] == VISIBLE or (own and target["status"] in (HELD, HIDDEN))
        if not seen and not caller.acts_in(city, AMBASSADOR):
            raise UnknownTarget()
    elif account != caller.user.pk and not (
        caller.acts_in(city, CIRCLE_LEADER, AMBASSADOR) or _has_visible_content(account)
    ):
        # Owners meet other owners through what they post and comment.
        raise UnknownTarget()
    if account is not None and account == caller.user.pk:
        raise SelfReport()
    return target, city


def _has_visible_content(user_id: Any) -> bool:
    return any(
        model.objects(author_id=user_id, status=VISIBLE).only("id").as_pymongo().first()
        for model in CONTENT_MODELS.values()
    )


def reporter_weight(
    caller: Caller, target_type: str, target: dict[str, Any], now: datetime
) -> tuple[float, str | None]:
    """What the caller's report on `target` weighs, and why nothing when it weighs nothing
    (after Discourse's flag score: 1 + trust + accuracy). Nothing from an account in its
    first REPORTER_PROBATION_DAYS, a muted one, one outside the content's club, or an
    unverified one with no visible content: such reports are recorded and shown in the
    queue, and count in their reporter's standing once a person decides them. Otherwise 1,
    +1 for a verified owner, + up to REPORTER_ACCURACY_BONUS for the share of the
    reporter's decided reports upheld once there are REPORTER_MIN_DECIDED of them; never
    more than REPORT_MAX_WEIGHT, which is below the threshold that hides content."""
    config = current_app.config
    user = caller.user
    if user.created_at > now - timedelta(days=config["REPORTER_PROBATION_DAYS"]):
        return 0.0, "new_account"
    if user.muted(now):
        return 0.0, "muted"
    if target_type in CONTENT_MODELS:
        membership = (
            Membership.objects(club_id=target["club_id"], user_id=user.pk)
            .only("status")
            .as_pymongo()
            .first()
        )
        if membership is None or membership["status"] != ACTIVE:
            return 0.0, "not_member"
    if not user.verified_owner and not _has_visible_content(user.pk):
        return 0.0, "no_visible_content"
    weight = 2.0 if user.verified_owner else 1.0
    standing = Standing.objects(user_id=user.pk).as_pymongo().first() or {}
    decided = standing.get("reports_resolved", 0)
    if decided and decided >= config["REPORTER_MIN_DECIDED"]:
        weight += config["REPORTER_ACCURACY_BONUS"] * standing.get("reports_upheld", 0) / decided
    return round(min(weight, config["REPORT_MAX_WEIGHT"]), 3), None


def file_report(
    caller: Caller, target_type: str, target_id: str, reason: str
) -> tuple[Report, bool]:
    """Report a post, comment or user. Returns the report and whether it is new: a repeat
    while the caller's report on the target is open returns that report."""
    target, city = _reportable(caller, target_type, target_id)
    key = f"{caller.id}:{target_type}:{target['_id']}"
    existing = Report.objects(open_key=key).first()
    if existing is not None:
        return existing, False
    now = utcnow()
    weight, weightless = reporter_weight(caller, target_type, target, now)
    report = Report(
        reporter_id=caller.user.pk,
        target_type=target_type,
        target_id=str(target["_id"]),
        city_code=city,
        club_id=target.get("club_id"),
        reason=reason,
        reason_held=words.contains_listed_word(reason),
        weight=weight,
        weight_reason=weightless,
        client_fingerprint=fingerprint_of(caller.user, now),
        open_key=key,
        created_at=now,
    )
    try:
        report.save(force_insert=True)
    except NotUniqueError:  # a concurrent repeat won
        return Report.objects.get(open_key=key), False
    if target_type in CONTENT_MODELS and weight:
        _hide_when_reported_enough(target_type, target["_id"])
    log.info(
        "report_filed",
        report_id=str(report.pk),
        target_type=target_type,
        by=caller.id,
        weight=weight,
        weightless=weightless,
    )
    return report, True


def _hide_when_reported_enough(target_type: str, content_id: ObjectId) -> None:
    """Hide visible content at once when its open reports weigh REPORT_HIDE_THRESHOLD from
    at least two distinct established reporters. Accounts signed up from one client (the
    same fingerprint) are one reporter: their heaviest report counts, once."""
    voices: dict[str, float] = {}
    for open_report in Report._get_collection().find(
        {"target_type": target_type, "target_id": str(content_id), "status": OPEN_REPORT},
        {"reporter_id": 1, "weight": 1, "client_fingerprint": 1},
    ):
        voice = open_report.get("client_fingerprint") or str(open_report["reporter_id"])
        voices[voice] = max(voices.get(voice, 0.0), open_report["weight"])
    weights = [weight for weight in voices.values() if weight > 0]
    if len(weights) < 2 or sum(weights) < current_app.config["REPORT_HIDE_THRESHOLD"]:
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


def discount_reports(session: ClientSession, user_id: ObjectId, why: str) -> list[dict[str, Any]]:
    """A muted or banned account's open reports weigh nothing from now on. Returns what
    each weighed, so that undoing the mute or ban gives it back."""
    reports = Report._get_collection()
    weighed = list(
        reports.find(
            {"reporter_id": user_id, "status": OPEN_REPORT, "weight": {"$gt": 0}},
            {"weight": 1, "weight_reason": 1},
            session=session,
        )
    )
    if weighed:
        reports.update_many(
            {"_id": {"$in": [report["_id"] for report in weighed]}},
            {"$set": {"weight": 0.0, "weight_reason": why}},
            session=session,
        )
    return [
        {
            "id": report["_id"],
            "weight": report["weight"],
            "weight_reason": report.get("weight_reason"),
        }
        for report in weighed
    ]


# --- resolution ------------------------------------------------------------------------


# How a reporter reads the outcome of their report, in their language.
OUTCOME_LABELS = {
    UPHELD: {"zh-CN": "成立", "en": "upheld"},
    REJECTED: {"zh-CN": "不成立", "en": "rejected"},
}


def resolve_reports(
    session: ClientSession,
    caller: Caller,
    target_type: str,
    target_id: str,
    upheld: bool,
    reason: str,
    now: datetime,
    action_id: ObjectId,
) -> list[dict[str, Any]]:
    """Close the open reports on the target, upheld or rejected, by the moderation action
    `action_id`. Each reporter learns the outcome with the reason, and it counts in the
    weight of their next reports. Returns what undoing the action needs to open each
    again (`reopen_reports`)."""
    outcome = UPHELD if upheld else REJECTED
    reports = Report._get_collection()
    resolved = []
    for report in reports.find(
        {"target_type": target_type, "target_id": target_id, "status": OPEN_REPORT},
        session=session,
    ):
        reports.update_one(
            {"_id": report["_id"], "status": OPEN_REPORT},
            {
                "$set": {
                    "status": outcome,
                    "resolved_at": now,
                    "resolved_by": caller.user.pk,
                    "resolved_action_id": action_id,
                },
                "$unset": {"open_key": "", "client_fingerprint": ""},
            },
            session=session,
        )
        _count_decided(session, report["reporter_id"], upheld, 1)
        notify(
            session,
            report["reporter_id"],
            "community",
            "report_resolved",
            {"outcome": OUTCOME_LABELS[outcome], "reason": reason},
            dedupe_key=f"{report['_id']}:{action_id}:report_resolved",
        )
        resolved.append(
            {
                "id": report["_id"],
                "reporter_id": report["reporter_id"],
                "upheld": upheld,
                "open_key": report.get("open_key"),
                "client_fingerprint": report.get("client_fingerprint"),
            }
        )
    return resolved


def _count_decided(session: ClientSession, reporter_id: ObjectId, upheld: bool, by: int) -> None:
    Standing._get_collection().update_one(
        {"user_id": reporter_id},
        {"$inc": {"reports_resolved": by, "reports_upheld": by if upheld else 0}},
        upsert=True,
        session=session,
    )


def reopen_reports(
    session: ClientSession, target_type: str, target_id: str, resolved: list[dict[str, Any]]
) -> int:
    """Open again the reports an undone action resolved (`resolve_reports` said how), and
    take their outcome out of their reporters' standing. A reporter who filed a new report
    on the target since keeps that one open instead. Returns how many were opened."""
    reports = Report._get_collection()
    open_now = {
        report["reporter_id"]
        for report in reports.find(
            {"target_type": target_type, "target_id": target_id, "status": OPEN_REPORT},
            {"reporter_id": 1},
            session=session,
        )
    }
    opened = 0
    for report in resolved:
        if report["reporter_id"] in open_now:
            continue
        key = report.get("open_key") or f"{report['reporter_id']}:{target_type}:{target_id}"
        restored = {"status": OPEN_REPORT, "open_key": key}
        if report.get("client_fingerprint"):
            restored["client_fingerprint"] = report["client_fingerprint"]
        changed = reports.update_one(
            {"_id": report["id"], "status": {"$ne": OPEN_REPORT}},
            {
                "$set": restored,
                "$unset": {"resolved_at": "", "resolved_by": "", "resolved_action_id": ""},
            },
            session=session,
        )
        if changed.modified_count:
            _count_decided(session, report["reporter_id"], report["upheld"], -1)
            opened += 1
    return opened


def restore_weights(session: ClientSession, discounted: list[dict[str, Any]]) -> None:
    """Give reports `discount_reports` zeroed their weight back, those still open."""
    reports = Report._get_collection()
    for report in discounted:
        reports.update_one(
            {"_id": report["id"], "status": OPEN_REPORT, "weight": 0.0},
            {"$set": {"weight": report["weight"], "weight_reason": report["weight_reason"]}},
            session=session,
        )


# --- personal data ---------------------------------------------------------------------


def export_reports(user_id: Any) -> list[dict[str, Any]]:
    fields = ("target_type", "target_id", "reason", "status", "created_at", "resolved_at")
    return [
        {name: report[name] for name in fields}
        for report in Report.objects(reporter_id=object_id(user_id))
    ]
