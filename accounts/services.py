"""Accounts: sign-up, login, profile, erasure, role grants and cities, and what other
domains may read of an owner (vehicles and their verification: `accounts.ownership`).

Write-side functions change state (with their domain events in the same transaction) and
log; they never talk to Redis. Callers get domain exceptions for every refusal.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any, Protocol

import phonenumbers
import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from bson import ObjectId
from flask import current_app
from mongoengine.errors import NotUniqueError
from pymongo.client_session import ClientSession
from pymongo.errors import DuplicateKeyError

# Accounts' vocabulary, which other domains take from here: the role that runs a city, the
# locales an owner reads, the time zone of a city that names none.
from accounts.models import CIRCLE_LEADER as CIRCLE_LEADER
from accounts.models import DEFAULT_TIMEZONE as DEFAULT_TIMEZONE
from accounts.models import LOCALES as LOCALES
from accounts.models import (
    NOT_ERASED,
    City,
    RoleGrant,
    User,
    Vehicle,
    new_referral_code,
)
from app.auth import Caller
from app.clock import utcnow
from app.db import get_or_404, object_id, transaction
from app.errors import Conflict, NotFound, Unauthorized, ValidationFailed
from app.outbox import record_event

log = structlog.get_logger()
_hasher = PasswordHasher()
# Verified against when the account does not exist, so both failures cost the same time.
_DUMMY_HASH = _hasher.hash("timing-equaliser")
# A sign-up whose random referral code is taken draws another, this many times at most.
REFERRAL_CODE_ATTEMPTS = 5


class Owner(Protocol):
    """An account as other domains receive it (a caller's `user`): what they may read of
    it. They never load `User` documents themselves, but call the functions below."""

    pk: ObjectId
    city_code: str
    verified_owner: bool


# --- identifiers -----------------------------------------------------------------------


def normalise_email(email: str) -> str:
    return email.strip().lower()


def normalise_phone(phone: str, region: str | None = None) -> str:
    """E.164, assuming the configured default region for national numbers."""
    region = region or current_app.config["DEFAULT_PHONE_REGION"]
    try:
        parsed = phonenumbers.parse(phone, region)
    except phonenumbers.NumberParseException as exc:
        raise ValidationFailed(
            "invalid_phone", "The phone number is not valid.", errors={"phone": [str(exc)]}
        ) from exc
    if not phonenumbers.is_valid_number(parsed):
        raise ValidationFailed(
            "invalid_phone",
            "The phone number is not valid.",
            errors={"phone": ["Not a valid phone number."]},
        )
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def login_key(email: str | None, phone: str | None) -> str | None:
    """The account a login attempt targets, normalised, for per-account rate limits."""
    if email:
        return "email:" + normalise_email(email)
    if phone:
        try:
            return "phone:" + normalise_phone(phone)
        except ValidationFailed:
            return "phone:" + phone.strip()
    return None


# --- cities ----------------------------------------------------------------------------


def require_city(code: str) -> City:
    city = City.objects(code=code).first()
    if city is None:
        raise ValidationFailed(
            "unknown_city", f"No city with code {code!r}.", errors={"city_code": ["Unknown city."]}
        )
    return city


def create_city(code: str, name: str, province: str, timezone: str) -> City:
    city = City(code=code, name=name, province=province, timezone=timezone)
    try:
        city.save(force_insert=True)
    except Exception as exc:
        if _is_duplicate(exc):
            raise Conflict("city_exists", f"City {code} already exists.") from exc
        raise
    log.info("city_created", code=code)
    return city


def city_timezone(code: str | None, session: ClientSession | None = None) -> str:
    city = City._get_collection().find_one({"code": code}, {"timezone": 1}, session=session)
    return (city or {}).get("timezone") or DEFAULT_TIMEZONE


def city_timezones() -> dict[str, str]:
    return {city.code: city.timezone for city in City.objects.only("code", "timezone")}


def city_figures(city_code: str, start: datetime, end: datetime) -> dict[str, int]:
    """Accounts' part of a city's figures: its members (active accounts created before
    `end`, whenever they joined) and how many of them are verified owners."""
    counts = {
        row["_id"]: row["count"]
        for row in User._get_collection().aggregate(
            [
                {
                    "$match": {
                        "city_code": city_code,
                        "created_at": {"$lt": end},
                        **NOT_ERASED,
                    }
                },
                {"$group": {"_id": "$verified_owner", "count": {"$sum": 1}}},
            ]
        )
    }
    return {"members": sum(counts.values()), "verified_owners": counts.get(True, 0)}


# --- owners, as other domains read them ------------------------------------------------


def active_owner(
    user_id: Any, fields: tuple[str, ...] = ("city_code",), session: ClientSession | None = None
) -> dict[str, Any] | None:
    """An owner's `fields` (None when unknown or erased), in the caller's transaction."""
    oid = object_id(user_id)
    if oid is None:
        return None
    return User._get_collection().find_one(
        {"_id": oid, **NOT_ERASED}, dict.fromkeys(fields, 1), session=session
    )


def find_active_owner(user_id: str | None = None, phone: str | None = None) -> User | None:
    """An owner named by id or by phone number (in any format), as partner systems do."""
    if user_id:
        oid = object_id(user_id)
        return User.objects.active().filter(pk=oid).first() if oid else None
    try:
        return User.objects.active().filter(phone=normalise_phone(phone or "")).first()
    except ValidationFailed:
        return None


# --- sign-up and login -----------------------------------------------------------------


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def register(
    *,
    password: str,
    display_name: str,
    city_code: str,
    email: str | None = None,
    phone: str | None = None,
    referral_code: str | None = None,
    locale: str = "zh-CN",
) -> User:
    """Create an owner account. Email and phone are unique, also under concurrent sign-ups
    (unique indexes decide, not a read-then-write)."""
    require_city(city_code)
    referrer = None
    if referral_code:
        code = referral_code.strip().upper()
        referrer = User.objects.active().filter(referral_code=code).first()
        if referrer is None:
            raise ValidationFailed(
                "invalid_referral_code",
                "Unknown referral code.",
                errors={"referral_code": ["Unknown referral code."]},
            )
    user = User(
        email=normalise_email(email) if email else None,
        phone=normalise_phone(phone) if phone else None,
        password_hash=hash_password(password),
        display_name=display_name.strip(),
        city_code=city_code,
        locale=locale,
        referred_by=referrer.pk if referrer else None,
    )
    user.validate()

    def unit(session: ClientSession) -> None:
        User._get_collection().insert_one(user.to_mongo(), session=session)
        record_event(
            session,
            "user.registered",
            subject_type="user",
            subject_id=user.pk,
            actor_id=user.pk,
            city_code=city_code,
            payload={"referred_by": str(referrer.pk) if referrer else None},
        )

    user.pk = ObjectId()
    for attempt in range(REFERRAL_CODE_ATTEMPTS):
        if attempt:
            user.referral_code = new_referral_code()
        try:
            transaction(unit)
        except DuplicateKeyError as exc:
            if "referral_code" not in str(exc):
                raise Conflict(
                    "account_exists", "An account with this email or phone already exists."
                ) from exc
            continue
        log.info("user_registered", user_id=str(user.pk), city=city_code)
        return user
    # With ~10^12 codes, this many collisions in a row means the codes are not random.
    raise RuntimeError(f"No free referral code in {REFERRAL_CODE_ATTEMPTS} attempts.")


def authenticate(*, password: str, email: str | None = None, phone: str | None = None) -> User:
    """The same refusal for an unknown account and a wrong password."""
    query: dict[str, Any] = {}
    if email:
        query["email"] = normalise_email(email)
    else:
        try:
            query["phone"] = normalise_phone(phone or "")
        except ValidationFailed:
            query["phone"] = None
    user = User.objects.active().filter(**query).first() if any(query.values()) else None
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        user = None
    if user is None:
        raise Unauthorized("invalid_credentials", "Wrong account or password.")
    if _hasher.check_needs_rehash(user.password_hash):
        User.objects(pk=user.pk).update_one(set__password_hash=hash_password(password))
    return user


def update_profile(user: User, changes: dict[str, Any]) -> User:
    if "city_code" in changes:
        require_city(changes["city_code"])
    updates = {f"set__{field}": value for field, value in changes.items()}
    if updates:
        User.objects(pk=user.pk).update_one(**updates)
        user.reload()
    return user


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
                "locale",
                "verified_owner",
                "referral_code",
                "created_at",
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
                },
                "$unset": {"email": "", "phone": "", "avatar_url": ""},
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
            "user.erased",
            subject_type="user",
            subject_id=user.pk,
            actor_id=user.pk,
            city_code=user.city_code,
        )

    transaction(unit)
    log.info("user_erased", user_id=str(user.pk))


def referral_summary(user: User) -> dict[str, Any]:
    """A referral completes when the referee's first vehicle is verified."""
    invited = User.objects(referred_by=user.pk)
    return {
        "code": user.referral_code,
        "invited": invited.count(),
        "completed": invited.filter(verified_owner=True).count(),
    }


# --- roles -----------------------------------------------------------------------------


def grant_role(granted_by: Caller, user_id: str, role: str, city_codes: list[str]) -> RoleGrant:
    granted_by.require_admin()
    target = find_active_owner(user_id)
    if target is None:
        raise NotFound(message="User not found.")
    if role != "admin":
        if not city_codes:
            raise ValidationFailed(
                "city_codes_required",
                "City-scoped roles need cities.",
                errors={"city_codes": ["At least one city."]},
            )
        for code in city_codes:
            require_city(code)
    grant = RoleGrant(
        user_id=target.pk,
        role=role,
        city_codes=[] if role == "admin" else sorted(set(city_codes)),
        granted_by=granted_by.user.pk,
    ).save()
    log.info("role_granted", user_id=user_id, role=role, cities=grant.city_codes, by=granted_by.id)
    return grant


def revoke_role(revoked_by: Caller, grant_id: str) -> None:
    revoked_by.require_admin()
    grant = get_or_404(RoleGrant, grant_id)
    grant.delete()
    log.info("role_revoked", grant_id=grant_id, user_id=str(grant.user_id), by=revoked_by.id)


def _is_duplicate(exc: Exception) -> bool:
    return isinstance(exc, NotUniqueError | DuplicateKeyError)
