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
    # The review desk: `%(name)s` is filled from the refusal's details.
    "already_decided": _l("%(decided_by_name)s decided this item (%(action)s) in the meantime."),
    "claimed": _l("%(claimed_by_name)s is reviewing this item."),
    "own_content": _l("Nobody decides on their own content or account."),
    "staff_account": _l("Only admins warn, mute, ban or restore a staff account."),
    "invalid_transition": _l("The item's status does not allow this any more."),
    "action_not_applicable": _l("This action does not apply to this item."),
    "not_your_decision": _l("Only the ambassador who decided, or an admin, undoes it."),
    "undo_expired": _l("A decision can be undone within %(minutes)s minutes only."),
    "already_undone": _l("This decision was undone already."),
    "not_undoable": _l("An undo is not undone: decide the item again instead."),
    "superseded": _l("The item changed after this decision: decide it again instead."),
    "word_listed": _l("This word is listed already."),
    "no_letters": _l("A word needs letters or digits."),
    # The admin console.
    "city_exists": _l("A city with this code exists already."),
    "unknown_city": _l("There is no such city."),
    "city_taken": _l("The city has another partner from %(contract_start)s to %(contract_end)s."),
    "invalid_contract": _l("A contract cannot end before it starts."),
    "month_outside_contract": _l("That month is outside the partner's contract."),
    "own_points": _l("Nobody adjusts or reverses their own points."),
    "insufficient_points": _l("The owner has too few points for that."),
    "not_reversible": _l("Only an earn or a positive adjustment can be reversed."),
    "already_reversed": _l("This entry was reversed already."),
    "invalid_csv": _l("The file is not a CSV with the columns account, points and reason."),
    "bulk_credit_started": _l("This bulk credit was started already."),
    "already_replayed": _l("This dead letter was replayed already."),
    "service_unavailable": _l("A backing service is down; try again in a moment."),
}

# Decisions as the desk names them (community.models' actions).
ACTION_NAMES: dict[str, Any] = {
    "keep": _l("Keep"),
    "hide": _l("Hide"),
    "remove": _l("Remove"),
    "restore": _l("Restore"),
    "warn": _l("Warn"),
    "mute": _l("Mute"),
    "ban": _l("Ban"),
    "undo": _l("Undo"),
}


def refusal_text(refusal: DomainError) -> Any:
    text = REFUSALS.get(refusal.error)
    if text is None:
        return refusal.message
    if "%(" not in str(text):
        return text
    values = {
        name: ACTION_NAMES.get(value, value) if name == "action" else value
        for name, value in refusal.details.items()
    }
    try:
        return text % values
    except (KeyError, TypeError, ValueError):
        return refusal.message


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
