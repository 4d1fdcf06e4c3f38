"""Device sessions: a login opens one (its access and refresh tokens name it), a refresh
spends the refresh token and hands out the next, a logout or a reused refresh token ends it.
And the account a request speaks for, which the base loads through this domain
(`load_account`, installed in app/domains.py) with its role grants and live sessions.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import structlog
from bson import ObjectId
from flask import current_app
from pymongo.collection import Collection

from accounts import errors
from accounts.credentials import authenticate
from accounts.models import MAX_SESSIONS, User
from app import compat
from app.auth import Caller, issue_tokens
from app.clock import utcnow
from app.db import object_id
from app.errors import AccountBanned, NotFound, SessionEnded

log = structlog.get_logger()


# --- the caller's account --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallerGrant:
    """A role grant as the caller's account stores it (`Grant`)."""

    role: str
    city_codes: list[str]


@dataclass(frozen=True, slots=True)
class CallerSession:
    """A live device session of the caller's account: its id is all authorization reads."""

    sid: str


class CallerAccount:
    """The account a request speaks for (`app.auth.Account`), read from its stored document
    directly: every authenticated request reads it, and decoding it into a mongoengine
    `User` (its grants and sessions included) was a tenth of a hot request's CPU. Accounts'
    own views that need the whole `User` get it from `account_of`, decoded once."""

    __slots__ = (
        "pk",
        "display_name",
        "city_code",
        "city_held_since",
        "verified_owner",
        "created_at",
        "grants",
        "sessions",
        "banned_until",
        "muted_until",
        "client_fingerprint",
        "_stored",
        "_user",
    )

    def __init__(self, stored: dict[str, Any]) -> None:
        self.pk: ObjectId = stored["_id"]
        self.display_name: str = stored["display_name"]
        self.city_code: str = stored["city_code"]
        self.created_at: datetime = stored["created_at"]
        self.city_held_since: datetime = stored.get("city_since") or self.created_at
        self.verified_owner: bool = stored.get("verified_owner", False)
        self.grants = tuple(
            CallerGrant(grant["role"], grant.get("city_codes", []))
            for grant in stored.get("grants", ())
        )
        self.sessions = tuple(CallerSession(entry["sid"]) for entry in stored.get("sessions", ()))
        self.banned_until: datetime | None = stored.get("banned_until")
        self.muted_until: datetime | None = stored.get("muted_until")
        self.client_fingerprint: str | None = stored.get("client_fingerprint")
        self._stored = stored
        self._user: User | None = None

    def banned(self, now: datetime) -> bool:
        return self.banned_until is not None and self.banned_until > now

    def muted(self, now: datetime) -> bool:
        return self.muted_until is not None and self.muted_until > now

    def user(self) -> User:
        """The whole account as accounts' document, decoded on first use."""
        if self._user is None:
            self._user = compat.from_son(User, self._stored)
        return self._user


def load_account(user_id: ObjectId) -> CallerAccount | None:
    """The active account `user_id` names, with its role grants and live sessions, in one
    read (None: unknown or erased). Every authenticated request reads it
    (`app.auth.load_caller`), so a revoked grant, a ban, an erasure or an ended session
    counts from the next request."""
    # By `_id` alone, checking `erased_at` here: SecantusDB answers a find on `_id` with any
    # other condition about 4x more slowly (measured: 1.6 against 0.4 ms of server time),
    # and this read is part of every authenticated request.
    document = User._get_collection().find_one({"_id": user_id})
    if document is None or document.get("erased_at") is not None:
        return None
    return CallerAccount(document)


def account_of(caller: Caller) -> User:
    """The caller's account as accounts' own document, which `load_account` loaded (or the
    `User` a worker or a test made the caller of)."""
    account = caller.user
    return account.user() if isinstance(account, CallerAccount) else cast(User, account)


# --- logging in and device sessions ----------------------------------------------------


def log_in(
    *, password: str, device: str, email: str | None = None, phone: str | None = None
) -> dict[str, Any]:
    """Check the credentials and open a session on `device`: its tokens."""
    return start_session(authenticate(password=password, email=email, phone=phone).pk, device)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def start_session(user_id: ObjectId, device: str) -> dict[str, Any]:
    """Open a device session and return its tokens."""
    session_id, refresh_id = open_session(user_id, device)
    return issue_tokens(str(user_id), session_id, refresh_id)


def open_session(user_id: ObjectId, device: str) -> tuple[str, str]:
    """Open a device session: its id and its refresh token's id. Beyond MAX_SESSIONS the
    oldest session ends, so the list of live sessions every request reads stays small. A
    console's cookie session is one of these (consoles/auth.py), without tokens."""
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
    return session_id, refresh_id


def refresh_session(user_id: Any, session_id: str | None, refresh_id: str) -> dict[str, Any]:
    """Swap a refresh token for new tokens; the one presented is spent.

    A spent refresh token presented again means two parties hold the session's tokens (a
    thief and the owner): the whole session ends, and whichever of them comes next must
    log in again. Except within REFRESH_REUSE_GRACE_SECONDS of its exchange: an app whose
    parallel requests all found their access token expired refreshes with one token several
    times at once, and each gets the same new tokens as the first (the successor refresh
    token is derived from the spent one with SECRET_KEY, and the tokens' times from the
    exchange's), once that exchange committed.
    """
    users = User._get_collection()
    oid = object_id(user_id)
    if oid is None or session_id is None:
        raise SessionEnded()
    session = _session(users, oid, session_id)
    spent, successor = _digest(refresh_id), _successor(refresh_id)
    if hmac.compare_digest(session["refresh_hash"], spent):
        now = utcnow().replace(microsecond=0)  # tokens carry whole seconds
        # Conditional on the spent hash: of two uses of one token at once, one rotates.
        rotated = users.update_one(
            {"_id": oid, "sessions": {"$elemMatch": {"sid": session_id, "refresh_hash": spent}}},
            {
                "$set": {
                    "sessions.$.refresh_hash": _digest(successor),
                    "sessions.$.previous_refresh_hash": spent,
                    "sessions.$.rotated_at": now,
                    "sessions.$.last_used_at": now,
                }
            },
        ).matched_count
        if rotated:
            return issue_tokens(str(oid), session_id, successor, issued_at=now)
        session = _session(users, oid, session_id)  # the concurrent exchange's result
    if _within_grace(session, spent):
        return issue_tokens(str(oid), session_id, successor, issued_at=session["rotated_at"])
    end_session(oid, session_id)
    log.warning("refresh_token_reused", user_id=str(oid), session_id=session_id)
    raise errors.RefreshTokenReused()


def _session(users: Collection, oid: ObjectId, session_id: str) -> dict[str, Any]:
    """The live session a refresh token names (401 `session_ended` when gone; 403 when the
    account is banned)."""
    user = users.find_one({"_id": oid, "erased_at": None}, {"sessions": 1, "banned_until": 1})
    session = next(
        (entry for entry in (user or {}).get("sessions", []) if entry["sid"] == session_id), None
    )
    if user is None or session is None:
        raise SessionEnded()
    if user.get("banned_until") and user["banned_until"] > utcnow():
        raise AccountBanned()
    return session


def _successor(refresh_id: str) -> str:
    """The refresh token that follows `refresh_id`: keyed, so that no one derives a
    session's current token from an old one they hold."""
    secret = current_app.config["SECRET_KEY"].encode()
    mac = hmac.new(secret, f"refresh-successor:{refresh_id}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


def _within_grace(session: dict[str, Any], spent: str) -> bool:
    """Whether `spent` is the refresh token this session exchanged last, and so recently
    that presenting it again is a concurrent refresh rather than a copy in other hands."""
    previous, rotated_at = session.get("previous_refresh_hash"), session.get("rotated_at")
    if previous is None or rotated_at is None or not hmac.compare_digest(previous, spent):
        return False
    grace = timedelta(seconds=current_app.config["REFRESH_REUSE_GRACE_SECONDS"])
    return utcnow() - rotated_at <= grace


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
        for session in sorted(
            account_of(caller).sessions, key=lambda s: s.last_used_at, reverse=True
        )
        if session.last_used_at > since
    ]
