"""Signed tickets (the QR code an owner shows at the door) and check-in, which records
`event.attended` in the same transaction as the attendance.

A ticket is `T1.<claims>.<signature>`: the claims are compact JSON in unpadded base64url
(`k` the key id, `e` the event, `t` the ticket id, which is the registration's id, `u` the
owner, `x` the expiry in Unix seconds) and the signature is Ed25519, by a key of the city
partner that runs the event (`events.ticket_keys`), over the ASCII text `T1.<claims>`, in
unpadded base64url. A door device verifies it with the public keys of the event's door kit
(`events.door`). Tickets issued before Ed25519 (itsdangerous, signed with SECRET_KEY) are
still accepted here, online.

A check-in may carry a `nonce` (one per scan), the device and the time of the scan: the same
nonce again changes nothing and answers what the first did. A scan made offline (`offline`)
that the server would refuse is kept as a conflict for the event's leaders, with the
refusal's slug as its reason, never dropped; whatever arrives, an owner is checked in, and
paid, at most once per event (the registration moves from confirmed to attended once).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from bson import ObjectId
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from pymongo.client_session import ClientSession
from pymongo.errors import DuplicateKeyError

from app.auth import Caller, load_caller
from app.clock import utcnow
from app.db import batch, object_id, transaction
from app.errors import DomainError, NotFound
from app.outbox import record_event
from events import errors, ticket_keys
from events.access import is_staff, managed_event, visible_event
from events.domain_events import EVENT_ATTENDED, EventAttended
from events.listings import city_time
from events.models import (
    ACTIVE,
    ATTENDED,
    CANCELLED,
    CONFIRMED,
    PUBLISHED,
    SCAN_ATTENDED,
    SCAN_CONFLICT,
    WAITLISTED,
    CheckInScan,
    Event,
    Registration,
)
from partners import budget

log = structlog.get_logger()


# A ticket stays valid a while after the event ends, for late check-ins by hand.
TICKET_GRACE = timedelta(hours=6)
# Check-in opens this long before the start (the doors open early) and closes with the
# tickets, TICKET_GRACE after the end.
CHECK_IN_OPENS = timedelta(hours=2)
TICKET_VERSION = "T1"
_LEGACY_SALT = "event-ticket"

# What a check-in answers: checked in now, already checked in (nothing new), or an offline
# scan kept as a conflict.
CHECKED_IN, ALREADY_IN, KEPT_AS_CONFLICT = 201, 200, 202
# Conflict reasons that are not the slug of a refusal.
ALREADY_CHECKED_IN = "already_checked_in"
TICKET_REVOKED = "ticket_revoked"
NOT_REGISTERED = "not_registered"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def ticket_token(event: Event, registration_id: Any, user_id: Any, expires_at: datetime) -> str:
    """A ticket for `user_id`'s registration, signed with the event's partner's key."""
    key = ticket_keys.signing_key(event.city_code, event.city_partner_id)
    claims = {
        "k": key.kid,
        "e": str(event.pk),
        "t": str(registration_id),
        "u": str(user_id),
        "x": int(expires_at.timestamp()),
    }
    signed = f"{TICKET_VERSION}.{_b64(json.dumps(claims, separators=(',', ':')).encode())}"
    return f"{signed}.{_b64(key.private_key.sign(signed.encode()))}"


@dataclass(frozen=True)
class Ticket:
    owner_id: ObjectId
    # The registration it was issued for; None for a ticket issued before Ed25519.
    ticket_id: ObjectId | None = None


def read_ticket(token: str, event: Event, at: datetime | None = None) -> Ticket:
    """The owner (and registration) a ticket was issued to, if it is genuine, signed by a
    key of the event's partner that still verifies, for this event and unexpired at `at`
    (422 `invalid_ticket` otherwise)."""
    at = at or utcnow()
    if not token.startswith(f"{TICKET_VERSION}."):
        return Ticket(_legacy_owner(token, event.pk, at))
    try:
        _, claims_text, signature = token.split(".")
        signed = f"{TICKET_VERSION}.{claims_text}"
        claims = json.loads(_unb64(claims_text))
        key = ticket_keys.verifying_key(str(claims["k"]), at) if isinstance(claims, dict) else None
        if key is None or (key.city_code, key.city_partner_id) != (
            event.city_code,
            event.city_partner_id,
        ):
            raise errors.InvalidTicket()
        public_key = Ed25519PublicKey.from_public_bytes(base64.b64decode(key.public_key))
        public_key.verify(_unb64(signature), signed.encode())
    except (ValueError, KeyError, TypeError, binascii.Error, InvalidSignature):
        raise errors.InvalidTicket() from None
    owner_id, ticket_id = object_id(claims.get("u")), object_id(claims.get("t"))
    expiry = claims.get("x")
    if (
        claims.get("e") != str(event.pk)
        or owner_id is None
        or ticket_id is None
        or not isinstance(expiry, int)
        or expiry < at.timestamp()
    ):
        raise errors.InvalidTicket()
    return Ticket(owner_id, ticket_id)


def _legacy_serializer() -> URLSafeSerializer:
    # itsdangerous signs with the last key and verifies with each.
    keys = [current_app.config.get("SECRET_KEY_PREVIOUS"), current_app.config["SECRET_KEY"]]
    return URLSafeSerializer([key for key in keys if key], salt=_LEGACY_SALT)


def _legacy_owner(token: str, event_id: ObjectId, at: datetime) -> ObjectId:
    """The owner of a ticket issued before Ed25519 (online only: it needs SECRET_KEY)."""
    try:
        claims = _legacy_serializer().loads(token)
    except BadSignature:
        raise errors.InvalidTicket() from None
    if not isinstance(claims, dict) or claims.get("e") != str(event_id):
        raise errors.InvalidTicket()
    expiry = claims.get("x")
    owner_id = object_id(claims.get("u"))
    if not isinstance(expiry, int) or expiry < at.timestamp() or owner_id is None:
        raise errors.InvalidTicket()
    return owner_id


def issue_ticket(caller: Caller, event_id: str) -> dict[str, Any]:
    """A signed ticket for a confirmed owner, valid until a while after the event ends."""
    event = visible_event(caller, event_id)
    registration = Registration.objects(event_id=event.pk, user_id=caller.user.pk).first()
    if registration is None or registration.status not in ACTIVE:
        raise NotFound(message="You are not registered for this event.")
    if registration.status == WAITLISTED:
        raise errors.NotConfirmed(message="Waitlisted registrations have no ticket yet.")
    expires_at = event.ends_at + TICKET_GRACE
    return {
        "token": ticket_token(event, registration.pk, caller.user.pk, expires_at),
        "ticket_id": registration.pk,
        "event_id": event.pk,
        "expires_at": expires_at,
    }


@dataclass(frozen=True)
class Scan:
    """How the door saw a check-in: its nonce (None: a check-in without one), device, time,
    and whether the device was offline."""

    nonce: str | None = None
    device_id: str | None = None
    scanned_at: datetime | None = None
    offline: bool = False

    @classmethod
    def taken_from(cls, body: dict[str, Any]) -> Scan:
        """The scan's fields, taken out of a check-in's body (what is left names the owner)."""
        names = ("nonce", "device_id", "scanned_at", "offline")
        return cls(**{name: body.pop(name) for name in names if name in body})


@dataclass
class CheckIn:
    """What a check-in did: `status_code` CHECKED_IN, ALREADY_IN or KEPT_AS_CONFLICT, the
    registration (when the ticket named one) and, for a scan with a nonce, its record."""

    status_code: int
    registration: Registration | None = None
    scan: CheckInScan | None = None


class _AlreadyIn(Exception):
    """An offline scan of an owner already checked in (the same ticket scanned on two
    devices): a conflict, where online it is answered ALREADY_IN."""


class _NonceUsed(Exception):
    """The scan's nonce was recorded first by another request (raised out of the
    transaction, which it aborts)."""


@dataclass
class _Seen:
    """What a check-in learnt before it was refused, for the conflict it may become."""

    owner_id: ObjectId | None = None
    registration: Registration | None = None


def check_in(
    caller: Caller,
    event_id: str,
    *,
    token: str | None = None,
    user_id: str | None = None,
    scan: Scan = Scan(),
) -> CheckIn:
    """Mark a confirmed owner as attended, with `event.attended` in the same transaction.

    Staff cannot pay themselves: nobody checks themselves in (403 `self_check_in`), and
    staff of any city (circle leaders and ambassadors, and admins) are checked in with no
    points, so two leaders cannot check each other in for the reward either.
    Check-in is open from CHECK_IN_OPENS before the start until the tickets expire
    (409 `check_in_closed` otherwise), at the time of the scan.

    With a nonce, the first answer is kept: the same nonce again answers it and changes
    nothing. An offline scan that would be refused is kept as a conflict (KEPT_AS_CONFLICT)
    rather than refused, so nothing a door saw is lost.
    """
    event = managed_event(caller, event_id)
    if scan.nonce is not None:
        first = CheckInScan.objects(event_id=event.pk, nonce=scan.nonce).first()
        if first is not None:
            return _answered(first)
    now = utcnow()
    # To the millisecond, as MongoDB keeps it: a scan's answer is the same given again.
    at = scan.scanned_at or now
    at = at.replace(microsecond=at.microsecond // 1000 * 1000)
    seen = _Seen()
    try:
        registration = _admissible(caller, event, token, user_id, at, seen)
        if registration.status == ATTENDED:
            if scan.offline:
                raise _AlreadyIn()
            return CheckIn(ALREADY_IN, registration)
        return _attend(caller, event, registration, at, scan, now)
    except (DomainError, _AlreadyIn) as refusal:
        if not scan.offline or scan.nonce is None:
            raise
        return _keep_conflict(caller, event, scan, at, now, seen, _reason(refusal, seen))
    except _NonceUsed:
        return _answered(CheckInScan.objects.get(event_id=event.pk, nonce=scan.nonce))


def _admissible(
    caller: Caller,
    event: Event,
    token: str | None,
    user_id: str | None,
    at: datetime,
    seen: _Seen,
) -> Registration:
    """The registration a check-in at `at` admits (attended already, or confirmed), or the
    refusal it meets."""
    owner_id = read_ticket(token, event, at).owner_id if token is not None else object_id(user_id)
    seen.owner_id = owner_id
    if owner_id == caller.user.pk:
        raise errors.SelfCheckIn()
    if event.status != PUBLISHED:
        raise errors.EventClosed(message=f"Check-in is closed: the event is {event.status}.")
    registration = Registration.objects(event_id=event.pk, user_id=owner_id).first()
    seen.registration = registration
    if registration is None or registration.status == CANCELLED:
        raise NotFound(message="This owner is not registered for this event.")
    if registration.status == ATTENDED:
        return registration
    opens_at, closes_at = event.starts_at - CHECK_IN_OPENS, event.ends_at + TICKET_GRACE
    if not opens_at <= at <= closes_at:
        raise errors.CheckInClosed(
            opens_at=city_time(event, opens_at).isoformat(),
            closes_at=city_time(event, closes_at).isoformat(),
        )
    if registration.status != CONFIRMED:
        raise errors.NotConfirmed(message=f"This registration is {registration.status}.")
    return registration


def _attend(
    caller: Caller,
    event: Event,
    registration: Registration,
    at: datetime,
    scan: Scan,
    now: datetime,
) -> CheckIn:
    owner_id = registration.user_id
    attendee = load_caller(owner_id)
    staff = attendee is not None and is_staff(attendee)
    record = _scan_record(caller, event, scan, at, now, SCAN_ATTENDED, CHECKED_IN, registration)

    def unit(session: ClientSession) -> bool:
        attended = Registration._get_collection().update_one(
            {"_id": registration.pk, "status": CONFIRMED},
            {
                "$set": {
                    "status": ATTENDED,
                    "attended_at": at,
                    "checked_in_by": caller.user.pk,
                    "staff_at_check_in": staff,
                }
            },
            session=session,
        )
        if attended.matched_count == 0:
            return False
        if record is not None:
            # First in the batch: a nonce recorded meanwhile aborts the whole unit.
            batch(session).insert(
                CheckInScan._get_collection(), record.to_mongo(), duplicate=_NonceUsed(), first=True
            )
        if event.city_partner_id is not None:  # a partner's event: its budget pays
            budget.draw(session, event.pk, registration.pk, 0 if staff else event.points_reward)
        record_event(
            session,
            EVENT_ATTENDED,
            EventAttended(str(owner_id), str(event.pk), 0 if staff else event.points_reward),
            subject_id=registration.pk,
            actor_id=caller.user.pk,
            city_code=event.city_code,
        )
        return True

    checked_in = transaction(unit)
    if checked_in:
        # What the transaction wrote, without reading it back.
        registration.status, registration.attended_at = ATTENDED, at
        registration.checked_in_by = caller.user.pk
    else:
        registration.reload()
        # Another check-in of this owner committed first.
        if registration.status == ATTENDED and not scan.offline:
            return CheckIn(ALREADY_IN, registration)
        if registration.status == ATTENDED:
            raise _AlreadyIn()
        raise errors.NotConfirmed(message=f"This registration is {registration.status}.")
    log.info(
        "checked_in",
        event_id=str(event.pk),
        user_id=str(owner_id),
        by=caller.id,
        offline=scan.offline,
        device_id=scan.device_id,
    )
    return CheckIn(CHECKED_IN, registration, record)


def _scan_record(
    caller: Caller,
    event: Event,
    scan: Scan,
    at: datetime,
    now: datetime,
    outcome: str,
    status_code: int,
    registration: Registration | None,
    owner_id: ObjectId | None = None,
    reason: str | None = None,
) -> CheckInScan | None:
    if scan.nonce is None:
        return None
    return CheckInScan(
        id=ObjectId(),
        event_id=event.pk,
        nonce=scan.nonce,
        device_id=scan.device_id,
        offline=scan.offline,
        scanned_at=at,
        received_at=now,
        scanned_by=caller.user.pk,
        registration_id=registration.pk if registration is not None else None,
        user_id=registration.user_id if registration is not None else owner_id,
        outcome=outcome,
        reason=reason,
        status_code=status_code,
    )


def _reason(refusal: Exception, seen: _Seen) -> str:
    """Why an offline scan is a conflict: the slug the server would have refused it with,
    or, where a refusal covers several cases, the case."""
    if isinstance(refusal, NotFound):
        cancelled = seen.registration is not None and seen.registration.status == CANCELLED
        return TICKET_REVOKED if cancelled else NOT_REGISTERED
    if isinstance(refusal, _AlreadyIn):
        return ALREADY_CHECKED_IN
    return str(getattr(refusal, "error", "refused"))


def _keep_conflict(
    caller: Caller,
    event: Event,
    scan: Scan,
    at: datetime,
    now: datetime,
    seen: _Seen,
    reason: str,
) -> CheckIn:
    record = _scan_record(
        caller,
        event,
        scan,
        at,
        now,
        SCAN_CONFLICT,
        KEPT_AS_CONFLICT,
        seen.registration,
        owner_id=seen.owner_id,
        reason=reason,
    )
    assert record is not None  # offline scans carry a nonce (the schema requires it)
    try:
        CheckInScan._get_collection().insert_one(record.to_mongo())
    except DuplicateKeyError:
        return _answered(CheckInScan.objects.get(event_id=event.pk, nonce=scan.nonce))
    log.warning(
        "check_in_conflict",
        event_id=str(event.pk),
        reason=reason,
        device_id=scan.device_id,
        by=caller.id,
    )
    return CheckIn(KEPT_AS_CONFLICT, seen.registration, record)


def _answered(scan: CheckInScan) -> CheckIn:
    """What the first request with this scan's nonce answered, given again."""
    registration = (
        Registration.objects(pk=scan.registration_id).first() if scan.registration_id else None
    )
    return CheckIn(scan.status_code, registration, scan)
