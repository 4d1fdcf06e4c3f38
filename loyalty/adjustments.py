"""Admins' corrections: adjustments (a credit or debit with a reason) and reversals of a
mistaken credit. Each is one audited ledger entry, and the owner is told of it. The
reversal of a credit is also how content that no longer pays gives its points back
(`loyalty.content_points`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from bson import ObjectId
from pymongo.client_session import ClientSession

from accounts.services import active_owner
from app.auth import Caller
from app.clock import utcnow
from app.db import transaction
from app.errors import NotFound, ValidationFailed
from loyalty import errors, ledger
from loyalty.models import ADJUST, EARN, REVERSE, LedgerEntry, Lot
from notifications.services import notify

log = structlog.get_logger()


def adjust(
    admin: Caller,
    user_id: str,
    amount: int,
    reason: str,
    *,
    key: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """An admin's correction, audited by its entry: who (`actor_id`), why, when. Nobody
    corrects their own points (403 `own_points`)."""
    admin.require_admin()
    owner = active_owner(user_id)
    if owner is None:
        raise NotFound(message="User not found.")
    if owner.id == admin.user.pk:
        raise errors.OwnPoints()
    if amount == 0:
        raise ValidationFailed(errors={"amount": ["Must not be zero."]})
    now = now or utcnow()
    key = f"adjust:{admin.id}:{key}" if key else f"adjust:{ObjectId()}"

    def unit(session: ClientSession) -> dict[str, Any]:
        if (existing := ledger.existing_entry(session, key)) is not None:
            return existing
        entry = ledger.write(
            session,
            ledger.Movement(
                owner.id,
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
        tell_owner_of_correction(session, entry)
        return entry

    entry = transaction(unit, answers_request=True)
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
    then oldest expiry first like any debit; a reversed earn stops counting as earned.
    Nobody reverses their own credits (403 `own_points`)."""
    admin.require_admin()
    original_id = ledger.id_or_404(entry_id)
    now = now or utcnow()
    request_key = f"{admin.id}:{key}" if key else None
    # The ledger key names the credit, not the request: a credit is reversed at most once,
    # whoever asks and however often.
    ledger_key = f"reverse:{original_id}"

    def unit(session: ClientSession) -> dict[str, Any]:
        original = LedgerEntry._get_collection().find_one({"_id": original_id}, session=session)
        if original is None:
            raise NotFound(message="Ledger entry not found.")
        if original["account_id"] == admin.user.pk:
            raise errors.OwnPoints()
        if original["kind"] not in (EARN, ADJUST) or original["amount"] <= 0:
            raise errors.NotReversible()
        if (reversal := ledger.existing_entry(session, ledger_key)) is not None:
            if request_key is not None and reversal.get("request_key") == request_key:
                return reversal
            raise errors.AlreadyReversed()
        return write_reversal(
            session,
            original,
            key=ledger_key,
            reason=reason,
            rule="admin.reversal",
            now=now,
            actor_id=admin.user.pk,
            request_key=request_key,
        )

    entry = transaction(unit, answers_request=True)
    log.info(
        "points_reversed",
        entry_id=entry_id,
        reversal_id=str(entry["_id"]),
        amount=entry["amount"],
        reason=reason,
        by=admin.id,
    )
    return entry


def write_reversal(
    session: ClientSession,
    original: dict[str, Any],
    *,
    key: str,
    reason: str,
    rule: str,
    now: datetime,
    actor_id: ObjectId | None = None,
    request_key: str | None = None,
) -> dict[str, Any]:
    """One `reverse` entry taking back the credit `original`, and the owner told why (an
    admin's reversal, or content that no longer pays: `loyalty.content_points`)."""
    account_id = original["account_id"]
    # A reversed earn leaves the tier figure while the earn is in its window.
    earned_at = original["created_at"] if original["kind"] == EARN else None
    own_lot = Lot._get_collection().find_one(
        {"account_id": account_id, "entry_id": original["_id"]}, {"_id": 1}, session=session
    )
    reversal = ledger.write(
        session,
        ledger.Movement(
            account_id,
            REVERSE,
            -original["amount"],
            key,
            reason,
            {
                "rule": rule,
                "type": "ledger_entry",
                "id": str(original["_id"]),
                "kind": original["kind"],
            },
            original.get("city_code"),
            actor_id=actor_id,
            first_lot=own_lot["_id"] if own_lot else None,
            earned_at=earned_at,
            request_key=request_key,
        ),
        now,
    )
    tell_owner_of_correction(session, reversal)
    return reversal


def tell_owner_of_correction(session: ClientSession, entry: dict[str, Any]) -> None:
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
