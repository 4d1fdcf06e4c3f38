"""Partner systems (ecosystem partners such as charging operators) crediting points,
machine to machine: an API key, an HMAC-SHA256 signature of the timestamp and the body, a
timestamp window, and one credit per partner transaction id.

Not to be confused with city partners, the operators whose circle leaders run a city."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from pymongo.client_session import ClientSession

from accounts.services import Owner, find_active_owner
from app.auth import Caller
from app.clock import utcnow
from app.db import transaction
from loyalty import errors, ledger
from loyalty.models import EARN, Partner, PartnerCredit

log = structlog.get_logger()


PARTNER_CLOCK_SKEW = timedelta(minutes=5)


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
    """Check the key, the HMAC-SHA256 of `<timestamp>.<raw body>` and the timestamp window.
    One answer for every failure, so a caller cannot learn which part was wrong.

    The timestamp is signed with the body (as Stripe does): unsigned, a captured request
    could be replayed at any time with a fresh one."""
    partner = Partner.objects(key=key, active=True).first() if key else None
    # Compute a digest even for an unknown key, so both failures cost the same time.
    secret = partner.secret if partner else "unknown-partner"
    signed_text = (timestamp or "").encode() + b"." + body
    expected = hmac.new(secret.encode(), signed_text, hashlib.sha256).hexdigest().encode()
    signed = hmac.compare_digest(expected, (signature or "").strip().lower().encode())
    moment = _timestamp(timestamp)
    fresh = moment is not None and abs((now or utcnow()) - moment) <= PARTNER_CLOCK_SKEW
    if partner is None or not signed or not fresh:
        raise errors.InvalidSignature()
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
    replay (the same member and points) returns the first credit."""
    credits = PartnerCredit._get_collection()
    query = {"partner_id": partner.pk, "partner_txn_id": partner_txn_id}
    owner = find_active_owner(member_id, member_phone)
    if (first := credits.find_one(query)) is not None:
        return _same_credit(first, owner, points), False
    if points > partner.max_points_per_txn:
        raise errors.OverCap(max_points_per_txn=partner.max_points_per_txn)
    if owner is None:
        raise errors.UnknownMember()
    now = now or utcnow()
    key = f"partner:{partner.pk}:{partner_txn_id}"

    def unit(session: ClientSession) -> bool:
        if credits.find_one(query, {"_id": 1}, session=session) is not None:
            return False
        entry = ledger.earn(
            session,
            ledger.Movement(
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
    return _same_credit(credit, owner, points), created


def _same_credit(credit: dict[str, Any], owner: Owner | None, points: int) -> dict[str, Any]:
    """The stored credit, when the request names its member and points: a request that
    reuses the transaction id for anyone or anything else is not a replay."""
    if owner is None or credit["user_id"] != owner.pk or credit["points"] != points:
        raise errors.PartnerTxnReused()
    return credit
