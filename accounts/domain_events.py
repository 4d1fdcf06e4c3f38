"""The domain events accounts emits, with their payloads (app/outbox.py)."""

from __future__ import annotations

from dataclasses import dataclass

from app.outbox import NoPayload, declare


@dataclass(frozen=True)
class UserRegistered:
    # The owner whose referral code the new owner signed up with.
    referred_by: str | None


@dataclass(frozen=True)
class VehicleVerified:
    owner_id: str
    vin: str
    model: str
    # The owner's first verified vehicle: they became a verified owner with it.
    first_verified_vehicle: bool


@dataclass(frozen=True)
class ReferralCompleted:
    referrer_id: str
    referee_id: str


@dataclass(frozen=True)
class RoleGranted:
    grant_id: str
    role: str
    city_codes: list[str]


USER_REGISTERED = declare(
    "user.registered",
    UserRegistered,
    subject_type="user",
    about="An account was created (the subject); its owner may have been referred.",
)
USER_ERASED = declare(
    "user.erased",
    NoPayload,
    subject_type="user",
    about="An owner's personal data was erased at their request: every domain forgets them.",
)
VEHICLE_VERIFIED = declare(
    "vehicle.verified",
    VehicleVerified,
    subject_type="vehicle",
    about="A circle leader or admin verified that the owner owns the vehicle.",
)
REFERRAL_COMPLETED = declare(
    "referral.completed",
    ReferralCompleted,
    subject_type="user",
    about="A referred owner (the subject) verified their first vehicle.",
)
ROLE_GRANTED = declare(
    "role.granted",
    RoleGranted,
    subject_type="user",
    about="An admin granted the subject a staff role in some cities.",
)
