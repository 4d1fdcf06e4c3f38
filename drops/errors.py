"""The refusals of drops and their entries, in one place.

Who may not enter a drop is told why with the slug a redemption or a registration would
be refused with (403 here: entering is what they may not do), so an app shows the same
reason everywhere.
"""

from __future__ import annotations

from marshmallow import fields

from app.errors import Conflict, DomainError, Forbidden, ValidationFailed


class DropNotOpen(Conflict):
    """Entering before the drop opens (`opens_at` says when)."""

    error = "drop_not_open"
    message = "This drop opens at {opens_at}."
    detail_fields = {"opens_at": fields.String(required=True, metadata={"format": "date-time"})}


class DropClosed(Conflict):
    """Entering once the drop has closed (`closes_at` says when it did)."""

    error = "drop_closed"
    message = "This drop closed at {closes_at}."
    detail_fields = {"closes_at": fields.String(required=True, metadata={"format": "date-time"})}


class AlreadyEntered(Conflict):
    error = "already_entered"
    message = "You have already entered this drop."


class StaffEntry(Forbidden):
    """Staff (circle leaders and ambassadors of any city, and admins) enter no drop: they
    organise drops, see their figures and seeds, and would gain from their own or a
    colleague's staff action."""

    error = "staff_entry"
    message = "Staff do not enter drops."


class NotVerifiedOwner(Forbidden):
    error = "not_verified_owner"
    message = "This drop is for verified owners only."


class NotInCity(Forbidden):
    error = "not_in_city"
    message = "This drop is not open to owners of your city."


class CityTooRecent(Forbidden):
    error = "city_too_recent"
    message = "This drop is for owners settled in its cities for 30 days."


class TierTooLow(Forbidden):
    """Entering a drop above the owner's tier (`min_tier` names the tier it needs)."""

    error = "tier_too_low"
    message = "This drop needs the {min_tier} tier."
    detail_fields = {"min_tier": fields.String(required=True)}


class InsufficientPoints(Forbidden):
    """Entering a reward's drop without the points its quantity costs (`points`), less
    those already held for other draws."""

    error = "insufficient_points"
    message = "Entering needs {points} points you have not spent or held."
    detail_fields = {"points": fields.Integer(required=True)}


class OverOwnerLimit(ValidationFailed):
    """More than the drop's `per_owner_limit` asked for in one entry."""

    error = "over_owner_limit"
    message = "At most {per_owner_limit} per owner."
    detail_fields = {"per_owner_limit": fields.Integer(required=True)}


# --- creating a drop ---


class InvalidDrop(ValidationFailed):
    """A drop whose times, quantity or limits do not fit it or its reward or event (the
    field errors say which)."""

    error = "invalid_drop"
    message = "The drop does not fit its reward or event."


class TargetInDrop(Conflict):
    """The reward or event is already released through a drop, or is not on offer (an
    inactive reward, an event not published)."""

    error = "target_unavailable"
    message = "This reward or event is not on offer, or already in a drop."


class NotEnoughLeft(Conflict):
    """A drop of more than the reward's stock or the event's free seats (`left`)."""

    error = "not_enough_left"
    message = "Only {left} are left to drop."
    detail_fields = {"left": fields.Integer(required=True)}


# --- reasons an entry is refused when its turn comes (no HTTP answer carries them) ---


class EntrantGone(Forbidden):
    """The entrant's account was banned or erased before the entry's turn came."""

    error = "entrant_unavailable"
    message = "The entrant's account can no longer take part."


# Who may not take part, asked on entry and again when the entry's turn comes; by slug.
NOT_ELIGIBLE: tuple[type[DomainError], ...] = (
    StaffEntry,
    OverOwnerLimit,
    NotVerifiedOwner,
    NotInCity,
    CityTooRecent,
    TierTooLow,
    InsufficientPoints,
)
BY_SLUG = {refusal.error: refusal for refusal in NOT_ELIGIBLE}
