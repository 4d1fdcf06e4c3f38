"""City partners' refusals: each carries its HTTP status, slug and details."""

from __future__ import annotations

from marshmallow import fields

from app.errors import Conflict, NotFound, ValidationFailed


class CityPartnerNotFound(NotFound):
    message = "City partner not found."


class CityTaken(Conflict):
    """Another partner's contract (named in the details) overlaps the dates asked for."""

    error = "city_taken"
    message = "The city has a partner from {contract_start} to {contract_end}."
    detail_fields = {
        "city_partner_id": fields.String(required=True),
        "contract_start": fields.String(required=True),
        "contract_end": fields.String(required=True),
    }


class BudgetExceeded(Conflict):
    """The partner's month has less left than the event needs (`left`, `needed`), or an
    event's reservation is used up."""

    error = "budget_exceeded"
    message = "The partner's points budget for the month has too little left."
    detail_fields = {"left": fields.Integer(), "needed": fields.Integer()}


class InvalidContract(ValidationFailed):
    error = "invalid_contract"
    message = "The contract ends before it starts."


class MonthOutsideContract(ValidationFailed):
    error = "month_outside_contract"
    message = "The month is outside the partner's contract."


class FutureMonth(ValidationFailed):
    error = "future_month"
    message = "The month has not started yet."
