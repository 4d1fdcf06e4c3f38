"""Pay codes: how an owner pays part of a charging session (or a car wash) with points.

The app asks for a code, shows its six digits and a QR code of them, and the partner's
system sends a signed debit naming the code (`partner_transactions.debit_with_pay_code`).
A code lives two minutes, pays once, at most the points the owner set, and only at the
partner the owner chose, if they chose one.

Six digits are few: a code is its document's `_id`, and a number is issued again only
`REISSUE_AFTER` past its expiry, so a late or repeated request naming an old code finds it
expired (or used) rather than paying with someone else's. A partner guessing numbers is
slowed by the limit on refused pay codes (`RATELIMIT_PAY_CODE_FAILURES_PER_PARTNER`).
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

import structlog
from pymongo.errors import DuplicateKeyError

from accounts.services import Owner
from app.clock import utcnow
from app.db import object_id
from app.errors import ServiceUnavailable
from loyalty import errors
from loyalty.models import EcosystemPartner, PayCode
from loyalty.partner_transactions import to_millis

log = structlog.get_logger()

LIFETIME = timedelta(minutes=2)
REISSUE_AFTER = timedelta(hours=1)
DIGITS = 6
# What the QR code carries before the digits, so that a partner's scanner tells our codes
# from other QR codes; a debit may name the code either way.
QR_PREFIX = "ocpay:"
# Ten numbers taken in a row are a full code space, not bad luck.
_ATTEMPTS = 10


def issue_pay_code(
    owner: Owner, max_points: int, partner_id: str | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """A new code for `owner`, for at most `max_points`, at `partner_id` if given (422
    `unknown_partner` for no active ecosystem partner). The balance is checked when the
    partner debits, as the owner may earn or spend in between."""
    partner = None
    if partner_id is not None:
        partner_oid = object_id(partner_id)
        partner = EcosystemPartner.objects(pk=partner_oid, active=True).first()
        if partner_oid is None or partner is None:
            raise errors.UnknownPartner()
    now = to_millis(now or utcnow())
    document = {
        "user_id": owner.pk,
        "city_code": owner.city_code,
        "partner_id": partner.pk if partner else None,
        "max_points": max_points,
        "issued_at": now,
        "expires_at": now + LIFETIME,
        "used_at": None,
        "used_by": None,
        "used_for": None,
    }
    codes = PayCode._get_collection()
    for _ in range(_ATTEMPTS):
        code = f"{secrets.randbelow(10**DIGITS):0{DIGITS}d}"
        try:
            # Takes the number when it is free or long expired; a live (or recent) holder
            # keeps it, and the upsert then collides with its `_id`.
            codes.update_one(
                {"_id": code, "expires_at": {"$lt": now - REISSUE_AFTER}},
                {"$set": document},
                upsert=True,
            )
        except DuplicateKeyError:
            continue
        log.info("pay_code_issued", user_id=str(owner.pk), max_points=max_points)
        return {
            "code": code,
            "qr": f"{QR_PREFIX}{code}",
            "max_points": max_points,
            "partner_id": partner.pk if partner else None,
            "partner_name": partner.name if partner else None,
            "expires_at": document["expires_at"],
        }
    # Most numbers are live or recently used: ask the app to try again in a moment.
    log.warning("pay_codes_exhausted", attempts=_ATTEMPTS)
    raise ServiceUnavailable(message="No pay code is free just now; try again.", retry_after=2)


def code_of(pay_code: str) -> str:
    """The digits of a pay code sent as digits or as the QR code's text."""
    return pay_code.removeprefix(QR_PREFIX)
