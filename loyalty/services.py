"""Points: the ledger and everything that moves points.

Every movement is one immutable `LedgerEntry`, written in the same transaction as the lots it
opens or consumes and the cached totals of the owner's `PointsAccount`; nothing else writes a
balance. All writes of one owner touch that account document, so concurrent movements of one
owner conflict and `with_transaction` retries them one after another: a debit sees every
earlier credit, and the balance cannot go below zero.

Functions take `now` so that expiry, caps and tiers can be tested with a clock of their own.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from bson import ObjectId
from mongoengine.queryset import QuerySet
from pymongo.client_session import ClientSession

from accounts.models import CIRCLE_LEADER, User
from accounts.services import active_owner, city_timezone, find_active_owner
from app.auth import Caller
from app.clock import utcnow
from app.db import get_or_404, object_id, transaction, update_and_read
from app.errors import Conflict, NotFound, Unauthorized, ValidationFailed
from app.outbox import DomainEvent, record_event
from app.privacy import exporter
from loyalty.models import (
    ADJUST,
    CANCELLED,
    EARN,
    EXPIRE,
    FULFILLED,
    PENDING,
    REDEEM,
    REFUND,
    REVERSE,
    RUN_DONE,
    RUN_FAILED,
    RUN_QUEUED,
    RUN_RUNNING,
    EarningRule,
    LedgerEntry,
    Lot,
    Partner,
    PartnerCredit,
    PointsAccount,
    ReconciliationRun,
    Redemption,
    Reward,
)
from notifications.services import notify

log = structlog.get_logger()

LOT_LIFETIME_MONTHS = 24
TIER_WINDOW = timedelta(days=365)
EXPIRY_WARNING = timedelta(days=30)
EXPIRING_WINDOW = timedelta(days=90)
PARTNER_CLOCK_SKEW = timedelta(minutes=5)
CAP_PERIODS = ("day", "week", "month")


@dataclass(frozen=True)
class Tier:
    name: str
    threshold: int
    # Tenths, so that points stay integers: 11 means x1.1, rounded down.
    multiplier: int


TIERS = (
    Tier("member", 0, 10),
    Tier("silver", 2_000, 11),
    Tier("gold", 8_000, 12),
    Tier("platinum", 20_000, 15),
)
TIER_NAMES = tuple(tier.name for tier in TIERS)

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
    "post.published": {"zh-CN": "发布帖子", "en": "you published a post"},
    "comment.created": {"zh-CN": "发表评论", "en": "you commented on a post"},
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
}


class LedgerCorrupt(RuntimeError):
    """The cached balance covers a debit its lots do not: a bug, never a client error."""


# --- tiers and clock helpers -----------------------------------------------------------


def tier_for(earned: int) -> Tier:
    return [tier for tier in TIERS if earned >= tier.threshold][-1]


def tier_rank(name: str) -> int:
    return TIER_NAMES.index(name)


def add_months(moment: datetime, months: int) -> datetime:
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def period_starts(now: datetime, timezone: str) -> dict[str, datetime]:
    """Start of the owner's current day, week (Monday) and month, in UTC."""
    local = now.astimezone(ZoneInfo(timezone))
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return {
        "day": day.astimezone(UTC),
        "week": (day - timedelta(days=day.weekday())).astimezone(UTC),
        "month": day.replace(day=1).astimezone(UTC),
    }


def _oid(value: Any) -> ObjectId:
    found = object_id(value)
    if found is None:
        raise NotFound()
    return found


# --- the ledger core -------------------------------------------------------------------


@dataclass(frozen=True)
class Movement:
    account_id: ObjectId
    kind: str
    amount: int
    key: str
    reason: str
    source: dict[str, Any]
    city_code: str | None = None
    once_key: str | None = None
    actor_id: ObjectId | None = None
    # Set for earns and reversals of earns: the owner's tier once this entry is counted.
    tier: str | None = None
    # An expiry names the lot that lapses; a refund the lots the debit took points from.
    lot_id: ObjectId | None = None
    restore: list[dict[str, Any]] = field(default_factory=list)
    # A reversal takes back what is left of the reversed credit's own lot before any other.
    first_lot: ObjectId | None = None
    # See `LedgerEntry.earned_at` and `LedgerEntry.request_key`.
    earned_at: datetime | None = None
    request_key: str | None = None


def _counts_as_earned(kind: str, source: dict[str, Any]) -> bool:
    """Whether an entry moves the points earned (lifetime and tier figure): an earn adds to
    them, the reversal of an earn takes that earn back out. `EARNED_POINTS` says the same in
    the database's terms, `_rolling_earned` for the tier window."""
    return kind == EARN or (kind == REVERSE and source.get("kind") == EARN)


# `_counts_as_earned` as an aggregation expression: an entry's part in the points earned.
EARNED_POINTS = {
    "$cond": [
        {
            "$or": [
                {"$eq": ["$kind", EARN]},
                {"$and": [{"$eq": ["$kind", REVERSE]}, {"$eq": ["$source.kind", EARN]}]},
            ]
        },
        "$amount",
        0,
    ]
}


def _existing_entry(
    session: ClientSession | None, key: str, once_key: str | None = None
) -> dict[str, Any] | None:
    entries = LedgerEntry._get_collection()
    found = entries.find_one({"idempotency_key": key}, session=session)
    if found is None and once_key:
        found = entries.find_one({"once_key": once_key}, session=session)
    return found


def _consume(session: ClientSession, movement: Movement, points: int) -> list[dict[str, Any]]:
    lots = Lot._get_collection()
    if movement.lot_id is not None:
        lots.update_one(
            {"_id": movement.lot_id},
            {"$inc": {"remaining": -points, "expired": points}},
            session=session,
        )
        return [{"lot_id": movement.lot_id, "points": points}]
    taken: list[dict[str, Any]] = []
    left = points
    for lot in _spending_order(session, movement):
        take = min(left, lot["remaining"])
        lots.update_one({"_id": lot["_id"]}, {"$inc": {"remaining": -take}}, session=session)
        taken.append({"lot_id": lot["_id"], "points": take})
        left -= take
        if not left:
            return taken
    raise LedgerCorrupt(f"account {movement.account_id}: lots short by {left} points")


def _spending_order(session: ClientSession, movement: Movement) -> Iterator[dict[str, Any]]:
    """The open lots a debit takes points from: `movement.first_lot` if given, then the
    oldest expiry first."""
    lots = Lot._get_collection()
    query = {"account_id": movement.account_id, "remaining": {"$gt": 0}}
    if movement.first_lot is not None:
        own = lots.find_one({**query, "_id": movement.first_lot}, {"remaining": 1}, session=session)
        if own is not None:
            yield own
    for lot in lots.find(query, {"remaining": 1}, session=session).sort(
        [("expires_at", 1), ("_id", 1)]
    ):
        if lot["_id"] != movement.first_lot:
            yield lot


def _write(session: ClientSession, movement: Movement, now: datetime) -> dict[str, Any]:
    """Write one entry with its lots and the account's cached totals; return the entry."""
    accounts = PointsAccount._get_collection()
    entry: dict[str, Any] = {
        "_id": ObjectId(),
        "account_id": movement.account_id,
        "kind": movement.kind,
        "amount": movement.amount,
        "reason": movement.reason,
        "source": movement.source,
        "idempotency_key": movement.key,
        "city_code": movement.city_code,
        "actor_id": movement.actor_id,
        "lots": [],
        "created_at": now,
    }
    for name in ("once_key", "earned_at", "request_key"):
        if getattr(movement, name) is not None:
            entry[name] = getattr(movement, name)
    inc: dict[str, Any] = {"balance": movement.amount}
    if _counts_as_earned(movement.kind, movement.source):
        inc["lifetime_earned"] = movement.amount
    changes: dict[str, Any] = {"updated_at": now}
    if movement.tier:
        changes["tier"] = movement.tier
    if movement.amount > 0:
        entry["lots"] = _credit_lots(session, movement, entry, now)
        on_insert: dict[str, Any] = {"created_at": now}
        if "lifetime_earned" not in inc:
            on_insert["lifetime_earned"] = 0
        if not movement.tier:
            on_insert["tier"] = TIERS[0].name
        account = update_and_read(
            accounts,
            {"_id": movement.account_id},
            {"$inc": inc, "$set": changes, "$setOnInsert": on_insert},
            upsert=True,
            session=session,
        )
    else:
        account = update_and_read(
            accounts,
            {"_id": movement.account_id, "balance": {"$gte": -movement.amount}},
            {"$inc": inc, "$set": changes},
            session=session,
        )
        if account is None:
            raise Conflict("insufficient_points", "Not enough points.")
        entry["lots"] = _consume(session, movement, -movement.amount)
    entry["balance_after"] = account["balance"]
    LedgerEntry._get_collection().insert_one(entry, session=session)
    return entry


def _credit_lots(
    session: ClientSession, movement: Movement, entry: dict[str, Any], now: datetime
) -> list[dict[str, Any]]:
    lots = Lot._get_collection()
    if movement.restore:
        # A refund puts points back where they came from, keeping their expiry dates (an
        # already expired lot is expired again by the next expiry run).
        for part in movement.restore:
            lots.update_one(
                {"_id": part["lot_id"]}, {"$inc": {"remaining": part["points"]}}, session=session
            )
        return list(movement.restore)
    entry["expires_at"] = add_months(now, LOT_LIFETIME_MONTHS)
    lots.insert_one(
        {
            "account_id": movement.account_id,
            "entry_id": entry["_id"],
            "amount": movement.amount,
            "remaining": movement.amount,
            "expired": 0,
            "expires_at": entry["expires_at"],
            "created_at": now,
        },
        session=session,
    )
    return []


def _rolling_earned(session: ClientSession | None, account_id: ObjectId, now: datetime) -> int:
    """Points earned in the tier window ending at `now`, less the earns reversed by then."""
    since = now - TIER_WINDOW
    window = {"account_id": account_id, "created_at": {"$gt": since, "$lte": now}}
    # A reversal of an earn counts while its earn does (`earned_at` in the window); it is
    # written after its earn, so its own date is in the window whenever its earn's is.
    # Each query first matches its index (account_id, kind, created_at) and nothing else:
    # SecantusDB answers a `$in` on kind, a `$cond` per entry or extra fields in that first
    # `$match` 2-3x more slowly, and this runs for every earn and redemption.
    queries = (
        [{"$match": {**window, "kind": EARN}}],
        [
            {"$match": {**window, "kind": REVERSE}},
            {"$match": {"source.kind": EARN, "earned_at": {"$gt": since}}},
        ],
    )
    entries = LedgerEntry._get_collection()
    return sum(
        row["earned"]
        for stages in queries
        for row in entries.aggregate(
            [*stages, {"$group": {"_id": None, "earned": {"$sum": "$amount"}}}], session=session
        )
    )


def _earn(
    session: ClientSession, movement: Movement, multipliable: bool, now: datetime
) -> dict[str, Any]:
    """Credit `movement.amount` base points, times the owner's tier multiplier if asked."""
    earned = _rolling_earned(session, movement.account_id, now)
    amount = movement.amount
    if multipliable:
        amount = amount * tier_for(earned).multiplier // 10
    tier = tier_for(earned + amount).name
    return _write(session, replace(movement, amount=amount, tier=tier), now)


# --- earning rules ---------------------------------------------------------------------


def rule_document(code: str, session: ClientSession | None = None) -> dict[str, Any] | None:
    """The rule as configured, or its default when an admin never changed it."""
    stored = EarningRule._get_collection().find_one({"code": code}, session=session)
    if stored is not None:
        return stored
    default = DEFAULT_RULES.get(code)
    return {"code": code, "active": True, **default} if default else None


def ensure_default_rules() -> None:
    """Seed the defaults of PRODUCT.md; rules an admin changed are left alone."""
    rules = EarningRule._get_collection()
    for code, default in DEFAULT_RULES.items():
        rules.update_one(
            {"code": code},
            {"$setOnInsert": {"code": code, "active": True, **default, "updated_at": utcnow()}},
            upsert=True,
        )


def list_rules(admin: Caller) -> QuerySet:
    admin.require_admin()
    ensure_default_rules()
    return EarningRule.objects.order_by("code")


def update_rule(admin: Caller, code: str, changes: dict[str, Any]) -> EarningRule:
    admin.require_admin()
    ensure_default_rules()
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
    if (existing := _existing_entry(session, key, once_key)) is not None:
        return existing
    rule = rule_document(rule_code, session)
    if rule is None or not rule["active"]:
        return None
    base = rule["points"] if points is None else points
    owner = active_owner(user_id, session=session)
    if base <= 0 or owner is None:
        return None
    timezone = city_timezone(owner["city_code"], session)
    if _capped(session, owner["_id"], rule, timezone, now):
        log.info("points_capped", user_id=str(owner["_id"]), rule=rule_code)
        return None
    entry = _earn(
        session,
        Movement(
            owner["_id"],
            EARN,
            base,
            key,
            rule.get("description") or rule_code,
            {"rule": rule_code, **source},
            city_code or owner["city_code"],
            once_key,
        ),
        rule["multipliable"],
        now,
    )
    notify(
        session,
        owner["_id"],
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


# --- reading points --------------------------------------------------------------------


def tier_of(user_id: Any, now: datetime | None = None) -> str:
    """The owner's tier on the points earned in the rolling last 12 months."""
    account_id = object_id(user_id)
    if account_id is None:
        return TIERS[0].name
    return tier_for(_rolling_earned(None, account_id, now or utcnow())).name


def points_summary(user_id: Any, now: datetime | None = None) -> dict[str, Any]:
    """Balance, lifetime earned, tier, next tier and points expiring in the next 90 days,
    read from one snapshot."""
    now = now or utcnow()
    account_id = _oid(user_id)

    def read(session: ClientSession) -> dict[str, Any]:
        account = (
            PointsAccount._get_collection().find_one({"_id": account_id}, session=session) or {}
        )
        earned = _rolling_earned(session, account_id, now)
        expiring = Lot._get_collection().aggregate(
            [
                {
                    "$match": {
                        "account_id": account_id,
                        "remaining": {"$gt": 0},
                        "expires_at": {"$lte": now + EXPIRING_WINDOW},
                    }
                },
                {"$group": {"_id": "$expires_at", "points": {"$sum": "$remaining"}}},
                {"$sort": {"_id": 1}},
            ],
            session=session,
        )
        return {
            "account": account,
            "earned": earned,
            "expiring": [{"points": row["points"], "expires_at": row["_id"]} for row in expiring],
        }

    snapshot = transaction(read)
    tier = tier_for(snapshot["earned"])
    upper = [candidate for candidate in TIERS if candidate.threshold > snapshot["earned"]]
    return {
        "balance": snapshot["account"].get("balance", 0),
        "lifetime_earned": snapshot["account"].get("lifetime_earned", 0),
        "tier": tier.name,
        "tier_points": snapshot["earned"],
        "next_tier": (
            {"name": upper[0].name, "points_needed": upper[0].threshold - snapshot["earned"]}
            if upper
            else None
        ),
        "expiring": snapshot["expiring"],
    }


def ledger_of(user_id: Any) -> QuerySet:
    return LedgerEntry.objects(account_id=_oid(user_id))


@exporter("points")
def export_points(user_id: Any) -> dict[str, Any]:
    account_id = _oid(user_id)
    return {
        "summary": points_summary(account_id),
        "ledger": [entry.to_mongo().to_dict() for entry in ledger_of(account_id).order_by("id")],
        "redemptions": [
            redemption.to_mongo().to_dict()
            for redemption in Redemption.objects(user_id=account_id).order_by("id")
        ],
    }


def city_points_totals(city_code: str, start: datetime, end: datetime) -> dict[str, int]:
    """Points issued (earned, net of reversed earns) and redeemed (net of refunds) in a city
    in [start, end)."""
    totals = {
        (row["_id"]["kind"], row["_id"].get("reversed")): row["amount"]
        for row in LedgerEntry._get_collection().aggregate(
            [
                {"$match": {"city_code": city_code, "created_at": {"$gte": start, "$lt": end}}},
                {
                    "$group": {
                        "_id": {"kind": "$kind", "reversed": "$source.kind"},
                        "amount": {"$sum": "$amount"},
                    }
                },
            ]
        )
    }

    def total(kind: str, reversed_kind: str | None = None) -> int:
        return sum(
            amount
            for (found, reversed_), amount in totals.items()
            if found == kind and (reversed_kind is None or reversed_ == reversed_kind)
        )

    return {
        "issued": total(EARN) + total(REVERSE, EARN),
        "redeemed": -(total(REDEEM) + total(REFUND)),
    }


# --- adjustments and reversals ---------------------------------------------------------


def adjust(
    admin: Caller,
    user_id: str,
    amount: int,
    reason: str,
    *,
    key: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """An admin's correction, audited by its entry: who (`actor_id`), why, when."""
    admin.require_admin()
    owner = get_or_404(User, user_id)
    if amount == 0:
        raise ValidationFailed(errors={"amount": ["Must not be zero."]})
    now = now or utcnow()
    key = f"adjust:{admin.id}:{key}" if key else f"adjust:{ObjectId()}"

    def unit(session: ClientSession) -> dict[str, Any]:
        if (existing := _existing_entry(session, key)) is not None:
            return existing
        entry = _write(
            session,
            Movement(
                owner.pk,
                ADJUST,
                amount,
                key,
                reason,
                {"rule": "admin.adjustment"},
                owner.city_code,
                actor_id=admin.user.pk,
            ),
            now,
        )
        _tell_owner_of_correction(session, entry)
        return entry

    entry = transaction(unit)
    log.info("points_adjusted", user_id=user_id, amount=amount, reason=reason, by=admin.id)
    return entry


def reverse_entry(
    admin: Caller,
    entry_id: str,
    reason: str,
    *,
    key: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Take back a mistaken credit (an earn or a positive adjustment) with one `reverse` entry,
    at most once per credit. The points come out of what is left of the credit's own lot,
    then oldest expiry first like any debit; a reversed earn stops counting as earned."""
    admin.require_admin()
    original_id = _oid(entry_id)
    now = now or utcnow()
    request_key = f"{admin.id}:{key}" if key else None
    # The ledger key names the credit, not the request: a credit is reversed at most once,
    # whoever asks and however often.
    ledger_key = f"reverse:{original_id}"

    def unit(session: ClientSession) -> dict[str, Any]:
        original = LedgerEntry._get_collection().find_one({"_id": original_id}, session=session)
        if original is None:
            raise NotFound(message="Ledger entry not found.")
        if original["kind"] not in (EARN, ADJUST) or original["amount"] <= 0:
            raise Conflict(
                "not_reversible", "Only an earn or a positive adjustment can be reversed."
            )
        if (reversal := _existing_entry(session, ledger_key)) is not None:
            if request_key is not None and reversal.get("request_key") == request_key:
                return reversal
            raise Conflict("already_reversed", "This entry was already reversed.")
        account_id = original["account_id"]
        earned_at = original["created_at"] if original["kind"] == EARN else None
        tier = None
        if earned_at is not None:
            # As in `_earn`: the tier once this entry is counted, i.e. the window figure
            # without the reversed earn when that earn is inside the window.
            earned = _rolling_earned(session, account_id, now)
            if earned_at > now - TIER_WINDOW:
                earned -= original["amount"]
            tier = tier_for(earned).name
        own_lot = Lot._get_collection().find_one(
            {"account_id": account_id, "entry_id": original_id}, {"_id": 1}, session=session
        )
        reversal = _write(
            session,
            Movement(
                account_id,
                REVERSE,
                -original["amount"],
                ledger_key,
                reason,
                {
                    "rule": "admin.reversal",
                    "type": "ledger_entry",
                    "id": str(original_id),
                    "kind": original["kind"],
                },
                original.get("city_code"),
                actor_id=admin.user.pk,
                tier=tier,
                first_lot=own_lot["_id"] if own_lot else None,
                earned_at=earned_at,
                request_key=request_key,
            ),
            now,
        )
        _tell_owner_of_correction(session, reversal)
        return reversal

    entry = transaction(unit)
    log.info(
        "points_reversed",
        entry_id=entry_id,
        reversal_id=str(entry["_id"]),
        amount=entry["amount"],
        reason=reason,
        by=admin.id,
    )
    return entry


def _tell_owner_of_correction(session: ClientSession, entry: dict[str, Any]) -> None:
    """Points never change behind an owner's back: an admin's adjustment or reversal
    reaches them with the admin's reason."""
    if entry["kind"] == REVERSE:
        template, points = "points_reversed", -entry["amount"]
    else:
        template, points = "points_adjusted", entry["amount"]
    notify(
        session,
        entry["account_id"],
        "points",
        template,
        {"points": points, "reason": entry["reason"]},
        dedupe_key=f"{entry['_id']}:{template}",
    )


# --- rewards and redemptions -----------------------------------------------------------


def create_reward(admin: Caller, data: dict[str, Any]) -> Reward:
    admin.require_admin()
    reward = Reward(**data).save()
    log.info("reward_created", reward_id=str(reward.pk), by=admin.id)
    return reward


def update_reward(admin: Caller, reward_id: str, changes: dict[str, Any]) -> Reward:
    admin.require_admin()
    reward = get_or_404(Reward, reward_id)
    if changes:
        Reward.objects(pk=reward.pk).update_one(
            **{f"set__{name}": value for name, value in changes.items()}
        )
        reward.reload()
    log.info("reward_updated", reward_id=reward_id, changes=sorted(changes), by=admin.id)
    return reward


def rewards_for(owner: User, city: str | None, now: datetime | None = None) -> QuerySet:
    """Active rewards the owner may redeem in `city` (default: the owner's city)."""
    tier = tier_of(owner.pk, now)
    return Reward.objects(
        active=True,
        min_tier__in=TIER_NAMES[: tier_rank(tier) + 1],
        __raw__={"$or": [{"city_codes": []}, {"city_codes": city or owner.city_code}]},
    )


def redeem(
    owner: User,
    reward_id: str,
    quantity: int = 1,
    *,
    client_key: str | None = None,
    now: datetime | None = None,
) -> Redemption:
    """Debit points and stock in one transaction; refusals are 409 with their slug."""
    now = now or utcnow()
    reward_oid = _oid(reward_id)
    client_key = f"{owner.pk}:{client_key}" if client_key else None

    def unit(session: ClientSession) -> ObjectId:
        redemptions = Redemption._get_collection()
        if client_key and (
            found := redemptions.find_one({"client_key": client_key}, session=session)
        ):
            return found["_id"]
        rewards = Reward._get_collection()
        reward = rewards.find_one({"_id": reward_oid, "active": True}, session=session)
        if reward is None:
            raise NotFound(message="Reward not found.")
        if reward.get("city_codes") and owner.city_code not in reward["city_codes"]:
            raise Conflict("not_in_city", "This reward is not offered in your city.")
        tier = tier_for(_rolling_earned(session, owner.pk, now))
        if tier_rank(tier.name) < tier_rank(reward["min_tier"]):
            raise Conflict("tier_too_low", f"This reward needs the {reward['min_tier']} tier.")
        if reward.get("per_owner_limit"):
            taken = sum(
                row["quantity"]
                for row in redemptions.find(
                    {"reward_id": reward_oid, "user_id": owner.pk, "status": {"$ne": CANCELLED}},
                    {"quantity": 1},
                    session=session,
                )
            )
            if taken + quantity > reward["per_owner_limit"]:
                raise Conflict("limit_reached", "You reached the limit for this reward.")
        if not rewards.update_one(
            {"_id": reward_oid, "stock": {"$gte": quantity}},
            {"$inc": {"stock": -quantity}},
            session=session,
        ).matched_count:
            raise Conflict("out_of_stock", "This reward is out of stock.")
        redemption_id = ObjectId()
        points = reward["cost"] * quantity
        entry = _write(
            session,
            Movement(
                owner.pk,
                REDEEM,
                -points,
                f"redemption:{redemption_id}",
                f"Redeemed {reward['title']}",
                {"rule": "redemption", "type": "redemption", "id": str(redemption_id)},
                owner.city_code,
            ),
            now,
        )
        document = {
            "_id": redemption_id,
            "user_id": owner.pk,
            "reward_id": reward_oid,
            "reward_title": reward["title"],
            "quantity": quantity,
            "points": points,
            "fulfillment": reward["fulfillment"],
            "status": PENDING,
            "city_code": owner.city_code if reward["fulfillment"] == "pickup" else None,
            "entry_id": entry["_id"],
            "created_at": now,
        }
        if client_key:
            document["client_key"] = client_key
        redemptions.insert_one(document, session=session)
        return redemption_id

    redemption = Redemption.objects.get(pk=transaction(unit))
    log.info(
        "reward_redeemed",
        redemption_id=str(redemption.pk),
        user_id=str(owner.pk),
        reward_id=reward_id,
        points=redemption.points,
    )
    return redemption


def cancel_redemption(by: Caller, redemption_id: str, now: datetime | None = None) -> Redemption:
    """Cancel a pending redemption: refund its points to the lots they came from, once, and
    put the stock back."""
    redemption = get_or_404(Redemption, redemption_id)
    by.require_self_or_admin(redemption.user_id)
    now = now or utcnow()

    def unit(session: ClientSession) -> None:
        cancelled = update_and_read(
            Redemption._get_collection(),
            {"_id": redemption.pk, "status": PENDING},
            {"$set": {"status": CANCELLED, "cancelled_at": now, "cancelled_by": by.user.pk}},
            session=session,
        )
        if cancelled is None:
            raise Conflict("not_pending", "Only a pending redemption can be cancelled.")
        Reward._get_collection().update_one(
            {"_id": cancelled["reward_id"]},
            {"$inc": {"stock": cancelled["quantity"]}},
            session=session,
        )
        debit = LedgerEntry._get_collection().find_one(
            {"_id": cancelled["entry_id"]}, session=session
        )
        refund = _write(
            session,
            Movement(
                cancelled["user_id"],
                REFUND,
                cancelled["points"],
                f"refund:{redemption.pk}",
                f"Cancelled {cancelled['reward_title']}",
                {"rule": "redemption", "type": "redemption", "id": str(redemption.pk)},
                debit.get("city_code"),
                actor_id=by.user.pk,
                restore=debit["lots"],
            ),
            now,
        )
        Redemption._get_collection().update_one(
            {"_id": redemption.pk}, {"$set": {"refund_entry_id": refund["_id"]}}, session=session
        )

    transaction(unit)
    log.info("redemption_cancelled", redemption_id=redemption_id, by=by.id)
    return redemption.reload()


def fulfil_redemption(by: Caller, redemption_id: str, now: datetime | None = None) -> Redemption:
    """Hand a reward over: admins, or circle leaders of the pickup city."""
    redemption = get_or_404(Redemption, redemption_id)
    by.require(redemption.city_code, CIRCLE_LEADER)
    fulfilled = Redemption._get_collection().update_one(
        {"_id": redemption.pk, "status": PENDING},
        {
            "$set": {
                "status": FULFILLED,
                "fulfilled_at": now or utcnow(),
                "fulfilled_by": by.user.pk,
            }
        },
    )
    if not fulfilled.matched_count:
        raise Conflict("not_pending", "Only a pending redemption can be fulfilled.")
    log.info("redemption_fulfilled", redemption_id=redemption_id, by=by.id)
    return redemption.reload()


# --- partners --------------------------------------------------------------------------


def create_partner(admin: Caller, name: str, max_points_per_txn: int) -> tuple[Partner, str]:
    """Returns the partner and its secret, which is shown this once."""
    admin.require_admin()
    secret = secrets.token_hex(32)
    partner = Partner(
        name=name,
        key=f"pk_{secrets.token_hex(12)}",
        secret=secret,
        max_points_per_txn=max_points_per_txn,
        created_by=admin.user.pk,
    ).save()
    log.info("partner_created", partner_id=str(partner.pk), name=name, by=admin.id)
    return partner, secret


def _timestamp(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        if raw.strip().isdigit():
            return datetime.fromtimestamp(int(raw), UTC)
        parsed = datetime.fromisoformat(raw)
    except (ValueError, OverflowError, OSError):
        return None
    return parsed if parsed.tzinfo else None


def authenticate_partner(
    key: str | None,
    signature: str | None,
    timestamp: str | None,
    body: bytes,
    now: datetime | None = None,
) -> Partner:
    """Check the key, the HMAC-SHA256 of the raw body and the timestamp window. One answer
    for every failure, so a caller cannot learn which part was wrong."""
    partner = Partner.objects(key=key, active=True).first() if key else None
    # Compute a digest even for an unknown key, so both failures cost the same time.
    secret = partner.secret if partner else "unknown-partner"
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest().encode()
    signed = hmac.compare_digest(expected, (signature or "").strip().lower().encode())
    moment = _timestamp(timestamp)
    fresh = moment is not None and abs((now or utcnow()) - moment) <= PARTNER_CLOCK_SKEW
    if partner is None or not signed or not fresh:
        raise Unauthorized("invalid_signature", "The partner request could not be authenticated.")
    return partner


def credit_from_partner(
    partner: Partner,
    *,
    partner_txn_id: str,
    points: int,
    member_id: str | None = None,
    member_phone: str | None = None,
    occurred_at: datetime | None = None,
    now: datetime | None = None,
) -> tuple[dict[str, Any], bool]:
    """Credit points once per `partner_txn_id`. Returns the credit and whether it is new; a
    replay returns the first credit."""
    credits = PartnerCredit._get_collection()
    query = {"partner_id": partner.pk, "partner_txn_id": partner_txn_id}
    if (first := credits.find_one(query)) is not None:
        return _same_credit(first, points), False
    if points > partner.max_points_per_txn:
        raise ValidationFailed(
            "over_cap", f"At most {partner.max_points_per_txn} points per transaction."
        )
    owner = find_active_owner(member_id, member_phone)
    if owner is None:
        raise ValidationFailed("unknown_member", "No owner with this id or phone.")
    now = now or utcnow()
    key = f"partner:{partner.pk}:{partner_txn_id}"

    def unit(session: ClientSession) -> bool:
        if credits.find_one(query, {"_id": 1}, session=session) is not None:
            return False
        entry = _earn(
            session,
            Movement(
                owner.pk,
                EARN,
                points,
                key,
                f"Credited by {partner.name}",
                {
                    "rule": "partner.credit",
                    "type": "partner",
                    "id": str(partner.pk),
                    "txn_id": partner_txn_id,
                },
                owner.city_code,
            ),
            False,
            now,
        )
        credit = {
            **query,
            "user_id": owner.pk,
            "points": points,
            "entry_id": entry["_id"],
            "balance_after": entry["balance_after"],
            "occurred_at": occurred_at,
            "created_at": now,
        }
        credits.insert_one(credit, session=session)
        return True

    created = transaction(unit)
    # Read back what was stored, so that the first answer and every replay are identical.
    credit = credits.find_one(query)
    if created:
        log.info(
            "partner_credit",
            partner_id=str(partner.pk),
            txn=partner_txn_id,
            user_id=str(owner.pk),
            points=points,
        )
    return _same_credit(credit, points), created


def _same_credit(credit: dict[str, Any], points: int) -> dict[str, Any]:
    if credit["points"] != points:
        raise Conflict(
            "partner_txn_reused", "This partner_txn_id was already used for another credit."
        )
    return credit


# --- expiry ----------------------------------------------------------------------------


def expire_due(now: datetime | None = None, batch: int = 500) -> int:
    """Expire every lot past its date with an `expire` entry. Returns the entries written."""
    now = now or utcnow()
    lots = Lot._get_collection()
    written = 0
    while True:
        due = list(
            lots.find({"expires_at": {"$lte": now}, "remaining": {"$gt": 0}}, {"_id": 1}).limit(
                batch
            )
        )
        for lot in due:
            written += transaction(
                lambda session, lot_id=lot["_id"]: _expire_lot(session, lot_id, now)
            )
        if len(due) < batch:
            break
    if written:
        log.info("points_expired", entries=written)
    return written


def _expire_lot(session: ClientSession, lot_id: ObjectId, now: datetime) -> int:
    lot = Lot._get_collection().find_one({"_id": lot_id}, session=session)
    if lot is None or lot["remaining"] <= 0 or lot["expires_at"] > now:
        return 0
    owner = active_owner(lot["account_id"], session=session) or {}
    _write(
        session,
        Movement(
            lot["account_id"],
            EXPIRE,
            -lot["remaining"],
            f"expire:{lot_id}:{lot['expired']}",
            "Points expired",
            {"rule": "expiry", "type": "lot", "id": str(lot_id)},
            owner.get("city_code"),
            lot_id=lot_id,
        ),
        now,
    )
    return 1


def warn_expiring(now: datetime | None = None) -> int:
    """Tell owners about lots expiring within 30 days, once per lot."""
    now = now or utcnow()
    lots = Lot._get_collection()
    due = list(
        lots.find(
            {
                "expires_at": {"$gt": now, "$lte": now + EXPIRY_WARNING},
                "remaining": {"$gt": 0},
                "warned_at": None,
            },
            {"_id": 1},
        )
    )

    def warn(session: ClientSession, lot_id: ObjectId) -> int:
        lot = update_and_read(
            lots, {"_id": lot_id, "warned_at": None}, {"$set": {"warned_at": now}}, session=session
        )
        if lot is None:
            return 0
        owner = active_owner(lot["account_id"], session=session) or {}
        expires_on = (
            lot["expires_at"]
            .astimezone(ZoneInfo(city_timezone(owner.get("city_code"), session)))
            .date()
            .isoformat()
        )
        notify(
            session,
            lot["account_id"],
            "points",
            "points_expiring",
            {"points": lot["remaining"], "expires_on": expires_on},
            dedupe_key=f"lot:{lot_id}:expiring",
        )
        return 1

    warned = sum(
        transaction(lambda session, lot_id=lot["_id"]: warn(session, lot_id)) for lot in due
    )
    if warned:
        log.info("points_expiry_warned", lots=warned)
    return warned


# --- reconciliation --------------------------------------------------------------------


def request_reconciliation(admin: Caller) -> ReconciliationRun:
    """Store a queued run and its domain event; a worker runs it."""
    admin.require_admin()
    run_id = ObjectId()

    def unit(session: ClientSession) -> None:
        ReconciliationRun._get_collection().insert_one(
            ReconciliationRun(id=run_id, requested_by=admin.user.pk).to_mongo().to_dict(),
            session=session,
        )
        record_event(
            session,
            "reconciliation.requested",
            subject_type="reconciliation_run",
            subject_id=run_id,
            actor_id=admin.user.pk,
        )

    transaction(unit)
    return ReconciliationRun.objects.get(pk=run_id)


def _ledger_totals(session: ClientSession | None, account_id: ObjectId) -> dict[str, int]:
    rows = list(
        LedgerEntry._get_collection().aggregate(
            [
                {"$match": {"account_id": account_id}},
                {
                    "$group": {
                        "_id": None,
                        "balance": {"$sum": "$amount"},
                        "entries": {"$sum": 1},
                        "earned": {"$sum": EARNED_POINTS},
                    }
                },
            ],
            session=session,
        )
    )
    lots = list(
        Lot._get_collection().aggregate(
            [
                {"$match": {"account_id": account_id}},
                {"$group": {"_id": None, "remaining": {"$sum": "$remaining"}}},
            ],
            session=session,
        )
    )
    totals = rows[0] if rows else {"balance": 0, "entries": 0, "earned": 0}
    return {
        "balance": totals["balance"],
        "entries": totals["entries"],
        "earned": totals["earned"],
        "lots": lots[0]["remaining"] if lots else 0,
    }


def check_account(account_id: ObjectId) -> tuple[int, dict[str, Any] | None]:
    """Compare one account's cache with its ledger and lots, all read in one snapshot so an
    entry written meanwhile is either in both or in neither. Returns (entries, drift)."""

    def read(session: ClientSession) -> tuple[dict[str, Any], dict[str, int]]:
        account = (
            PointsAccount._get_collection().find_one({"_id": account_id}, session=session) or {}
        )
        return account, _ledger_totals(session, account_id)

    account, totals = transaction(read)
    cached = {"balance": account.get("balance", 0), "earned": account.get("lifetime_earned", 0)}
    if (cached["balance"], cached["earned"], totals["lots"]) == (
        totals["balance"],
        totals["earned"],
        totals["balance"],
    ):
        return totals["entries"], None
    return totals["entries"], {
        "account_id": str(account_id),
        "cached_balance": cached["balance"],
        "computed_balance": totals["balance"],
        "lots_total": totals["lots"],
        "cached_lifetime_earned": cached["earned"],
        "computed_lifetime_earned": totals["earned"],
    }


def repair_account(account_id: ObjectId, now: datetime | None = None) -> None:
    """Rewrite the cached totals from the ledger, the source of truth."""
    now = now or utcnow()

    def unit(session: ClientSession) -> None:
        totals = _ledger_totals(session, account_id)
        PointsAccount._get_collection().update_one(
            {"_id": account_id},
            {
                "$set": {
                    "balance": totals["balance"],
                    "lifetime_earned": totals["earned"],
                    "tier": tier_for(_rolling_earned(session, account_id, now)).name,
                    "updated_at": now,
                }
            },
            session=session,
        )

    transaction(unit)


def run_reconciliation(run_id: str | None = None, batch: int = 500) -> ReconciliationRun | None:
    """Check every account against its ledger, record drifts and repair them.

    Each account is read in its own short snapshot, so redemptions never wait for a run.
    Returns None when the run is already running or done (a redelivered message).
    """
    runs = ReconciliationRun._get_collection()
    if run_id is None:
        run_id = str(runs.insert_one(ReconciliationRun().to_mongo().to_dict()).inserted_id)
    run_oid = _oid(run_id)
    claimed = runs.update_one(
        {"_id": run_oid, "status": {"$in": [RUN_QUEUED, RUN_FAILED]}},
        {"$set": {"status": RUN_RUNNING, "started_at": utcnow()}},
    )
    if not claimed.matched_count:
        return None
    accounts = PointsAccount._get_collection()
    progress = {"accounts_checked": 0, "entries_checked": 0, "repaired": 0}
    drifts: list[dict[str, Any]] = []
    try:
        last: ObjectId | None = None
        while True:
            page = [
                row["_id"]
                for row in accounts.find({"_id": {"$gt": last}} if last else {}, {"_id": 1})
                .sort("_id", 1)
                .limit(batch)
            ]
            for account_id in page:
                entries, drift = check_account(account_id)
                progress["accounts_checked"] += 1
                progress["entries_checked"] += entries
                if drift is not None:
                    drifts.append(drift)
                    repair_account(account_id)
                    progress["repaired"] += 1
            if len(page) < batch:
                break
            last = page[-1]
    except Exception as exc:
        runs.update_one(
            {"_id": run_oid},
            {
                "$set": {
                    "status": RUN_FAILED,
                    "error": repr(exc)[:2000],
                    **progress,
                    "drifts": drifts,
                }
            },
        )
        raise
    runs.update_one(
        {"_id": run_oid},
        {"$set": {"status": RUN_DONE, "finished_at": utcnow(), **progress, "drifts": drifts}},
    )
    log.info("reconciliation_done", run_id=str(run_oid), drifts=len(drifts), **progress)
    return ReconciliationRun.objects.get(pk=run_oid)
