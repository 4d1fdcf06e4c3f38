"""Earning rules and awards: which domain event earns how many points, within which caps.

Rules an admin never changed are read from `DEFAULT_RULES`; a rule is stored once an admin
changes it. `award` is what the loyalty handlers call, inside the backbone's transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from bson import ObjectId
from pymongo.client_session import ClientSession

from accounts.services import active_owner, city_timezone
from app.auth import Caller
from app.clock import utcnow
from app.errors import NotFound, ValidationFailed
from app.outbox import DomainEvent
from loyalty import ledger
from loyalty.models import EARN, EarningRule, LedgerEntry
from notifications.services import notify

log = structlog.get_logger()


CAP_PERIODS = ("day", "week", "month")

# Circle leaders set each event's points, so an admin bounds them (the rule's `max_points`),
# or a leader could mint points for friends at will; this bounds what an admin may allow.
EVENT_POINTS_CEILING = 10_000


# What an owner reads in a points notice, in their language; a rule an admin adds later is
# described by its (single-language) description instead.
REASON_LABELS: dict[str, dict[str, str]] = {
    "vehicle.verified": {
        "zh-CN": "首台车辆认证欢迎积分",
        "en": "welcome points for your first verified vehicle",
    },
    "referral.referrer": {
        "zh-CN": "您邀请的好友成为了车主",
        "en": "the friend you invited became an owner",
    },
    "referral.referee": {"zh-CN": "好友邀请欢迎奖励", "en": "referral welcome bonus"},
    "event.attended": {"zh-CN": "参加活动", "en": "you attended an event"},
    "event.feedback": {"zh-CN": "活动评价", "en": "you rated an event"},
    "post.published": {"zh-CN": "发布帖子", "en": "you published a post"},
    "comment.created": {"zh-CN": "发表评论", "en": "you commented on a post"},
    "post.featured": {"zh-CN": "您的帖子被选为车主故事", "en": "your post became an owner story"},
}

DEFAULT_RULES: dict[str, dict[str, Any]] = {
    "vehicle.verified": {
        "event_type": "vehicle.verified",
        "points": 500,
        "caps": {},
        "multipliable": False,
        "description": "Welcome points: first verified vehicle",
    },
    "referral.referrer": {
        "event_type": "referral.completed",
        "points": 1000,
        "caps": {},
        "multipliable": False,
        "description": "Referral: the friend you invited became an owner",
    },
    "referral.referee": {
        "event_type": "referral.completed",
        "points": 300,
        "caps": {},
        "multipliable": False,
        "description": "Referral: welcome bonus",
    },
    "event.attended": {
        "event_type": "event.attended",
        "points": 100,
        "caps": {},
        "multipliable": True,
        "description": "Attended an event",
        "max_points": 1000,
    },
    "event.feedback": {
        "event_type": "event.feedback_given",
        "points": 20,
        "caps": {},
        "multipliable": False,
        "description": "Rated an event attended",
    },
    "post.published": {
        "event_type": "post.published",
        "points": 5,
        "caps": {"day": 3},
        "multipliable": True,
        "description": "Published a post",
    },
    "comment.created": {
        "event_type": "comment.created",
        "points": 1,
        "caps": {"day": 10},
        "multipliable": True,
        "description": "Commented on a post",
    },
    "post.featured": {
        "event_type": "post.featured",
        "points": 50,
        "caps": {},
        "multipliable": True,
        "description": "A post featured as an owner story",
    },
}


def period_starts(now: datetime, timezone: str) -> dict[str, datetime]:
    """Start of the owner's current day, week (Monday) and month, in UTC."""
    local = now.astimezone(ZoneInfo(timezone))
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return {
        "day": day.astimezone(UTC),
        "week": (day - timedelta(days=day.weekday())).astimezone(UTC),
        "month": day.replace(day=1).astimezone(UTC),
    }


def rule_document(code: str, session: ClientSession | None = None) -> dict[str, Any] | None:
    """The rule as configured, or its default when an admin never changed it."""
    stored = EarningRule._get_collection().find_one({"code": code}, session=session)
    if stored is not None:
        return stored
    default = DEFAULT_RULES.get(code)
    return {"code": code, "active": True, **default} if default else None


def max_event_points() -> int:
    """The most points one event may award each attendee, as admins set it."""
    rule = rule_document("event.attended") or {}
    # A rule stored before rules had a maximum takes the default.
    maximum = rule.get("max_points")
    return DEFAULT_RULES["event.attended"]["max_points"] if maximum is None else maximum


def ensure_default_rules() -> None:
    """Store the defaults of docs/product.md (the demo world does, so admins see them stored);
    rules an admin changed are left alone."""
    for code in DEFAULT_RULES:
        _store_default(code)


def _store_default(code: str) -> None:
    default = DEFAULT_RULES[code]
    EarningRule._get_collection().update_one(
        {"code": code},
        {"$setOnInsert": {"code": code, "active": True, **default, "updated_at": utcnow()}},
        upsert=True,
    )


def list_rules(admin: Caller) -> list[EarningRule]:
    """Every rule, as an admin configured it or as its default; reading stores nothing."""
    admin.require_admin()
    stored = {rule.code: rule for rule in EarningRule.objects}
    defaults = [
        EarningRule(code=code, active=True, **default)
        for code, default in DEFAULT_RULES.items()
        if code not in stored
    ]
    return sorted([*stored.values(), *defaults], key=lambda rule: rule.code)


def update_rule(admin: Caller, code: str, changes: dict[str, Any]) -> EarningRule:
    """Change a rule; its first change stores it, from its default."""
    admin.require_admin()
    if "max_points" in changes and code != "event.attended":
        raise ValidationFailed(
            errors={"max_points": ["Only the event.attended rule has a maximum."]}
        )
    if code in DEFAULT_RULES:
        _store_default(code)
    rule = EarningRule.objects(code=code).first()
    if rule is None:
        raise NotFound(message=f"No earning rule {code!r}.")
    for name, value in changes.items():
        setattr(rule, name, value)
    rule.updated_at = utcnow()
    rule.updated_by = admin.user.pk
    rule.save()
    log.info("earning_rule_updated", code=code, changes=changes, by=admin.id)
    return rule


def _capped(
    session: ClientSession, account_id: ObjectId, rule: dict[str, Any], timezone: str, now: datetime
) -> bool:
    caps = {
        period: limit for period, limit in (rule.get("caps") or {}).items() if limit is not None
    }
    if not caps:
        return False
    starts = period_starts(now, timezone)
    entries = LedgerEntry._get_collection()
    return any(
        entries.count_documents(
            {
                "account_id": account_id,
                "source.rule": rule["code"],
                "kind": EARN,
                "created_at": {"$gte": starts[period]},
            },
            session=session,
        )
        >= limit
        for period, limit in caps.items()
    )


def award(
    session: ClientSession,
    user_id: Any,
    rule_code: str,
    *,
    key: str,
    source: dict[str, Any],
    points: int | None = None,
    once_key: str | None = None,
    city_code: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any] | None:
    """Apply an earning rule to one owner inside the caller's transaction.

    Returns the entry (the earlier one when `key` or `once_key` was already used), or None
    when the rule is inactive, the owner reached a cap or no longer exists.
    """
    now = now or utcnow()
    if (existing := ledger.existing_entry(session, key, once_key)) is not None:
        return existing
    rule = rule_document(rule_code, session)
    if rule is None or not rule["active"]:
        return None
    base = rule["points"] if points is None else points
    owner = active_owner(user_id, session=session)
    if base <= 0 or owner is None:
        return None
    timezone = city_timezone(owner.city_code, session)
    if _capped(session, owner.id, rule, timezone, now):
        log.info("points_capped", user_id=str(owner.id), rule=rule_code)
        return None
    entry = ledger.earn(
        session,
        ledger.Movement(
            owner.id,
            EARN,
            base,
            key,
            rule.get("description") or rule_code,
            {"rule": rule_code, **source},
            city_code or owner.city_code,
            once_key,
        ),
        rule["multipliable"],
        now,
    )
    notify(
        session,
        owner.id,
        "points",
        "points_earned",
        {"points": entry["amount"], "reason": REASON_LABELS.get(rule_code, entry["reason"])},
        dedupe_key=f"{entry['_id']}:points_earned",
    )
    return entry


def award_for_event(
    session: ClientSession,
    event: DomainEvent,
    rule_code: str,
    user_id: Any,
    *,
    points: int | None = None,
    once_key: str | None = None,
) -> dict[str, Any] | None:
    """`award` for a domain event: its id and the rule make the idempotency key."""
    return award(
        session,
        user_id,
        rule_code,
        key=f"{event.id}:{rule_code}",
        source={"type": event.subject_type, "id": event.subject_id, "event_id": event.id},
        points=points,
        once_key=once_key,
        city_code=event.city_code,
    )
