"""The refusals of accounts, cities and vehicles: status, slug and message, in one place."""

from __future__ import annotations

from marshmallow import fields

from app.errors import Conflict, Forbidden, Unauthorized, ValidationFailed


class InvalidCredentials(Unauthorized):
    error = "invalid_credentials"
    message = "Wrong account or password."


class RefreshTokenReused(Unauthorized):
    """A refresh token that was already exchanged: the whole session is ended."""

    error = "refresh_token_reused"
    message = "This refresh token was already used; the session has ended."


class WrongPassword(Forbidden):
    error = "wrong_password"
    message = "The current password is wrong."


class OwnVehicle(Forbidden):
    error = "own_vehicle"
    message = "Someone else must review your own vehicle."


class OwnReferral(Forbidden):
    error = "own_referral"
    message = "Someone else must review the vehicle of an owner you referred."


class AccountExists(Conflict):
    error = "account_exists"
    message = "An account with this email or phone already exists."


class CityExists(Conflict):
    error = "city_exists"
    message = "A city with this code already exists."


class CityChangeTooSoon(Conflict):
    """Changing one's city again within 90 days (`possible_from` says when it may)."""

    error = "city_change_too_soon"
    message = "Your city changed less than 90 days ago; it may change from {possible_from}."
    detail_fields = {
        "possible_from": fields.String(required=True, metadata={"format": "date-time"})
    }


class VinTaken(Conflict):
    error = "vin_taken"
    message = "This VIN is already registered."


class VehicleNotPending(Conflict):
    error = "not_pending"
    message = "This vehicle has already been reviewed."


class InvalidPhone(ValidationFailed):
    error = "invalid_phone"
    message = "The phone number is not valid."


class UnknownCity(ValidationFailed):
    error = "unknown_city"
    message = "No city with this code."


class InvalidReferralCode(ValidationFailed):
    error = "invalid_referral_code"
    message = "Unknown referral code."


class CityCodesRequired(ValidationFailed):
    error = "city_codes_required"
    message = "City-scoped roles need cities."


class InvalidVin(ValidationFailed):
    error = "invalid_vin"
    message = "A VIN is 17 characters of A-Z and 0-9, without I, O or Q."


class DeliveryDateOutOfRange(ValidationFailed):
    error = "date_out_of_range"
    message = "The delivery date is not plausible."


class InvalidCode(ValidationFailed):
    error = "invalid_code"
    message = "The code is wrong, used up or expired; ask for a new one."
