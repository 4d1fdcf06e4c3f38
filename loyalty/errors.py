"""The refusals of points, rewards, redemptions and partner credits, in one place."""

from __future__ import annotations

from marshmallow import fields

from app.errors import Conflict, Forbidden, Unauthorized, ValidationFailed


class InvalidSignature(Unauthorized):
    """A partner request with a bad key, signature or timestamp (one answer for all)."""

    error = "invalid_signature"
    message = "The partner request could not be authenticated."


class InsufficientPoints(Conflict):
    error = "insufficient_points"
    message = "Not enough points."


class NotInCity(Conflict):
    error = "not_in_city"
    message = "This reward is not offered in your city."


class CityTooRecent(Conflict):
    """Redeeming a city-limited reward within 30 days of moving to the city (`eligible_from`
    says when it opens to the owner)."""

    error = "city_too_recent"
    message = "This city's rewards are for owners settled there; yours open on {eligible_from}."
    detail_fields = {
        "eligible_from": fields.String(required=True, metadata={"format": "date-time"})
    }


class TierTooLow(Conflict):
    """Redeeming a reward above the owner's tier (`min_tier` names the tier it needs)."""

    error = "tier_too_low"
    message = "This reward needs the {min_tier} tier."
    detail_fields = {"min_tier": fields.String(required=True)}


class DropOnly(Conflict):
    """The reward, or the event, is released through a drop while it runs (`drop_id`
    names it): enter the drop instead."""

    error = "drop_only"
    message = "This is released through a drop: enter the drop instead."
    detail_fields = {"drop_id": fields.String(required=True)}


class LimitReached(Conflict):
    error = "limit_reached"
    message = "You reached the limit for this reward."


class OutOfStock(Conflict):
    error = "out_of_stock"
    message = "This reward is out of stock."


class OwnPoints(Forbidden):
    error = "own_points"
    message = "Another admin must adjust or reverse your points."


class OwnRedemption(Forbidden):
    error = "own_redemption"
    message = "Another member of staff must hand your reward over."


class RedemptionNotPending(Conflict):
    error = "not_pending"
    message = "Only a pending redemption can be cancelled or fulfilled."


class NotReversible(Conflict):
    error = "not_reversible"
    message = "Only an earn or a positive adjustment can be reversed."


class AlreadyReversed(Conflict):
    error = "already_reversed"
    message = "This entry was already reversed."


class PartnerTxnReused(Conflict):
    """A partner `partner_txn_id` sent again for another member or with other points."""

    error = "partner_txn_reused"
    message = "This partner_txn_id was already used for another credit."


class OverCap(ValidationFailed):
    """A partner credit above the partner's cap (`max_points_per_txn`)."""

    error = "over_cap"
    message = "At most {max_points_per_txn} points per transaction."
    detail_fields = {"max_points_per_txn": fields.Integer(required=True)}


class UnknownMember(ValidationFailed):
    error = "unknown_member"
    message = "No owner with this id or phone."
