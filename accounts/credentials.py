"""How an owner proves who they are: the email or phone number that names their account,
and their password (kept as an argon2 hash, checked in the same time whether the account
exists or not)."""

from __future__ import annotations

import functools

import phonenumbers
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app

from accounts import errors
from accounts.models import User
from app.clock import utcnow
from app.errors import AccountBanned

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the account does not exist, so both failures cost the same
    time. Made on first use: a hash costs a fifth of a second of CPU, which every process
    (workers, dispatchers, schedulers) would otherwise pay at start-up."""
    return _hasher.hash("timing-equaliser")


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


def account_named(email: str | None, phone: str | None) -> User | None:
    """The active account an email or a phone number (in any format) names."""
    if email:
        query = {"email": normalise_email(email)}
    else:
        try:
            query = {"phone": normalise_phone(phone or "")}
        except errors.InvalidPhone:
            return None
    return User.objects.active().filter(**query).first()


# --- passwords -------------------------------------------------------------------------


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def authenticate(*, password: str, email: str | None = None, phone: str | None = None) -> User:
    """The same refusal for an unknown account and a wrong password."""
    user = account_named(email, phone)
    # Checked for an unknown account too, against a dummy hash: both refusals take as long.
    matches = password_matches(user.password_hash if user else _dummy_hash(), password)
    if user is None or not matches:
        raise errors.InvalidCredentials()
    if user.banned(utcnow()):
        raise AccountBanned()
    if _hasher.check_needs_rehash(user.password_hash):
        User.objects(pk=user.pk).update_one(set__password_hash=hash_password(password))
    return user
