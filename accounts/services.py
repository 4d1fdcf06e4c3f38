"""Accounts: sign-up, the profile (and its city rules), referrals, cities, and what other
domains may read of an owner.

Elsewhere in accounts: how an owner proves who they are (`accounts.credentials`), device
sessions and the caller's account (`accounts.sessions`), passwords and their reset
(`accounts.passwords`), role grants (`accounts.roles`), the export and erasure of personal
data (`accounts.personal_data`), vehicles and their verification (`accounts.ownership`).

Write-side functions change state (with their domain events in the same transaction) and
log; they never talk to Redis. Callers get domain exceptions for every refusal.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from time import monotonic
from typing import Any, Protocol

import structlog
from bson import ObjectId
from flask import current_app
from mongoengine.errors import NotUniqueError
from pymongo.client_session import ClientSession
from pymongo.errors import DuplicateKeyError

from accounts import errors
from accounts.credentials import hash_password, normalise_email, normalise_phone
from accounts.domain_events import USER_REGISTERED, UserRegistered

# Accounts' vocabulary, which other domains take from here (the names imported as
# themselves): the roles that run a city, the locales an owner reads, the time zone of a
# city that names none.
from accounts.models import AMBASSADOR as AMBASSADOR
from accounts.models import CIRCLE_LEADER as CIRCLE_LEADER
from accounts.models import DEFAULT_TIMEZONE as DEFAULT_TIMEZONE
from accounts.models import LOCALES as LOCALES
from accounts.models import (
    NOT_ERASED,
    VEHICLE_VERIFIED,
    City,
    User,
    Vehicle,
    new_referral_code,
)
from app.clock import utcnow
from app.db import object_id, transaction
from app.outbox import record_event
from app.screening import refuse_listed_words

log = structlog.get_logger()
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
    city_timezones.cache_clear()
    return city


def all_cities() -> list[City]:
    """Every city, by code (an admin's list; there are tens, not thousands)."""
    return list(City.objects.order_by("code"))


def city_timezone(code: str | None, session: ClientSession | None = None) -> str:
    city = City._get_collection().find_one({"code": code}, {"timezone": 1}, session=session)
    return (city or {}).get("timezone") or DEFAULT_TIMEZONE


# Cities are created and keep their time zone: each process keeps the map of them, read
# again after a minute, or at once when asked for a city it does not hold (created since).
_ZONES_KEPT_SECONDS = 60.0


class _TimeZones:
    def __init__(self) -> None:
        self.loaded_at = float("-inf")
        self.zones: dict[str, str] = {}

    def __call__(self, codes: Collection[str] = ()) -> dict[str, str]:
        """Every city's time zone, by code; `codes` are cities the caller needs in it."""
        if (
            monotonic() - self.loaded_at > _ZONES_KEPT_SECONDS
            or not set(codes) <= self.zones.keys()
        ):
            self.zones = {
                city.code: city.timezone for city in City.objects.only("code", "timezone")
            }
            self.loaded_at = monotonic()
        return self.zones

    def cache_clear(self) -> None:
        self.loaded_at = float("-inf")


city_timezones = _TimeZones()


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


@dataclass(frozen=True)
class ActiveOwner:
    """An owner as other domains look them up (not the caller: that is `Owner`), by names
    that stay when the stored document's change."""

    id: ObjectId
    city_code: str | None
    locale: str | None


_OWNER_FIELDS = {"city_code": 1, "locale": 1}


def _owner(document: Mapping[str, Any] | None) -> ActiveOwner | None:
    if document is None:
        return None
    return ActiveOwner(document["_id"], document.get("city_code"), document.get("locale"))


def active_owner(user_id: Any, session: ClientSession | None = None) -> ActiveOwner | None:
    """An owner (None when unknown or erased), in the caller's transaction if any: one read
    of the user document, with a projection."""
    oid = object_id(user_id)
    if oid is None:
        return None
    found = User._get_collection().find_one(
        {"_id": oid, **NOT_ERASED}, _OWNER_FIELDS, session=session
    )
    return _owner(found)


def active_owners(
    user_ids: Collection[ObjectId], session: ClientSession | None = None
) -> dict[ObjectId, ActiveOwner]:
    """`active_owner` for many owners in one read, by id (the unknown or erased left out)."""
    found = User._get_collection().find(
        {"_id": {"$in": list(user_ids)}, **NOT_ERASED}, _OWNER_FIELDS, session=session
    )
    return {owner.id: owner for owner in map(_owner, found) if owner is not None}


def find_active_owner(user_id: str | None = None, phone: str | None = None) -> ActiveOwner | None:
    """An owner named by id or by phone number (in any format), as partner systems do."""
    owners = User.objects.active().only(*_OWNER_FIELDS).as_pymongo()
    if user_id:
        oid = object_id(user_id)
        return _owner(owners.filter(pk=oid).first()) if oid else None
    try:
        return _owner(owners.filter(phone=normalise_phone(phone or "")).first())
    except errors.InvalidPhone:
        return None


def active_owner_ids_by_phone(phones: Collection[str]) -> dict[str, ObjectId]:
    """Owners named by phone number (in any format), many at once, as an ecosystem
    partner's statement names them: each given number that belongs to an active owner,
    with the owner's id. One query per 1,000 numbers."""
    normalised: dict[str, str] = {}
    for phone in phones:
        try:
            normalised[phone] = normalise_phone(phone)
        except errors.InvalidPhone:
            continue
    ids: dict[str, ObjectId] = {}
    numbers = sorted(set(normalised.values()))
    users = User._get_collection()
    for start in range(0, len(numbers), 1000):
        found = users.find(
            {"phone": {"$in": numbers[start : start + 1000]}, **NOT_ERASED}, {"phone": 1}
        )
        ids.update((user["phone"], user["_id"]) for user in found)
    return {phone: ids[number] for phone, number in normalised.items() if number in ids}


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


def mute(user_id: Any, until: datetime | None, session: ClientSession | None = None) -> None:
    """Mute an owner until `until` (None lifts it), in the caller's transaction: the copy
    of community's mute that each request reads with the caller."""
    User._get_collection().update_one(
        {"_id": object_id(user_id)}, {"$set": {"muted_until": until}}, session=session
    )


def client_fingerprint(ip: str, device: str) -> str:
    """A keyed hash of the client a sign-up came from: its IP and device name. Keyed (with
    SECRET_KEY), because the IPv4 space is small enough to hash whole."""
    key = hashlib.sha256(b"client-fingerprint:" + current_app.config["SECRET_KEY"].encode())
    message = f"{ip}\n{device.strip().casefold()}".encode()
    return hmac.new(key.digest(), message, hashlib.sha256).hexdigest()


def fingerprint_of(account: Any, now: datetime) -> str | None:
    """The account's client fingerprint while it is kept (CLIENT_FINGERPRINT_DAYS)."""
    kept = timedelta(days=current_app.config["CLIENT_FINGERPRINT_DAYS"])
    fingerprint: str | None = getattr(account, "client_fingerprint", None)
    return fingerprint if fingerprint and account.created_at > now - kept else None


def forget_client_fingerprints(now: datetime | None = None) -> int:
    """Drop the client fingerprints older than CLIENT_FINGERPRINT_DAYS (daily); returns how
    many. City by city, so each update reads one index range (city, sign-up time)."""
    now = now or utcnow()
    cutoff = now - timedelta(days=current_app.config["CLIENT_FINGERPRINT_DAYS"])
    forgotten = 0
    for city in City.objects.only("code"):
        forgotten += (
            User._get_collection()
            .update_many(
                {
                    "city_code": city.code,
                    "created_at": {"$lt": cutoff},
                    "client_fingerprint": {"$exists": True},
                },
                {"$unset": {"client_fingerprint": ""}},
            )
            .modified_count
        )
    if forgotten:
        log.info("client_fingerprints_forgotten", count=forgotten)
    return forgotten


# --- sign-up and the profile -----------------------------------------------------------


def register(
    *,
    password: str,
    display_name: str,
    city_code: str,
    email: str | None = None,
    phone: str | None = None,
    referral_code: str | None = None,
    locale: str = "zh-CN",
    fingerprint: str | None = None,
) -> User:
    """Create an owner account. Email and phone are unique, also under concurrent sign-ups
    (unique indexes decide, not a read-then-write). `fingerprint`: the client's
    (`client_fingerprint`)."""
    require_city(city_code)
    refuse_listed_words(display_name=display_name)
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
        client_fingerprint=fingerprint,
    )
    user.validate()

    def unit(session: ClientSession) -> None:
        User._get_collection().insert_one(user.to_mongo(), session=session)
        record_event(
            session,
            USER_REGISTERED,
            UserRegistered(str(referrer.pk) if referrer else None),
            subject_id=user.pk,
            actor_id=user.pk,
            city_code=city_code,
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


def update_profile(user: User, changes: dict[str, Any], now: datetime | None = None) -> User:
    """Change the profile. The first change of city is free (a wrong city picked at sign-up
    is mended at once); each later one waits CITY_CHANGE_INTERVAL after the last (409
    `city_change_too_soon`), so hopping between cities for their rewards does not pay. A
    refused change changes nothing."""
    now = now or utcnow()
    changes = dict(changes)
    refuse_listed_words(display_name=changes.get("display_name"))
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


def referral_summary(user: User) -> dict[str, Any]:
    """A referral completes when the referee's first vehicle is verified."""
    invited = User.objects(referred_by=user.pk)
    return {
        "code": user.referral_code,
        "invited": invited.count(),
        "completed": invited.filter(verified_owner=True).count(),
    }


def display_names(user_ids: Collection[ObjectId]) -> dict[ObjectId, str]:
    return {
        user["_id"]: user["display_name"]
        for user in User._get_collection().find(
            {"_id": {"$in": list(user_ids)}}, {"display_name": 1}
        )
    }


@dataclass(frozen=True)
class PersonCard:
    """What staff at an event's door see of an owner: the name, the last four digits of
    the phone (to find someone without a ticket) and the model of a verified vehicle."""

    display_name: str
    phone_tail: str | None
    vehicle: str | None


def person_cards(user_ids: Collection[ObjectId]) -> dict[ObjectId, PersonCard]:
    """The cards of the accounts `user_ids` names, in two reads however many there are."""
    ids = list(user_ids)
    if not ids:
        return {}
    vehicles: dict[ObjectId, str] = {}
    # The owner leads the filter, so the (owner_id, -created_at) index serves it; the
    # newest verified vehicle wins.
    for vehicle in (
        Vehicle._get_collection()
        .find({"owner_id": {"$in": ids}, "status": VEHICLE_VERIFIED}, {"owner_id": 1, "model": 1})
        .sort("created_at", 1)
    ):
        vehicles[vehicle["owner_id"]] = vehicle["model"]
    return {
        user["_id"]: PersonCard(
            display_name=user["display_name"],
            phone_tail=user["phone"][-4:] if user.get("phone") else None,
            vehicle=vehicles.get(user["_id"]),
        )
        for user in User._get_collection().find(
            {"_id": {"$in": ids}}, {"display_name": 1, "phone": 1}
        )
    }


@dataclass(frozen=True)
class AccountCard:
    """What an ambassador weighs an author or a reporter by on the review desk."""

    display_name: str
    city_code: str | None
    joined_at: datetime
    verified_owner: bool
    # Holds a staff role (circle leader, ambassador or admin) anywhere.
    staff: bool
    muted_until: datetime | None
    banned_until: datetime | None
    erased: bool


def account_cards(user_ids: Collection[ObjectId]) -> dict[ObjectId, AccountCard]:
    """The cards of the accounts `user_ids` names, in one read however many there are."""
    ids = list(user_ids)
    if not ids:
        return {}
    fields = ("display_name", "city_code", "created_at", "verified_owner", "grants")
    return {
        user["_id"]: AccountCard(
            display_name=user["display_name"],
            city_code=user.get("city_code"),
            joined_at=user["created_at"],
            verified_owner=bool(user.get("verified_owner")),
            staff=bool(user.get("grants")),
            muted_until=user.get("muted_until"),
            banned_until=user.get("banned_until"),
            erased=user.get("erased_at") is not None,
        )
        for user in User._get_collection().find(
            {"_id": {"$in": ids}},
            dict.fromkeys((*fields, "muted_until", "banned_until", "erased_at"), 1),
        )
    }


def find_account(text: str) -> User | None:
    """An account named the way an admin would look one up: its id, email or phone."""
    text = text.strip()
    if not text:
        return None
    if "@" in text:
        return User.objects.active().filter(email=normalise_email(text)).first()
    if (oid := object_id(text)) is not None:
        return User.objects.active().filter(pk=oid).first()
    try:
        return User.objects.active().filter(phone=normalise_phone(text)).first()
    except errors.InvalidPhone:
        return None


@dataclass(frozen=True)
class FoundAccount:
    id: ObjectId
    city_code: str


def find_accounts(texts: Collection[str]) -> dict[str, FoundAccount]:
    """Accounts named by their id, email or phone (as `find_account` reads one), in at
    most three reads however many: what each text names, for the texts that name an
    active account."""
    by_kind: dict[str, dict[Any, str]] = {"_id": {}, "email": {}, "phone": {}}
    for text in texts:
        value = text.strip()
        if "@" in value:
            by_kind["email"][normalise_email(value)] = text
        elif (oid := object_id(value)) is not None:
            by_kind["_id"][oid] = text
        else:
            try:
                by_kind["phone"][normalise_phone(value)] = text
            except errors.InvalidPhone:
                continue
    found: dict[str, FoundAccount] = {}
    for field, wanted in by_kind.items():
        if not wanted:
            continue
        for user in User._get_collection().find(
            {field: {"$in": list(wanted)}, **NOT_ERASED}, {field: 1, "city_code": 1}
        ):
            found[wanted[user[field]]] = FoundAccount(user["_id"], user["city_code"])
    return found


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
