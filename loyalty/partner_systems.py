"""Ecosystem partners (charging operators, car washes, mobility platforms) and how their
systems authenticate: an API key, an HMAC-SHA256 signature of the timestamp and the body
with one of the partner's secrets (two during a rotation), and a timestamp window. Also the
partner's business day, which its caps, statements and settlements count in, and the daily
totals that hold its caps.

Not to be confused with city partners (`partners/`), the operators whose circle leaders run
a city. What partners move is in `loyalty.partner_transactions`; their daily statements in
`loyalty.statements`, their months in `loyalty.settlement`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from mongoengine.queryset import QuerySet

from app.auth import Caller
from app.clock import utcnow
from app.db import Writes, get_or_404
from loyalty import errors
from loyalty.models import CREDIT, EcosystemPartner, PartnerDayTotal

log = structlog.get_logger()


PARTNER_CLOCK_SKEW = timedelta(minutes=5)
# How long the previous secret keeps working after a rotation unless the admin says.
DEFAULT_ROTATION_OVERLAP = timedelta(hours=24)
# Settings an admin may change after registering a partner.
SETTINGS = (
    "name",
    "max_points_per_txn",
    "daily_credit_cap",
    "daily_debit_cap",
    "timezone",
    "cutoff",
    "currency",
    "credit_rate_per_1000",
    "debit_rate_per_1000",
    "active",
)


def _new_secret() -> str:
    return secrets.token_hex(32)


def create_partner(
    admin: Caller, name: str, max_points_per_txn: int, **settings: Any
) -> tuple[EcosystemPartner, str]:
    """Returns the partner and its secret, which is shown this once."""
    admin.require_admin()
    secret = _new_secret()
    partner = EcosystemPartner(
        name=name,
        key=f"pk_{secrets.token_hex(12)}",
        secret=secret,
        max_points_per_txn=max_points_per_txn,
        created_by=admin.user.pk,
        **settings,
    ).save()
    log.info("ecosystem_partner_created", partner_id=str(partner.pk), name=name, by=admin.id)
    return partner, secret


def partner_for(admin: Caller, partner_id: str) -> EcosystemPartner:
    """An ecosystem partner, for admins; a malformed or unknown id is not found."""
    admin.require_admin()
    return get_or_404(EcosystemPartner, partner_id)


def all_partners(admin: Caller) -> QuerySet:
    admin.require_admin()
    return EcosystemPartner.objects


def update_partner(admin: Caller, partner_id: str, changes: dict[str, Any]) -> EcosystemPartner:
    """Change a partner's settings (caps, business day, prices, activity); its key and
    secrets change only by rotation."""
    partner = partner_for(admin, partner_id)
    changes = {name: value for name, value in changes.items() if name in SETTINGS}
    if changes:
        EcosystemPartner.objects(pk=partner.pk).update_one(
            **{f"set__{name}": value for name, value in changes.items()}
        )
        partner.reload()
    log.info(
        "ecosystem_partner_updated", partner_id=partner_id, changes=sorted(changes), by=admin.id
    )
    return partner


def rotate_secret(
    admin: Caller,
    partner_id: str,
    overlap: timedelta = DEFAULT_ROTATION_OVERLAP,
    now: datetime | None = None,
) -> tuple[EcosystemPartner, str]:
    """Issue a new secret; the current one keeps working for `overlap` (zero: not at all),
    so the partner can deploy the new one without a moment of refused requests. A secret
    still in its overlap from an earlier rotation stops working now: two at most."""
    partner = partner_for(admin, partner_id)
    now = now or utcnow()
    secret = _new_secret()
    EcosystemPartner.objects(pk=partner.pk).update_one(
        set__secret=secret,
        set__previous_secret=partner.secret if overlap > timedelta(0) else None,
        set__previous_secret_until=now + overlap if overlap > timedelta(0) else None,
        set__secret_rotated_at=now,
    )
    log.info("ecosystem_partner_secret_rotated", partner_id=partner_id, by=admin.id)
    return partner.reload(), secret


def retire_previous_secret(admin: Caller, partner_id: str) -> EcosystemPartner:
    """End a rotation early: only the newest secret signs from now on."""
    partner = partner_for(admin, partner_id)
    EcosystemPartner.objects(pk=partner.pk).update_one(
        unset__previous_secret=True, unset__previous_secret_until=True
    )
    log.info("ecosystem_partner_previous_secret_retired", partner_id=partner_id, by=admin.id)
    return partner.reload()


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


def _signed_with(secret: str, signed_text: bytes, signature: bytes) -> bool:
    expected = hmac.new(secret.encode(), signed_text, hashlib.sha256).hexdigest().encode()
    return hmac.compare_digest(expected, signature)


def authenticate_partner(
    key: str | None,
    signature: str | None,
    timestamp: str | None,
    body: bytes,
    now: datetime | None = None,
) -> EcosystemPartner:
    """Check the key, the HMAC-SHA256 of `<timestamp>.<raw body>` and the timestamp window.
    One answer for every failure, so a caller cannot learn which part was wrong.

    The timestamp is signed with the body (as Stripe does): unsigned, a captured request
    could be replayed at any time with a fresh one. During a rotation either secret signs."""
    now = now or utcnow()
    partner = EcosystemPartner.objects(key=key, active=True).first() if key else None
    # Compute both digests even for an unknown key or a partner with one secret, so that
    # every failure costs the same time.
    current, previous = "unknown-partner", None
    if partner is not None:
        current = partner.secret
        if partner.previous_secret_until is not None and now < partner.previous_secret_until:
            previous = partner.previous_secret
    signed_text = (timestamp or "").encode() + b"." + body
    given = (signature or "").strip().lower().encode()
    signed = [_signed_with(secret, signed_text, given) for secret in (current, previous or "")]
    moment = _timestamp(timestamp)
    fresh = moment is not None and abs(now - moment) <= PARTNER_CLOCK_SKEW
    if partner is None or not (signed[0] or (previous and signed[1])) or not fresh:
        raise errors.InvalidSignature()
    return partner


# --- the partner's business day ----------------------------------------------------------


def _zone_and_cutoff(partner: EcosystemPartner) -> tuple[ZoneInfo, time]:
    return ZoneInfo(partner.timezone), time.fromisoformat(partner.cutoff)


def business_day(partner: EcosystemPartner, moment: datetime) -> str:
    """The partner's business day `moment` falls in (YYYY-MM-DD): its day runs from the
    cut-off time to the next day's, in its time zone."""
    zone, cutoff = _zone_and_cutoff(partner)
    local = moment.astimezone(zone)
    day = local.date()
    if local.time() < cutoff:
        day -= timedelta(days=1)
    return day.isoformat()


def day_window(partner: EcosystemPartner, day: date) -> tuple[datetime, datetime]:
    """When business day `day` begins and ends, in UTC (a DST change makes it 23 or 25
    hours long)."""
    zone, cutoff = _zone_and_cutoff(partner)
    start = datetime.combine(day, cutoff, zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), cutoff, zone).astimezone(UTC)
    return start, end


def day_total_id(partner_id: Any, day: str, direction: str) -> str:
    return f"{partner_id}:{day}:{direction}"


def count_movement(
    writes: Writes,
    partner: EcosystemPartner,
    day: str,
    direction: str,
    booked: int,
    *,
    through_api: int = 0,
) -> None:
    """Queue the day total's change: `booked` points (signed) in `direction`, and, for a
    credit or debit the partner sent, `through_api` points towards its daily cap.

    The cap needs no read: the update's filter holds only while the cap has room, and
    otherwise its upsert collides with the existing day's `_id`, which the unit's batch
    turns into `daily_cap_reached`."""
    cap = partner.daily_credit_cap if direction == CREDIT else partner.daily_debit_cap
    refusal = errors.DailyCapReached(direction=direction, cap=cap) if cap else None
    if refusal is not None and through_api > cap:
        raise refusal
    total_id = day_total_id(partner.pk, day, direction)
    condition: dict[str, Any] = {"_id": total_id}
    if refusal is not None and through_api:
        condition["through_api"] = {"$lte": cap - through_api}
    writes.update(
        PartnerDayTotal._get_collection(),
        condition,
        {
            "$inc": {"booked": booked, "through_api": through_api, "movements": 1},
            "$setOnInsert": {"partner_id": partner.pk, "day": day, "direction": direction},
        },
        upsert=True,
        duplicate=refusal,
    )
