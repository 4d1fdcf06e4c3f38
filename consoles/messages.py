"""The services' refusals as the consoles say them, in the caller's language: the domains
speak English (`message`) and a stable slug (`error`); a console translates by slug and
falls back on the English sentence for a slug it does not know yet."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l

from app.errors import DomainError

REFUSALS: dict[str, Any] = {
    "not_found": _l("Not found, or not yours to see."),
    "forbidden": _l("Your role does not allow this."),
    "invalid_credentials": _l("Wrong account or password."),
    "account_banned": _l("This account is suspended."),
    "not_staff": _l("This console is for circle leaders, ambassadors and admins."),
    "rate_limited": _l("Too many attempts. Wait a minute and try again."),
    "validation_failed": _l("Some fields are not valid."),
    "invalid_times": _l("The event's times are not in order."),
    "points_reward_too_high": _l("That reward is above what admins allow per event."),
    "capacity_below_confirmed": _l("More places are taken than that capacity."),
    "event_closed": _l("This event is cancelled or completed."),
    "not_draft": _l("Only a draft can be published."),
    "event_started": _l("This event has already started."),
    "not_published": _l("Only a published event can be completed."),
    "event_not_started": _l("An event can be completed once it has started."),
    "budget_exceeded": _l("The partner's budget for that month has too little left."),
    "own_vehicle": _l("Nobody reviews their own vehicle."),
    "own_referral": _l("Nobody reviews the vehicle of an owner they referred."),
    "not_pending": _l("This was already reviewed."),
    "follow_up_closed": _l("This follow-up is already closed."),
    "self_check_in": _l("Another organizer must check you in."),
    "invalid_ticket": _l("This ticket is not valid for this event."),
    "not_confirmed": _l("This registration is not confirmed."),
    "check_in_closed": _l("Check-in is not open now."),
    "future_month": _l("That month has not begun."),
}


def refusal_text(refusal: DomainError) -> Any:
    return REFUSALS.get(refusal.error, refusal.message)


# Why a scan made offline was not taken (events/tickets.py's conflict reasons).
CONFLICT_REASONS: dict[str, Any] = {
    "already_checked_in": _l("Already checked in (another device or by hand)"),
    "ticket_revoked": _l("The registration was cancelled"),
    "not_registered": _l("Not registered for this event"),
    "invalid_ticket": _l("Not a genuine ticket for this event"),
    "check_in_closed": _l("Scanned outside the check-in window"),
    "event_closed": _l("The event was cancelled or completed"),
    "not_confirmed": _l("The registration was not confirmed"),
    "self_check_in": _l("A leader scanned their own ticket"),
    "budget_exceeded": _l("The event's budget was used up"),
}
