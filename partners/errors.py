"""City partners' refusals: each carries its HTTP status and slug."""

from __future__ import annotations

from app.errors import Conflict, NotFound, ValidationFailed


class CityPartnerNotFound(NotFound):
    error = "not_found"
    message = "City partner not found."


class CityTaken(Conflict):
    error = "city_taken"
    message = "The city has an active partner in those dates."


class BudgetExceeded(Conflict):
    error = "budget_exceeded"
    message = "The partner's points budget for the month has too little left."


class InvalidContract(ValidationFailed):
    error = "invalid_contract"
    message = "The contract ends before it starts."


class MonthOutsideContract(ValidationFailed):
    error = "month_outside_contract"
    message = "The month is outside the partner's contract."


class FutureMonth(ValidationFailed):
    error = "future_month"
    message = "The month has not started yet."
