"""Device sessions: a login opens one (its access and refresh tokens name it), a refresh
spends the refresh token and hands out the next, a logout or a reused refresh token ends it.
And the account a request speaks for, which the base loads through this domain
(`load_account`, installed in app/domains.py) with its role grants and live sessions.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Any, cast

import structlog
from bson import ObjectId
from flask import current_app

from accounts import errors
from accounts.credentials import authenticate
from accounts.models import MAX_SESSIONS, User
from app.auth import Caller, issue_tokens
from app.clock import utcnow
from app.db import object_id
from app.errors import AccountBanned, NotFound, SessionEnded

log = structlog.get_logger()


# --- the caller's account --------------------------------------------------------------


def load_account(user_id: ObjectId) -> User | None:
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
    return User._from_son(document)


def account_of(caller: Caller) -> User:
    """The caller's account as accounts' own document, which `load_account` loaded."""
    return cast(User, caller.user)


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
        for session in sorted(
            account_of(caller).sessions, key=lambda s: s.last_used_at, reverse=True
        )
        if session.last_used_at > since
    ]
