"""Accounts: sign-up, login and device sessions, passwords, profile, erasure, role grants
and cities, and what other domains may read of an owner (vehicles and their verification:
`accounts.ownership`).

Write-side functions change state (with their domain events in the same transaction) and
log; they never talk to Redis. Callers get domain exceptions for every refusal.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Collection
from datetime import datetime, timedelta
from functools import partial
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

from accounts import errors
from accounts.models import (
    ADMIN,
    MAX_SESSIONS,
    NOT_ERASED,
    City,
    RoleGrant,
    User,
    Vehicle,
    new_referral_code,
)

# Accounts' vocabulary, which other domains take from here: the role that runs a city, the
# locales an owner reads, the time zone of a city that names none.
from accounts.models import AMBASSADOR as AMBASSADOR
from accounts.models import CIRCLE_LEADER as CIRCLE_LEADER
from accounts.models import DEFAULT_TIMEZONE as DEFAULT_TIMEZONE
from accounts.models import LOCALES as LOCALES
from app.auth import Caller, issue_tokens
from app.clock import utcnow
from app.db import get_or_404, object_id, transaction
from app.errors import AccountBanned, NotFound, SessionEnded
from app.outbox import record_event
from notifications.push import PushMessage, provider_from_config
from notifications.templates import render

log = structlog.get_logger()
_hasher = PasswordHasher()
# Verified against when the account does not exist, so both failures cost the same time.
_DUMMY_HASH = _hasher.hash("timing-equaliser")
RESET_CODE_TTL = timedelta(minutes=10)
RESET_CODE_TRIES = 5
# A sign-up whose random referral code is taken draws another, this many times at most.
REFERRAL_CODE_ATTEMPTS = 5
# How long an owner keeps a city before moving to another: hopping from city to city would
# reach every city's own rewards and events.
CITY_CHANGE_INTERVAL = timedelta(days=90)


class Owner(Protocol):
    """An account as other domains receive it (a caller's `user`): what they may read of
    it. They never load `User` documents themselves, but call the functions below."""

    pk: ObjectId
    city_code: str
    # When `city_code` was set: at sign-up, or by the owner's last change of city.
    city_held_since: datetime
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
        raise errors.InvalidPhone(errors={"phone": [str(exc)]}) from exc
    if not phonenumbers.is_valid_number(parsed):
        raise errors.InvalidPhone(errors={"phone": ["Not a valid phone number."]})
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def login_key(email: str | None, phone: str | None) -> str | None:
    """The account a login attempt targets, normalised, for per-account rate limits."""
    if email:
        return "email:" + normalise_email(email)
    if phone:
        try:
            return "phone:" + normalise_phone(phone)
        except errors.InvalidPhone:
            return "phone:" + phone.strip()
    return None


# --- cities ----------------------------------------------------------------------------


def require_city(code: str) -> City:
    city = City.objects(code=code).first()
    if city is None:
        raise errors.UnknownCity(
            message=f"No city with code {code!r}.", errors={"city_code": ["Unknown city."]}
        )
    return city


def require_cities(codes: Collection[str], field: str = "city_codes") -> None:
    """Refuse (422 `unknown_city`) a list that names a city that does not exist."""
    if not codes:
        return
    known = {city.code for city in City.objects(code__in=list(codes)).only("code")}
    unknown = sorted(set(codes) - known)
    if unknown:
        raise errors.UnknownCity(
            message=f"No city with code {', '.join(unknown)}.",
            errors={field: [f"Unknown city: {code}." for code in unknown]},
        )


def create_city(code: str, name: str, province: str, timezone: str) -> City:
    city = City(code=code, name=name, province=province, timezone=timezone)
    try:
        city.save(force_insert=True)
    except Exception as exc:
        if _is_duplicate(exc):
            raise errors.CityExists(message=f"City {code} already exists.") from exc
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
    except errors.InvalidPhone:
        return None


def suspend(
    user_id: Any, until: datetime | None, session: ClientSession | None = None
) -> datetime | None:
    """Ban an owner until `until` (None lifts the ban), in the caller's transaction: from
    the next request on they can neither log in nor use their tokens (403
    `account_banned`). Returns when the previous ban ended (None: there was none)."""
    users = User._get_collection()
    previous = users.find_one({"_id": object_id(user_id)}, {"banned_until": 1}, session=session)
    users.update_one(
        {"_id": object_id(user_id)}, {"$set": {"banned_until": until}}, session=session
    )
    return previous.get("banned_until") if previous else None


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
            raise errors.InvalidReferralCode(errors={"referral_code": ["Unknown referral code."]})
    now = utcnow()
    user = User(
        email=normalise_email(email) if email else None,
        phone=normalise_phone(phone) if phone else None,
        password_hash=hash_password(password),
        display_name=display_name.strip(),
        city_code=city_code,
        city_since=now,
        created_at=now,
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
                raise errors.AccountExists() from exc
            continue
        log.info("user_registered", user_id=str(user.pk), city=city_code)
        return user
    # With ~10^12 codes, this many collisions in a row means the codes are not random.
    raise RuntimeError(f"No free referral code in {REFERRAL_CODE_ATTEMPTS} attempts.")


def _account(email: str | None, phone: str | None) -> User | None:
    """The active account an email or a phone number (in any format) names."""
    if email:
        query = {"email": normalise_email(email)}
    else:
        try:
            query = {"phone": normalise_phone(phone or "")}
        except errors.InvalidPhone:
            return None
    return User.objects.active().filter(**query).first()


def authenticate(*, password: str, email: str | None = None, phone: str | None = None) -> User:
    """The same refusal for an unknown account and a wrong password."""
    user = _account(email, phone)
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        user = None
    if user is None:
        raise errors.InvalidCredentials()
    if user.banned(utcnow()):
        raise AccountBanned()
    if _hasher.check_needs_rehash(user.password_hash):
        User.objects(pk=user.pk).update_one(set__password_hash=hash_password(password))
    return user


def log_in(
    *, password: str, device: str, email: str | None = None, phone: str | None = None
) -> dict[str, Any]:
    """Check the credentials and open a session on `device`: its tokens."""
    return start_session(authenticate(password=password, email=email, phone=phone).pk, device)


# --- device sessions -------------------------------------------------------------------


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def start_session(user_id: ObjectId, device: str) -> dict[str, Any]:
    """Open a device session and return its tokens. Beyond MAX_SESSIONS the oldest session
    ends, so the list of live sessions every request reads stays small."""
    session_id, refresh_id, now = str(ObjectId()), secrets.token_urlsafe(32), utcnow()
    entry = {
        "sid": session_id,
        "device": device[:200],
        "refresh_hash": _digest(refresh_id),
        "created_at": now,
        "last_used_at": now,
    }
    User._get_collection().update_one(
        {"_id": user_id},
        {"$push": {"sessions": {"$each": [entry], "$slice": -MAX_SESSIONS}}},
    )
    log.info("session_started", user_id=str(user_id), session_id=session_id)
    return issue_tokens(str(user_id), session_id, refresh_id)


def refresh_session(user_id: Any, session_id: str | None, refresh_id: str) -> dict[str, Any]:
    """Swap a refresh token for new tokens; the one presented is spent.

    A spent refresh token presented again means two parties hold the session's tokens (a
    thief and the owner): the whole session ends, and whichever of them comes next must
    log in again.
    """
    users = User._get_collection()
    oid = object_id(user_id)
    user = users.find_one({"_id": oid, "erased_at": None}, {"sessions": 1, "banned_until": 1})
    session = next(
        (entry for entry in (user or {}).get("sessions", []) if entry["sid"] == session_id), None
    )
    if oid is None or session_id is None or session is None:
        raise SessionEnded()
    if user.get("banned_until") and user["banned_until"] > utcnow():
        raise AccountBanned()
    spent, fresh = _digest(refresh_id), secrets.token_urlsafe(32)
    rotated = False
    if hmac.compare_digest(session["refresh_hash"], spent):
        # Conditional on the spent hash: of two uses of one token at once, one rotates.
        rotated = users.update_one(
            {"_id": oid, "sessions": {"$elemMatch": {"sid": session_id, "refresh_hash": spent}}},
            {
                "$set": {
                    "sessions.$.refresh_hash": _digest(fresh),
                    "sessions.$.last_used_at": utcnow(),
                }
            },
        ).matched_count
    if not rotated:
        end_session(oid, session_id)
        log.warning("refresh_token_reused", user_id=str(oid), session_id=session_id)
        raise errors.RefreshTokenReused()
    return issue_tokens(str(oid), session_id, fresh)


def end_session(user_id: ObjectId, session_id: str | None) -> bool:
    """End one session (its tokens stop working at once); False when it was not live."""
    ended = User._get_collection().update_one(
        {"_id": user_id, "sessions.sid": session_id},
        {"$pull": {"sessions": {"sid": session_id}}},
    )
    if ended.modified_count:
        log.info("session_ended", user_id=str(user_id), session_id=session_id)
    return bool(ended.modified_count)


def end_own_session(caller: Caller, session_id: str) -> None:
    """End one of the caller's sessions; anyone else's is not found."""
    if not end_session(caller.user.pk, session_id):
        raise NotFound(message="No such session.")


def live_sessions(caller: Caller) -> list[dict[str, Any]]:
    """The caller's sessions whose refresh token has not run out, most recently used first."""
    since = utcnow() - timedelta(seconds=current_app.config["JWT_REFRESH_TOKEN_EXPIRES"])
    return [
        {
            "id": session.sid,
            "device": session.device,
            "created_at": session.created_at,
            "last_used_at": session.last_used_at,
            "current": session.sid == caller.session_id,
        }
        for session in sorted(caller.user.sessions, key=lambda s: s.last_used_at, reverse=True)
        if session.last_used_at > since
    ]


# --- passwords -------------------------------------------------------------------------


def change_password(caller: Caller, current_password: str, new_password: str) -> None:
    """Set a new password; every session but the caller's ends."""
    try:
        _hasher.verify(caller.user.password_hash, current_password)
    except (VerificationError, InvalidHashError) as exc:
        raise errors.WrongPassword() from exc
    User._get_collection().update_one(
        {"_id": caller.user.pk},
        {
            "$set": {"password_hash": hash_password(new_password)},
            "$pull": {"sessions": {"sid": {"$ne": caller.session_id}}},
            "$unset": {"password_reset": ""},
        },
    )
    log.info("password_changed", user_id=caller.id)


def _reset_code_hash(user_id: ObjectId, code: str) -> str:
    # Keyed: six digits are a million guesses, nothing against a plain hash of a leaked row.
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"{user_id}:{code}".encode(), hashlib.sha256).hexdigest()


def request_password_reset(*, email: str | None = None, phone: str | None = None) -> None:
    """Send the account a one-time code by push, replacing any earlier one. Nothing tells
    the caller whether the account exists, and a push that fails is only logged."""
    user = _account(email, phone)
    if user is None:
        log.info("password_reset_unknown_account")
        return
    code = f"{secrets.randbelow(10**6):06d}"
    User._get_collection().update_one(
        {"_id": user.pk},
        {
            "$set": {
                "password_reset": {
                    "code_hash": _reset_code_hash(user.pk, code),
                    "expires_at": utcnow() + RESET_CODE_TTL,
                    "tries_left": RESET_CODE_TRIES,
                }
            }
        },
    )
    minutes = int(RESET_CODE_TTL.total_seconds() // 60)
    title, body = render("password_reset_code", user.locale, {"code": code, "minutes": minutes})
    # Straight to the provider, from the request: the owner is waiting for the code now,
    # and it must not rest in clear in the inbox, the outbox or a queue.
    message = PushMessage(
        id=str(ObjectId()),
        user_id=str(user.pk),
        kind="security",
        title=title,
        body=body,
        data={"code": code},
    )
    try:
        provider_from_config(current_app.config).send(message)
    except Exception:  # any provider failure: the owner may ask again, the answer stays 202
        log.exception("password_reset_push_failed", user_id=str(user.pk))
        return
    log.info("password_reset_code_sent", user_id=str(user.pk), push_id=message.id)


def reset_password(
    *, code: str, new_password: str, email: str | None = None, phone: str | None = None
) -> None:
    """Set a new password with a code from `request_password_reset`; every session ends.

    Each try spends one of the code's RESET_CODE_TRIES before the code is compared, so
    concurrent guesses get no more tries than sequential ones.
    """
    invalid = errors.InvalidCode(errors={"code": ["Invalid code."]})
    user = _account(email, phone)
    if user is None or user.password_reset is None:
        raise invalid
    users = User._get_collection()
    expected = user.password_reset.code_hash
    tried = users.update_one(
        {
            "_id": user.pk,
            "password_reset.code_hash": expected,
            "password_reset.expires_at": {"$gt": utcnow()},
            "password_reset.tries_left": {"$gt": 0},
        },
        {"$inc": {"password_reset.tries_left": -1}},
    )
    if not tried.matched_count or not hmac.compare_digest(
        expected, _reset_code_hash(user.pk, code)
    ):
        raise invalid
    reset = users.update_one(
        {"_id": user.pk, "password_reset.code_hash": expected},
        {
            "$set": {"password_hash": hash_password(new_password), "sessions": []},
            "$unset": {"password_reset": ""},
        },
    )
    if not reset.matched_count:
        raise invalid
    log.info("password_reset", user_id=str(user.pk))


def update_profile(user: User, changes: dict[str, Any], now: datetime | None = None) -> User:
    """Change the profile. The first change of city is free (a wrong city picked at sign-up
    is mended at once); each later one waits CITY_CHANGE_INTERVAL after the last (409
    `city_change_too_soon`), so hopping between cities for their rewards does not pay. A
    refused change changes nothing."""
    now = now or utcnow()
    changes = dict(changes)
    if changes.get("city_code") == user.city_code:
        del changes["city_code"]
    query: dict[str, Any] = {"pk": user.pk}
    if "city_code" in changes:
        require_city(changes["city_code"])
        if user.city_changed_at and now < user.city_changed_at + CITY_CHANGE_INTERVAL:
            raise _city_change_too_soon(user)
        changes["city_since"] = changes["city_changed_at"] = now
        # Conditional on the change we checked: of two changes sent at once, one is made.
        query["city_changed_at"] = user.city_changed_at
    updates = {f"set__{field}": value for field, value in changes.items()}
    if updates:
        updated = User.objects(**query).update_one(**updates)
        user.reload()
        if not updated:
            raise _city_change_too_soon(user)
    return user


def _city_change_too_soon(user: User) -> errors.CityChangeTooSoon:
    possible_from = user.city_changed_at + CITY_CHANGE_INTERVAL
    return errors.CityChangeTooSoon(possible_from=possible_from.isoformat())


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
                "$unset": {"email": "", "phone": "", "avatar_url": "", "password_reset": ""},
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


def _copy_grants_to_user(session: ClientSession, user_id: ObjectId) -> None:
    """Rebuild `User.grants` from the user's RoleGrant documents, inside the transaction
    that changed them: the copy can never drift from the records."""
    grants = [
        {"grant_id": grant["_id"], "role": grant["role"], "city_codes": grant["city_codes"]}
        for grant in RoleGrant._get_collection().find(
            {"user_id": user_id}, sort=[("_id", 1)], session=session
        )
    ]
    User._get_collection().update_one(
        {"_id": user_id}, {"$set": {"grants": grants}}, session=session
    )


def add_role_grant(
    user_id: ObjectId, role: str, city_codes: list[str], granted_by: ObjectId | None = None
) -> RoleGrant:
    """Record a grant and copy it onto the user in one transaction (no checks: seeds and
    `grant_role` call this)."""
    grant = RoleGrant(
        id=ObjectId(),
        user_id=user_id,
        role=role,
        city_codes=[] if role == ADMIN else sorted(set(city_codes)),
        granted_by=granted_by,
    )
    grant.validate()

    def unit(session: ClientSession) -> None:
        RoleGrant._get_collection().insert_one(grant.to_mongo(), session=session)
        _copy_grants_to_user(session, user_id)
        # City partners attach a new circle leader to the city's partner on this event.
        record_event(
            session,
            "role.granted",
            subject_type="user",
            subject_id=user_id,
            actor_id=granted_by,
            payload={"grant_id": str(grant.pk), "role": role, "city_codes": grant.city_codes},
        )

    transaction(unit)
    return grant


def grant_role(granted_by: Caller, user_id: str, role: str, city_codes: list[str]) -> RoleGrant:
    granted_by.require_admin()
    target = find_active_owner(user_id)
    if target is None:
        raise NotFound(message="User not found.")
    if role != "admin":
        if not city_codes:
            raise errors.CityCodesRequired(errors={"city_codes": ["At least one city."]})
        require_cities(city_codes)
    grant = add_role_grant(target.pk, role, city_codes, granted_by.user.pk)
    log.info("role_granted", user_id=user_id, role=role, cities=grant.city_codes, by=granted_by.id)
    return grant


def revoke_role(revoked_by: Caller, grant_id: str) -> None:
    revoked_by.require_admin()
    grant = get_or_404(RoleGrant, grant_id)

    def unit(session: ClientSession) -> None:
        RoleGrant._get_collection().delete_one({"_id": grant.pk}, session=session)
        _copy_grants_to_user(session, grant.user_id)

    transaction(unit)
    log.info("role_revoked", grant_id=grant_id, user_id=str(grant.user_id), by=revoked_by.id)


def city_role_holders(city_code: str, role: str = CIRCLE_LEADER) -> list[ObjectId]:
    """The accounts holding `role` in `city_code` (a city partner takes over its leaders)."""
    return sorted(
        {
            grant["user_id"]
            for grant in RoleGrant._get_collection().find(
                {"city_codes": city_code, "role": role}, {"user_id": 1}
            )
        }
    )


def withdraw_city(user_id: ObjectId, role: str, city_code: str) -> bool:
    """Take `city_code` out of the account's `role` grants (a grant left with no city goes),
    in one transaction with the copy on the user. Returns whether anything changed."""

    def unit(session: ClientSession) -> bool:
        grants = RoleGrant._get_collection()
        found = list(
            grants.find(
                {"user_id": user_id, "role": role, "city_codes": city_code}, session=session
            )
        )
        for grant in found:
            if grant["city_codes"] == [city_code]:
                grants.delete_one({"_id": grant["_id"]}, session=session)
            else:
                grants.update_one(
                    {"_id": grant["_id"]}, {"$pull": {"city_codes": city_code}}, session=session
                )
        if found:
            _copy_grants_to_user(session, user_id)
        return bool(found)

    withdrawn = transaction(unit)
    if withdrawn:
        log.info("role_city_withdrawn", user_id=str(user_id), role=role, city=city_code)
    return withdrawn


def display_names(user_ids: Collection[ObjectId]) -> dict[ObjectId, str]:
    return {
        user["_id"]: user["display_name"]
        for user in User._get_collection().find(
            {"_id": {"$in": list(user_ids)}}, {"display_name": 1}
        )
    }


def copy_grants_to_users() -> int:
    """Backfill (2026-12-01, run by `flask init-db`): role grants used to be read from
    `role_grants` on every request; now each request reads them from the user. Copies
    every user's grants onto the user, each in its own transaction; running it again
    changes nothing. Returns how many users it wrote."""
    user_ids = {grant["user_id"] for grant in RoleGrant._get_collection().find({}, {"user_id": 1})}
    user_ids |= {
        user["_id"]
        for user in User._get_collection().find({"grants.0": {"$exists": True}}, {"_id": 1})
    }
    for user_id in user_ids:
        transaction(partial(_copy_grants_to_user, user_id=user_id))
    return len(user_ids)


def backfill_city_since() -> int:
    """Backfill (2026-12-01, run by `flask init-db`): accounts made before owners' cities
    carried the date they were set count as holding theirs since sign-up. Running it again
    changes nothing. Returns how many accounts it wrote."""
    return (
        User._get_collection()
        .update_many({"city_since": None}, [{"$set": {"city_since": "$created_at"}}])
        .modified_count
    )


def _is_duplicate(exc: Exception) -> bool:
    return isinstance(exc, NotUniqueError | DuplicateKeyError)
