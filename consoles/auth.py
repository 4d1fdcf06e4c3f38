"""Signing in to the consoles: a cookie session (HttpOnly, SameSite=Lax, Secure outside
development, signed with SECRET_KEY) that names one of the account's device sessions, the
same kind a login through the API opens. So it is listed in `GET /me/sessions`, and ending
it there, a password change or reset, a ban, an erasure or the loss of every staff role ends
the console on its next page, which costs no read beyond the account read every API request
makes. It also ends CONSOLE_SESSION_HOURS after signing in.
"""

from __future__ import annotations

from datetime import timedelta

import structlog
from flask import current_app, request, session

from accounts import credentials, sessions
from accounts.services import AMBASSADOR, CIRCLE_LEADER
from app.auth import ADMIN, Caller, load_caller
from app.clock import utcnow
from app.errors import Forbidden

log = structlog.get_logger()
_KEPT = "consoles.staff"


class NotStaff(Forbidden):
    error = "not_staff"
    message = "This console is for circle leaders, ambassadors and admins."


STAFF_ROLES = (ADMIN, CIRCLE_LEADER, AMBASSADOR)


def holds(staff: Caller, role: str) -> bool:
    """Whether the caller holds `role` somewhere (admins hold every role)."""
    return staff.is_admin or bool(staff.cities_for(role))


def is_staff(person: Caller) -> bool:
    return any(holds(person, role) for role in STAFF_ROLES)


def sign_in(account: str, password: str, device: str) -> Caller:
    """Check the credentials (the API's refusals: 401 `invalid_credentials`, 403
    `account_banned`) of a staff account (403 `not_staff`) and open its session."""
    account = account.strip()
    email, phone = (account, None) if "@" in account else (None, account)
    user = credentials.authenticate(password=password, email=email, phone=phone)
    staff = load_caller(user.pk)
    if staff is None or not is_staff(staff):
        raise NotStaff()
    session_id, _ = sessions.open_session(user.pk, f"Console: {device}"[:200])
    language = session.get("lang")
    session.clear()  # a new session: nothing from before signing in carries over
    session.update(uid=str(user.pk), sid=session_id, at=utcnow().timestamp())
    if language:
        session["lang"] = language
    log.info("console_signed_in", user_id=str(user.pk), session_id=session_id)
    return staff


def sign_out() -> None:
    staff = signed_in_staff()
    if staff is not None:
        sessions.end_session(staff.user.pk, staff.session_id)
    _forget()


def _forget() -> None:
    language = session.get("lang")
    session.clear()
    if language:
        session["lang"] = language


def signed_in_staff() -> Caller | None:
    """The staff member this request's cookie speaks for, in one read of the account;
    None (and the cookie forgotten) when there is none or their session has ended."""
    # Kept for the request (not in `g`, which outlives a request wherever an app context
    # was pushed around several, as in tests).
    if _KEPT in request.environ:
        return request.environ[_KEPT]
    found = None
    user_id, session_id, at = session.get("uid"), session.get("sid"), session.get("at")
    if user_id and session_id and isinstance(at, float | int):
        found = load_caller(user_id, session_id)
        hours = current_app.config["CONSOLE_SESSION_HOURS"]
        expired = utcnow().timestamp() - at > timedelta(hours=hours).total_seconds()
        live = found is not None and any(s.sid == session_id for s in found.user.sessions)
        if found is not None and (expired or not is_staff(found)):
            # Signed out by time or by losing every staff role: the device session ends too.
            if live:
                sessions.end_session(found.user.pk, session_id)
            found = None
        elif found is not None and (not live or found.user.banned(utcnow())):
            found = None
        if found is None:
            _forget()
    request.environ[_KEPT] = found
    return found
