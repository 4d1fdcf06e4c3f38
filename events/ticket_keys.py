"""The Ed25519 keys that sign event tickets: each city partner's own (HQ's per city where
no partner runs it), rotated, several verifying at once, so a door device checks a ticket
with a public key and no secret.

No private key is stored. Each is derived (HKDF-SHA256) from a SECRET_KEY and the key's id,
and the key records which SECRET_KEY (`secret_id`, the same public name JWTs carry in
`kid`): the database holds only public keys, and a key whose SECRET_KEY was retired cannot
sign any more, while its public key still verifies what it signed as long as that
SECRET_KEY is configured (as SECRET_KEY_PREVIOUS after a rotation). A SECRET_KEY rotation
therefore rotates every ticket key on its next signature, and dropping the previous
SECRET_KEY ends the keys made from it, as it ends the tokens it signed.

A key signs until it is rotated (every TICKET_KEY_ROTATION_DAYS, `rotate_keys`), then
verifies until `verifies_until`: the expiry of the last ticket it may have signed, known
a little after the rotation, once no request may still be signing with it. A key is
retired by hand (`retire_key`) when it must stop verifying at once.
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from bson import ObjectId
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from flask import current_app

from app.auth import key_id, signing_keys
from app.clock import utcnow
from events.models import Event, TicketKey

log = structlog.get_logger()

# How long a process keeps a key it verified tickets with (one read saved per scan), and so
# how long a retirement takes to reach every process. A rotated key is out of every
# request's hands well within it.
KEY_KEPT_SECONDS = 60.0


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: Ed25519PrivateKey


def _derive(secret: str, kid: str) -> Ed25519PrivateKey:
    seed = HKDF(algorithm=SHA256(), length=32, salt=None, info=f"ticket-key:{kid}".encode())
    return Ed25519PrivateKey.from_private_bytes(seed.derive(secret.encode()))


def public_key_text(private_key: Ed25519PrivateKey) -> str:
    raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def _issuer(city_code: str, city_partner_id: ObjectId | None) -> dict[str, Any]:
    return {"city_code": city_code, "city_partner_id": city_partner_id}


def create_key(city_code: str, city_partner_id: ObjectId | None) -> TicketKey:
    """A new signing key for the partner (or HQ in the city), from the current SECRET_KEY."""
    secret = current_app.config["SECRET_KEY"]
    kid = secrets.token_hex(6)
    key = TicketKey(
        kid=kid,
        city_code=city_code,
        city_partner_id=city_partner_id,
        public_key=public_key_text(_derive(secret, kid)),
        secret_id=key_id(secret),
        created_at=utcnow(),
    )
    key.save(force_insert=True)
    log.info("ticket_key_created", kid=kid, city=city_code, city_partner_id=str(city_partner_id))
    return key


# The keys this process verified tickets with, by kid, for KEY_KEPT_SECONDS: a door checks
# many tickets of one key in a row.
_verifying: dict[str, tuple[float, TicketKey | None]] = {}
_verifying_lock = threading.Lock()


def forget_keys() -> None:
    """Forget the keys this process keeps (a retirement reaches it at once)."""
    with _verifying_lock:
        _verifying.clear()


def signing_key(city_code: str, city_partner_id: ObjectId | None) -> SigningKey:
    """The key that signs the partner's (or HQ's) tickets now: its newest key that is not
    rotated and comes from the current SECRET_KEY, created when there is none. Read each
    time (tickets are fetched far less often than they are checked), so a rotation or a
    retirement stops it signing at once."""
    secret = current_app.config["SECRET_KEY"]
    found = (
        TicketKey.objects(
            **_issuer(city_code, city_partner_id),
            secret_id=key_id(secret),
            rotated_at=None,
            retired_at=None,
        )
        .order_by("-created_at")
        .first()
    ) or create_key(city_code, city_partner_id)
    return SigningKey(found.kid, _derive(secret, found.kid))


def verifying_key(kid: str, now: datetime | None = None) -> TicketKey | None:
    """The key `kid` names while it verifies tickets (None: unknown, retired or past
    `verifies_until`)."""
    kept = _verifying.get(kid)
    if kept is not None and time.monotonic() - kept[0] < KEY_KEPT_SECONDS:
        key = kept[1]
    else:
        key = TicketKey.objects(kid=kid).first()
        with _verifying_lock:
            _verifying[kid] = (time.monotonic(), key)
    return key if key is not None and _verifies(key, now or utcnow()) else None


def _verifies(key: TicketKey, now: datetime) -> bool:
    """Not retired, not past `verifies_until`, and derived from a SECRET_KEY still
    configured: dropping SECRET_KEY_PREVIOUS (after a leak) ends the keys made from it."""
    return (
        key.retired_at is None
        and (key.verifies_until is None or key.verifies_until >= now)
        and key.secret_id in signing_keys()
    )


def verifying_keys(
    city_code: str, city_partner_id: ObjectId | None, now: datetime | None = None
) -> list[TicketKey]:
    """Every key that verifies the partner's (or HQ's) tickets now, newest first: what a
    door kit carries. A partner with no key yet gets its first, so a kit made before any
    ticket was issued still verifies the tickets issued after it."""
    now = now or utcnow()
    keys = [
        key
        for key in TicketKey.objects(
            **_issuer(city_code, city_partner_id), retired_at=None
        ).order_by("-created_at")
        if _verifies(key, now)
    ]
    if not any(key.rotated_at is None for key in keys):
        keys.insert(0, TicketKey.objects(kid=signing_key(city_code, city_partner_id).kid).get())
    return keys


def rotate_keys(
    ticket_lifetime_after_end: timedelta,
    rotation: timedelta | None = None,
    now: datetime | None = None,
) -> dict[str, int]:
    """The periodic turn: rotate every signing key older than `rotation`
    (TICKET_KEY_ROTATION_DAYS) or made from a SECRET_KEY that no longer signs, making its
    successor at once so that door kits carry it before any ticket does; and give each key
    rotated more than KEY_KEPT_SECONDS ago its `verifies_until`: the latest end of the events
    published while it could still sign, plus `ticket_lifetime_after_end`."""
    now = now or utcnow()
    if rotation is None:
        rotation = timedelta(days=current_app.config["TICKET_KEY_ROTATION_DAYS"])
    current = key_id(current_app.config["SECRET_KEY"])
    rotated = settled = 0
    # Listed first: the successors made below must not come up in the same turn.
    for key in list(TicketKey.objects(rotated_at=None, retired_at=None)):
        if key.secret_id == current and key.created_at > now - rotation:
            continue
        if TicketKey.objects(pk=key.pk, rotated_at=None).update_one(set__rotated_at=now):
            create_key(key.city_code, key.city_partner_id)
            rotated += 1
            log.info("ticket_key_rotated", kid=key.kid)
    held_until = now - timedelta(seconds=2 * KEY_KEPT_SECONDS)
    for key in TicketKey.objects(rotated_at__lte=held_until, verifies_until=None, retired_at=None):
        last = (
            Event.objects(
                city_code=key.city_code,
                city_partner_id=key.city_partner_id,
                published_at__lte=key.rotated_at + timedelta(seconds=2 * KEY_KEPT_SECONDS),
            )
            .order_by("-ends_at")
            .only("ends_at")
            .first()
        )
        until = (last.ends_at if last else key.rotated_at) + ticket_lifetime_after_end
        key.update(set__verifies_until=max(until, key.rotated_at))
        settled += 1
    return {"rotated": rotated, "settled": settled}


def retire_key(kid: str) -> bool:
    """Stop a key verifying at once (every process within KEY_KEPT_SECONDS): tickets it
    signed are refused, and their owners' apps fetch new ones. False when unknown."""
    now = utcnow()
    key = TicketKey.objects(kid=kid).first()
    if key is None:
        return False
    key.update(set__retired_at=now, set__rotated_at=key.rotated_at or now)
    log.warning("ticket_key_retired", kid=kid)
    return True
