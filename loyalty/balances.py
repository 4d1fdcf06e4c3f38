"""Reading points: an owner's balance, tier, expiring points and entries, their personal
data and profile fields, and a city's points figures (the last three for `app.domains`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mongoengine.queryset import QuerySet

from app.auth import Caller
from app.clock import utcnow
from app.db import object_id, transaction
from app.domains import ScorecardPart, ScorecardScope
from app.web import paginate
from loyalty import ledger, points_account
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


def current_account(user_id: Any, now: datetime | None = None) -> dict[str, Any]:
    """The owner's account with its tier figure and expiring points current: one read, and
    a transaction recomputing them only when their time has passed (see
    `loyalty.points_account`)."""
    now = now or utcnow()
    account_id = object_id(user_id)
    if account_id is None:
        return {}
    account = PointsAccount._get_collection().find_one({"_id": account_id})
    if account is None:
        return {}
    if all(points_account.is_current(account, figure, now) for figure in ("tier", "expiring")):
        return account
    return transaction(lambda session: points_account.refresh(session, account_id, now))


def tier_of(user_id: Any, now: datetime | None = None) -> str:
    """The owner's tier on the points earned in the rolling last 12 months."""
    return points_account.tier_for(current_account(user_id, now).get("tier_points", 0)).name


def profile_fields(user_id: Any) -> dict[str, Any]:
    """Loyalty's part of an account's profile: the owner's tier."""
    return {"tier": tier_of(user_id)}


def points_summary(user_id: Any, now: datetime | None = None) -> dict[str, Any]:
    """Balance, lifetime earned, tier, next tier and points expiring in the next 90 days."""
    account = current_account(ledger.id_or_404(user_id), now)
    earned = account.get("tier_points", 0)
    upper = [candidate for candidate in points_account.TIERS if candidate.threshold > earned]
    return {
        "balance": account.get("balance", 0),
        "lifetime_earned": account.get("lifetime_earned", 0),
        "tier": points_account.tier_for(earned).name,
        "tier_points": earned,
        "next_tier": (
            {"name": upper[0].name, "points_needed": upper[0].threshold - earned} if upper else None
        ),
        "expiring": account.get("expiring", []),
        "held": account.get("held") or 0,
    }


def ledger_of(user_id: Any) -> QuerySet:
    return LedgerEntry.objects(account_id=ledger.id_or_404(user_id))


def points_of(admin: Caller, user_id: Any, cursor: str | None, limit: int) -> dict[str, Any]:
    """An owner's points as an admin looks them up: the summary, a page of the ledger
    (newest first) and the lots still holding points, soonest to expire first."""
    admin.require_admin()
    account_id = ledger.id_or_404(user_id)
    return {
        "summary": points_summary(account_id),
        "entries": paginate(ledger_of(account_id), cursor, limit),
        "lots": list(
            Lot.objects(account_id=account_id, expires_at__gt=utcnow())
            .filter(remaining__gt=0)
            .order_by("expires_at")
        ),
    }


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
    period by source (the earning rule or origin, or `partner:<name>` for an ecosystem
    partner's credits; reversed earns count against theirs), and the owners who redeemed in
    it, rewards or at a partner (they were active)."""
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
                    "_id": {
                        "rule": "$source.rule",
                        "kind": "$kind",
                        "of": "$source.kind",
                        "partner": "$source.name",
                    },
                    "amount": {"$sum": "$amount"},
                }
            },
        ]
    ):
        key = row["_id"]
        if key["kind"] == EARN or key.get("of") == EARN:
            # An ecosystem partner's credits, less their reversals and corrections, by name.
            partner = key.get("partner")
            source = f"partner:{partner}" if partner else key.get("rule") or "other"
            by_source[source] = by_source.get(source, 0) + row["amount"]
    redeemers = LedgerEntry._get_collection().distinct(
        "account_id", {"city_code": scope.city_code, "created_at": period, "kind": REDEEM}
    )
    return ScorecardPart(
        {"points_issued": sum(by_source.values()), "points_issued_by_source": by_source},
        set(redeemers),
    )
