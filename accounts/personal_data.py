"""An owner's personal data: accounts' section of its export (GET /me/export) and its
erasure (DELETE /me), after which the account's records stay but identify nobody."""

from __future__ import annotations

import secrets
from typing import Any

import structlog
from pymongo.client_session import ClientSession

from accounts.credentials import hash_password
from accounts.domain_events import USER_ERASED
from accounts.models import RoleGrant, User, Vehicle
from app.clock import utcnow
from app.db import transaction
from app.outbox import NoPayload, record_event

log = structlog.get_logger()


def export_account(user_id: Any) -> dict[str, Any]:
    user = User.objects.get(pk=user_id)
    return {
        "profile": {
            field: user[field]
            for field in (
                "email",
                "phone",
                "display_name",
                "avatar_url",
                "city_code",
                "city_since",
                "locale",
                "verified_owner",
                "referral_code",
                "created_at",
                # A keyed hash of the sign-up IP and device, kept CLIENT_FINGERPRINT_DAYS.
                "client_fingerprint",
            )
        },
        "vehicles": [
            {
                field: vehicle[field]
                for field in ("vin", "model", "delivered_on", "status", "city_code", "created_at")
            }
            for vehicle in Vehicle.objects(owner_id=user.pk)
        ],
        "roles": [
            {"role": grant.role, "city_codes": grant.city_codes}
            for grant in RoleGrant.objects(user_id=user.pk)
        ],
        # Where and when the owner is logged in; the refresh hashes are ours, not theirs.
        "sessions": [
            {field: session[field] for field in ("device", "created_at", "last_used_at")}
            for session in user.sessions
        ],
    }


def erase_account(user: User) -> None:
    """Erase the owner's personal data; records stay so that ledger totals and event
    figures remain consistent, but nothing in them identifies the person any more."""

    def unit(session: ClientSession) -> None:
        User._get_collection().update_one(
            {"_id": user.pk},
            {
                "$set": {
                    "display_name": "Deleted user",
                    "erased_at": utcnow(),
                    "password_hash": hash_password(secrets.token_urlsafe(32)),
                    "sessions": [],
                    "grants": [],
                },
                "$unset": {
                    "email": "",
                    "phone": "",
                    "avatar_url": "",
                    "password_reset": "",
                    "client_fingerprint": "",
                },
            },
            session=session,
        )
        # A VIN identifies a person through vehicle registries: keep the row, drop the VIN.
        for vehicle in Vehicle._get_collection().find(
            {"owner_id": user.pk}, {"_id": 1}, session=session
        ):
            Vehicle._get_collection().update_one(
                {"_id": vehicle["_id"]},
                {"$set": {"vin": f"ERASED-{vehicle['_id']}"}},
                session=session,
            )
        RoleGrant._get_collection().delete_many({"user_id": user.pk}, session=session)
        record_event(
            session,
            USER_ERASED,
            NoPayload(),
            subject_id=user.pk,
            actor_id=user.pk,
            city_code=user.city_code,
        )

    transaction(unit)
    log.info("user_erased", user_id=str(user.pk))
