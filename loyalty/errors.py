"""The refusals of points, rewards, redemptions and ecosystem partners, in one place."""

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
    """A partner `partner_txn_id` sent again for another member, kind or points."""

    error = "partner_txn_reused"
    message = "This partner_txn_id was already used for another transaction."


class OverCap(ValidationFailed):
    """A partner credit above the partner's cap (`max_points_per_txn`)."""

    error = "over_cap"
    message = "At most {max_points_per_txn} points per transaction."
    detail_fields = {"max_points_per_txn": fields.Integer(required=True)}


class UnknownMember(ValidationFailed):
    error = "unknown_member"
    message = "No owner with this id or phone."


# --- ecosystem partners: points both ways ----------------------------------------------


class UnknownPartner(ValidationFailed):
    error = "unknown_partner"
    message = "No active ecosystem partner with this id."


class DailyCapReached(Conflict):
    """A partner's credits (or debits) of its business day would pass its daily cap."""

    error = "daily_cap_reached"
    message = "The partner's daily {direction} cap of {cap} points is reached."
    detail_fields = {
        "direction": fields.String(required=True),
        "cap": fields.Integer(required=True),
    }


class InvalidPayCode(ValidationFailed):
    """No pay code of this number for this partner (none issued, or one bound to another
    partner): the answer does not say which."""

    error = "invalid_pay_code"
    message = "This pay code is not valid here."


class PayCodeUsed(Conflict):
    error = "pay_code_used"
    message = "This pay code was already used."


class PayCodeExpired(Conflict):
    error = "pay_code_expired"
    message = "This pay code has expired; the owner must show a new one."


class OverPayCodeMax(Conflict):
    """A debit above the most the owner allowed with the pay code (`max_points`)."""

    error = "over_pay_code_max"
    message = "The owner allowed at most {max_points} points with this pay code."
    detail_fields = {"max_points": fields.Integer(required=True)}


class UnknownPartnerTxn(ValidationFailed):
    error = "unknown_partner_txn"
    message = "No credit or debit of this partner has this partner_txn_id."


class OverReversal(Conflict):
    """Reversals of a transaction adding up to more than it moved (`reversible`: what is
    left to reverse)."""

    error = "over_reversal"
    message = "At most {reversible} more points of this transaction can be reversed."
    detail_fields = {"reversible": fields.Integer(required=True)}


class DayNotOver(Conflict):
    """A statement of a business day that has not ended yet (`ends_at`: when it does)."""

    error = "day_not_over"
    message = "The business day {date} is not over yet."
    detail_fields = {
        "date": fields.String(required=True, metadata={"format": "date"}),
        "ends_at": fields.String(required=True, metadata={"format": "date-time"}),
    }


class ExceptionResolved(Conflict):
    """Resolving a statement exception already resolved another way (`resolution`)."""

    error = "exception_resolved"
    message = "This exception was already resolved ({action})."
    detail_fields = {"action": fields.String(required=True)}


class ExceptionWithdrawn(Conflict):
    error = "exception_withdrawn"
    message = "A later statement of this day no longer shows this exception."


class ResolutionNotApplicable(Conflict):
    """An action that does not apply to the exception's kind (`actions`: those that do)."""

    error = "resolution_not_applicable"
    message = "This exception can be resolved with: {actions}."
    detail_fields = {"actions": fields.String(required=True)}


class MonthNotOver(Conflict):
    """Closing a partner's month before it ended (`closable_from`: when it can be)."""

    error = "month_not_over"
    message = "The month can be closed from {closable_from}."
    detail_fields = {
        "closable_from": fields.String(required=True, metadata={"format": "date-time"})
    }


class MonthClosed(Conflict):
    error = "month_closed"
    message = "This month was already closed."


class InvalidCsv(ValidationFailed):
    """A bulk credit file that cannot be read as the CSV it should be (its header names
    the columns; `errors` says what is wrong with the file as a whole)."""

    error = "invalid_csv"
    message = "The file is not a CSV with the columns account, points and reason."


class BulkCreditStarted(Conflict):
    error = "bulk_credit_started"
    message = "This bulk credit was started already; its report shows what it applied."
