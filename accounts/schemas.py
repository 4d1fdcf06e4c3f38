from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from marshmallow import ValidationError, fields, validate, validates_schema

from accounts.models import (
    DEFAULT_TIMEZONE,
    GRANTABLE_ROLES,
    LOCALES,
    OWNER,
    VEHICLE_PENDING,
    VEHICLE_REJECTED,
    VEHICLE_VERIFIED,
)
from app.fields import CityCode, FullMatch, NotEmpty, Rfc3339DateTime, Text
from app.web import PageArgsSchema, Schema

DISPLAY_NAME_LENGTH = 50
VEHICLE_STATUSES = (VEHICLE_PENDING, VEHICLE_VERIFIED, VEHICLE_REJECTED)

DEVICE = fields.String(
    validate=validate.Length(1, 100),
    metadata={"description": "A name for this device in the session list (else its User-Agent)"},
)
NEW_PASSWORD = fields.String(required=True, load_only=True, validate=validate.Length(8, 128))


class IdentifierMixin:
    @validates_schema
    def one_identifier(self, data, **kwargs):
        if bool(data.get("email")) == bool(data.get("phone")):
            raise ValidationError("Give exactly one of email or phone.", "_schema")


class RegisterSchema(IdentifierMixin, Schema):
    email = fields.Email(validate=validate.Length(max=254))
    phone = fields.String(validate=validate.Length(min=3, max=32))
    password = fields.String(required=True, load_only=True, validate=validate.Length(8, 128))
    display_name = Text(DISPLAY_NAME_LENGTH, required=True)
    city_code = CityCode(required=True)
    referral_code = fields.String(validate=validate.Length(1, 16))
    locale = fields.String(load_default="zh-CN", validate=validate.OneOf(LOCALES))
    device = DEVICE


class LoginSchema(IdentifierMixin, Schema):
    email = fields.String(validate=validate.Length(max=254))
    phone = fields.String(validate=validate.Length(max=32))
    password = fields.String(required=True, load_only=True, validate=validate.Length(max=128))
    device = DEVICE


class SessionSchema(Schema):
    id = fields.String()
    device = fields.String(allow_none=True)
    created_at = fields.DateTime()
    last_used_at = fields.DateTime()
    current = fields.Boolean()


class PasswordChangeSchema(Schema):
    current_password = fields.String(
        required=True, load_only=True, validate=validate.Length(max=128)
    )
    new_password = NEW_PASSWORD


class PasswordResetRequestSchema(IdentifierMixin, Schema):
    email = fields.String(validate=validate.Length(max=254))
    phone = fields.String(validate=validate.Length(max=32))


class PasswordResetConfirmSchema(PasswordResetRequestSchema):
    code = fields.String(
        required=True, load_only=True, validate=FullMatch(r"^[0-9]{6}$", error="Six digits.")
    )
    new_password = NEW_PASSWORD


class GrantSummarySchema(Schema):
    role = fields.String(validate=validate.OneOf(GRANTABLE_ROLES))
    city_codes = fields.List(
        fields.String(), metadata={"description": "Empty for an admin, who acts in every city"}
    )


class CityPartnerRefSchema(Schema):
    id = fields.String()
    name = fields.String()
    city_code = fields.String()


class UserSchema(Schema):
    id = fields.String()
    display_name = fields.String()
    email = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    avatar_url = fields.URL(allow_none=True)
    city_code = fields.String()
    city_since = Rfc3339DateTime(
        metadata={
            "description": "When the city was set (sign-up or the last change); the first "
            "change is free, each later one waits 90 days, and a city's own rewards wait 30"
        }
    )
    locale = fields.String(validate=validate.OneOf(LOCALES))
    roles = fields.List(fields.String(validate=validate.OneOf((OWNER, *GRANTABLE_ROLES))))
    grants = fields.List(
        fields.Nested(GrantSummarySchema),
        metadata={"description": "The caller's role grants with their cities (staff discovery)"},
    )
    city_partners = fields.List(
        fields.Nested(CityPartnerRefSchema),
        metadata={"description": "The city partners the caller works for, as a circle leader"},
    )
    verified_owner = fields.Boolean()
    tier = fields.String()
    referral_code = fields.String()
    created_at = Rfc3339DateTime()


class TokensSchema(Schema):
    access_token = fields.String()
    refresh_token = fields.String()
    token_type = fields.String()
    expires_in = fields.Integer()


class RegisteredSchema(TokensSchema):
    user = fields.Nested(UserSchema)


class ReferralSchema(Schema):
    code = fields.String()
    invited = fields.Integer()
    completed = fields.Integer()


class ProfileUpdateSchema(NotEmpty, Schema):
    display_name = Text(DISPLAY_NAME_LENGTH)
    avatar_url = fields.URL(allow_none=True, validate=validate.Length(max=500))
    city_code = CityCode(
        metadata={
            "description": "At most once every 90 days; a city's own rewards wait 30 days"
            " for owners new to it"
        }
    )
    locale = fields.String(validate=validate.OneOf(LOCALES))


class RoleGrantCreateSchema(Schema):
    user_id = fields.String(required=True)
    role = fields.String(required=True, validate=validate.OneOf(GRANTABLE_ROLES))
    city_codes = fields.List(CityCode(), load_default=list, validate=validate.Length(max=50))


class RoleGrantSchema(Schema):
    id = fields.String()
    user_id = fields.String()
    role = fields.String(validate=validate.OneOf(GRANTABLE_ROLES))
    city_codes = fields.List(fields.String())
    granted_by = fields.String()
    created_at = Rfc3339DateTime()


class CityCreateSchema(Schema):
    code = CityCode(required=True)
    name = Text(100, required=True)
    province = Text(100, required=True)
    timezone = fields.String(load_default=DEFAULT_TIMEZONE)

    @validates_schema
    def known_timezone(self, data, **kwargs):
        try:
            ZoneInfo(data.get("timezone", DEFAULT_TIMEZONE))
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValidationError("Unknown time zone.", "timezone") from exc


class CitySchema(Schema):
    code = fields.String()
    name = fields.String()
    province = fields.String()
    timezone = fields.String()


class VehicleCreateSchema(Schema):
    vin = fields.String(required=True, validate=validate.Length(min=1, max=32))
    model = Text(100, required=True)
    delivered_on = fields.Date(
        allow_none=True, metadata={"description": "From 1990 to today in the owner's city"}
    )


class VehicleSchema(Schema):
    id = fields.String()
    owner_id = fields.String()
    vin = fields.String()
    model = fields.String()
    delivered_on = fields.Date(allow_none=True)
    city_code = fields.String()
    status = fields.String(validate=validate.OneOf(VEHICLE_STATUSES))
    rejection_reason = fields.String(allow_none=True)
    reviewed_at = Rfc3339DateTime(allow_none=True)
    created_at = Rfc3339DateTime()


class VehicleQueueArgsSchema(PageArgsSchema):
    status = fields.String(
        load_default=VEHICLE_PENDING,
        validate=validate.OneOf(VEHICLE_STATUSES),
    )
    city = CityCode()


class RejectSchema(Schema):
    reason = Text(500, required=True)
