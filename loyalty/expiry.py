"""Points expiry: lots lapse 24 months after they were earned, and owners are warned 30
days before."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial
from zoneinfo import ZoneInfo

import structlog
from bson import ObjectId
from pymongo.client_session import ClientSession

from accounts.services import active_owner, city_timezone
from app.clock import utcnow
from app.db import transaction, update_and_read
from loyalty import ledger
from loyalty.models import EXPIRE, Lot
from notifications.services import notify

log = structlog.get_logger()


EXPIRY_WARNING = timedelta(days=30)


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
            written += transaction(partial(_expire_lot, lot_id=lot["_id"], now=now))
        if len(due) < batch:
            break
    if written:
        log.info("points_expired", entries=written)
    return written


def _expire_lot(session: ClientSession, lot_id: ObjectId, now: datetime) -> int:
    lot = Lot._get_collection().find_one({"_id": lot_id}, session=session)
    if lot is None or lot["remaining"] <= 0 or lot["expires_at"] > now:
        return 0
    owner = active_owner(lot["account_id"], session=session)
    ledger.write(
        session,
        ledger.Movement(
            lot["account_id"],
            EXPIRE,
            -lot["remaining"],
            f"expire:{lot_id}:{lot['expired']}",
            "Points expired",
            {"rule": "expiry", "type": "lot", "id": str(lot_id)},
            owner.city_code if owner else None,
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
        owner = active_owner(lot["account_id"], session=session)
        expires_on = (
            lot["expires_at"]
            .astimezone(ZoneInfo(city_timezone(owner.city_code if owner else None, session)))
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

    warned = sum(transaction(partial(warn, lot_id=lot["_id"])) for lot in due)
    if warned:
        log.info("points_expiry_warned", lots=warned)
    return warned
