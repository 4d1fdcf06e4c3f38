"""Reading points: an owner's balance, tier, expiring points and entries, their personal
data and profile fields, and a city's points figures (the last three for `app.domains`)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from mongoengine.queryset import QuerySet
from pymongo.client_session import ClientSession

from app.clock import utcnow
from app.db import object_id, transaction
from app.domains import ScorecardPart, ScorecardScope
from loyalty import ledger
from loyalty.models import (
    EARN,
    REDEEM,
    REFUND,
    REVERSE,
    LedgerEntry,
    Lot,
    PointsAccount,
    Redemption,
)

EXPIRING_WINDOW = timedelta(days=90)


def tier_of(user_id: Any, now: datetime | None = None) -> str:
    """The owner's tier on the points earned in the rolling last 12 months."""
    account_id = object_id(user_id)
    if account_id is None:
        return ledger.TIERS[0].name
    return ledger.tier_for(ledger.rolling_earned(None, account_id, now or utcnow())).name


def profile_fields(user_id: Any) -> dict[str, Any]:
    """Loyalty's part of an account's profile: the owner's tier."""
    return {"tier": tier_of(user_id)}


def points_summary(user_id: Any, now: datetime | None = None) -> dict[str, Any]:
    """Balance, lifetime earned, tier, next tier and points expiring in the next 90 days,
    read from one snapshot."""
    now = now or utcnow()
    account_id = ledger.id_or_404(user_id)

    def read(session: ClientSession) -> dict[str, Any]:
        account = (
            PointsAccount._get_collection().find_one({"_id": account_id}, session=session) or {}
        )
        earned = ledger.rolling_earned(session, account_id, now)
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
    tier = ledger.tier_for(snapshot["earned"])
    upper = [candidate for candidate in ledger.TIERS if candidate.threshold > snapshot["earned"]]
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
    return LedgerEntry.objects(account_id=ledger.id_or_404(user_id))


def export_points(user_id: Any) -> dict[str, Any]:
    account_id = ledger.id_or_404(user_id)
    return {
        "summary": points_summary(account_id),
        "ledger": [entry.to_mongo().to_dict() for entry in ledger_of(account_id).order_by("id")],
        "redemptions": [
            redemption.to_mongo().to_dict()
            for redemption in Redemption.objects(user_id=account_id).order_by("id")
        ],
    }


def city_figures(city_code: str, start: datetime, end: datetime) -> dict[str, int]:
    """Loyalty's part of a city's figures: points issued (earned, net of reversed earns) and
    redeemed (net of refunds) in the city in [start, end)."""
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
        "points_issued": total(EARN) + total(REVERSE, EARN),
        "points_redeemed": -(total(REDEEM) + total(REFUND)),
    }


def scorecard_figures(scope: ScorecardScope) -> ScorecardPart:
    """Loyalty's part of a city partner's scorecard: points issued in the city in the
    period by source (the earning rule or origin; reversed earns count against theirs),
    and the owners who redeemed in it (they were active)."""
    period = {"$gte": scope.start, "$lt": scope.end}
    by_source: dict[str, int] = {}
    for row in LedgerEntry._get_collection().aggregate(
        [
            {
                "$match": {
                    "city_code": scope.city_code,
                    "created_at": period,
                    "kind": {"$in": [EARN, REVERSE]},
                }
            },
            {
                "$group": {
                    "_id": {"rule": "$source.rule", "kind": "$kind", "of": "$source.kind"},
                    "amount": {"$sum": "$amount"},
                }
            },
        ]
    ):
        key = row["_id"]
        if key["kind"] == EARN or key.get("of") == EARN:
            source = key.get("rule") or "other"
            by_source[source] = by_source.get(source, 0) + row["amount"]
    redeemers = LedgerEntry._get_collection().distinct(
        "account_id", {"city_code": scope.city_code, "created_at": period, "kind": REDEEM}
    )
    return ScorecardPart(
        {"points_issued": sum(by_source.values()), "points_issued_by_source": by_source},
        set(redeemers),
    )
