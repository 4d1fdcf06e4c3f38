"""Owners' vehicles and the verification of their ownership by the circle leaders of the
vehicle's city. Verifying an owner's first vehicle makes them a verified owner, records
`vehicle.verified` and, for a referred owner, `referral.completed`, in one transaction."""

from __future__ import annotations

import re
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from mongoengine.errors import NotUniqueError
from pymongo.client_session import ClientSession
from pymongo.errors import DuplicateKeyError

from accounts import domain_events, errors
from accounts.domain_events import REFERRAL_COMPLETED, ReferralCompleted, VehicleVerified
from accounts.models import (
    CIRCLE_LEADER,
    VEHICLE_PENDING,
    VEHICLE_REJECTED,
    VEHICLE_VERIFIED,
    User,
    Vehicle,
)
from accounts.services import city_timezone
from app.auth import Caller
from app.clock import utcnow
from app.db import get_or_404, transaction
from app.domains import ScorecardPart, ScorecardScope
from app.errors import Forbidden
from app.outbox import record_event

log = structlog.get_logger()
_VIN = re.compile(r"^[A-HJ-NPR-Z0-9]{17}$")
# No vehicle of the brand was delivered before this; earlier dates are typos.
EARLIEST_DELIVERY = date(1990, 1, 1)


def normalise_vin(vin: str) -> str:
    value = vin.strip().upper()
    if not _VIN.match(value):
        raise errors.InvalidVin(errors={"vin": ["Not a valid VIN."]})
    return value


def _check_delivery_date(delivered_on: date, city_code: str) -> None:
    # "Today" is the owner's: early in a Shenzhen morning, UTC is still on yesterday's date.
    today = utcnow().astimezone(ZoneInfo(city_timezone(city_code))).date()
    if not EARLIEST_DELIVERY <= delivered_on <= today:
        raise errors.DeliveryDateOutOfRange(
            errors={"delivered_on": [f"Must be from {EARLIEST_DELIVERY} to {today}."]}
        )


def add_vehicle(owner: User, vin: str, model: str, delivered_on: date | None = None) -> Vehicle:
    if delivered_on is not None:
        _check_delivery_date(delivered_on, owner.city_code)
    vehicle = Vehicle(
        owner_id=owner.pk,
        vin=normalise_vin(vin),
        model=model.strip(),
        delivered_on=delivered_on,
        city_code=owner.city_code,
    )
    try:
        vehicle.save(force_insert=True)
    except (NotUniqueError, DuplicateKeyError) as exc:
        raise errors.VinTaken() from exc
    log.info("vehicle_added", vehicle_id=str(vehicle.pk), owner_id=str(owner.pk))
    return vehicle


def verification_queue(caller: Caller, status: str, city: str | None):
    """Vehicles a circle leader (or admin) may review, scoped to the caller's cities."""
    cities = caller.cities_for(CIRCLE_LEADER)
    if cities is not None and not cities:
        raise Forbidden(message="Only circle leaders and admins review vehicles.")
    query = Vehicle.objects(status=status)
    if city:
        if cities is not None and city not in cities:
            raise Forbidden(message="You do not lead this city.")
        return query.filter(city_code=city)
    return query if cities is None else query.filter(city_code__in=sorted(cities))


def _review(caller: Caller, vehicle_id: str, status: str, reason: str | None) -> Vehicle:
    """Verify or reject a pending vehicle. Nobody reviews their own, admins included:
    verifying makes a verified owner and pays welcome points (403 `own_vehicle`); nor the
    vehicle of an owner they referred, whose first verification pays them the referral
    (403 `own_referral`)."""
    vehicle = get_or_404(Vehicle, vehicle_id)
    caller.require(vehicle.city_code, CIRCLE_LEADER)
    if vehicle.owner_id == caller.user.pk:
        raise errors.OwnVehicle()

    def unit(session: ClientSession) -> bool:
        owner = User._get_collection().find_one(
            {"_id": vehicle.owner_id}, {"verified_owner": 1, "referred_by": 1}, session=session
        )
        if owner is not None and owner.get("referred_by") == caller.user.pk:
            raise errors.OwnReferral()
        vehicles = Vehicle._get_collection()
        changes: dict[str, Any] = {
            "status": status,
            "reviewed_by": caller.user.pk,
            "reviewed_at": utcnow(),
        }
        if reason:
            changes["rejection_reason"] = reason
        reviewed = vehicles.update_one(
            {"_id": vehicle.pk, "status": VEHICLE_PENDING}, {"$set": changes}, session=session
        )
        if not reviewed.matched_count:
            return False
        if status == VEHICLE_VERIFIED:
            _on_verified(session, vehicle, owner, caller)
        return True

    if not transaction(unit):
        raise errors.VehicleNotPending()
    log.info("vehicle_reviewed", vehicle_id=vehicle_id, status=status, by=caller.id)
    vehicle.reload()
    return vehicle


def _on_verified(
    session: ClientSession, vehicle: Vehicle, owner: dict[str, Any] | None, caller: Caller
) -> None:
    users = User._get_collection()
    users.update_one({"_id": vehicle.owner_id}, {"$set": {"verified_owner": True}}, session=session)
    first = owner is not None and not owner.get("verified_owner", False)
    referrer = owner.get("referred_by") if owner is not None else None
    record_event(
        session,
        domain_events.VEHICLE_VERIFIED,
        VehicleVerified(str(vehicle.owner_id), vehicle.vin, vehicle.model, first),
        subject_id=vehicle.pk,
        actor_id=caller.user.pk,
        city_code=vehicle.city_code,
    )
    if first and referrer:
        record_event(
            session,
            REFERRAL_COMPLETED,
            ReferralCompleted(str(referrer), str(vehicle.owner_id)),
            subject_id=vehicle.owner_id,
            city_code=vehicle.city_code,
        )


def verify_vehicle(caller: Caller, vehicle_id: str) -> Vehicle:
    return _review(caller, vehicle_id, VEHICLE_VERIFIED, None)


def reject_vehicle(caller: Caller, vehicle_id: str, reason: str) -> Vehicle:
    return _review(caller, vehicle_id, VEHICLE_REJECTED, reason)


def scorecard_figures(scope: ScorecardScope) -> ScorecardPart:
    """Accounts' part of a city partner's scorecard: owners of the city whose first vehicle
    was verified in the period, and how many of them came through a referral (a referral
    completes on that verification)."""
    first_verified = [
        row["_id"]
        for row in Vehicle._get_collection().aggregate(
            [
                {
                    "$match": {
                        "status": VEHICLE_VERIFIED,
                        "city_code": scope.city_code,
                        "reviewed_at": {"$lt": scope.end},
                    }
                },
                {"$group": {"_id": "$owner_id", "first": {"$min": "$reviewed_at"}}},
                {"$match": {"first": {"$gte": scope.start}}},
            ]
        )
    ]
    referred = User._get_collection().count_documents(
        {"_id": {"$in": first_verified}, "referred_by": {"$ne": None}}
    )
    return ScorecardPart(
        {"new_verified_owners": len(first_verified), "referrals_completed": referred}
    )
