"""Changing a password, and setting a new one with a one-time code pushed to the owner's
devices when it is forgotten. Either way sessions end: all but the caller's on a change,
every one on a reset."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

import structlog
from bson import ObjectId
from flask import current_app

from accounts import errors
from accounts.credentials import account_named, hash_password, password_matches
from accounts.models import User
from accounts.sessions import account_of
from app.auth import Caller
from app.clock import utcnow
from notifications.services import send_reset_code

log = structlog.get_logger()
RESET_CODE_TTL = timedelta(minutes=10)
RESET_CODE_TRIES = 5


def change_password(caller: Caller, current_password: str, new_password: str) -> None:
    """Set a new password; every session but the caller's ends."""
    if not password_matches(account_of(caller).password_hash, current_password):
        raise errors.WrongPassword()
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
    user = account_named(email, phone)
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
    try:
        push_id = send_reset_code(user.pk, user.locale, code, RESET_CODE_TTL)
    except Exception:  # any provider failure: the owner may ask again, the answer stays 202
        log.exception("password_reset_push_failed", user_id=str(user.pk))
        return
    log.info("password_reset_code_sent", user_id=str(user.pk), push_id=push_id)


def reset_password(
    *, code: str, new_password: str, email: str | None = None, phone: str | None = None
) -> None:
    """Set a new password with a code from `request_password_reset`; every session ends.

    Each try spends one of the code's RESET_CODE_TRIES before the code is compared, so
    concurrent guesses get no more tries than sequential ones.
    """
    invalid = errors.InvalidCode(errors={"code": ["Invalid code."]})
    user = account_named(email, phone)
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
