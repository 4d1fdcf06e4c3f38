from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates_schema

from app.web import PageArgsSchema, Schema, StrictInteger
from loyalty.ledger import TIER_NAMES
from loyalty.models import ENTRY_KINDS, FULFILLMENTS
from loyalty.rules import CAP_PERIODS

CITY_CODE = validate.Regexp(r"^[A-Z]{2,8}$")


class NextTierSchema(Schema):
    name = fields.String()
    points_needed = fields.Integer()


class ExpiringSchema(Schema):
    points = fields.Integer()
    expires_at = fields.DateTime()


class PointsSchema(Schema):
    balance = fields.Integer()
    lifetime_earned = fields.Integer()
    tier = fields.String()
    tier_points = fields.Integer(metadata={"description": "Earned in the rolling 12 months"})
    next_tier = fields.Nested(NextTierSchema, allow_none=True)
    expiring = fields.List(
        fields.Nested(ExpiringSchema),
        metadata={"description": "Points expiring in the next 90 days"},
    )


class LedgerEntrySchema(Schema):
    id = fields.String()
    kind = fields.String(validate=validate.OneOf(ENTRY_KINDS))
    amount = fields.Integer()
    balance_after = fields.Integer()
    reason = fields.String()
    source = fields.Dict()
    created_at = fields.DateTime()
    expires_at = fields.DateTime(allow_none=True)


class AdjustmentSchema(Schema):
    user_id = fields.String(required=True)
    amount = StrictInteger(required=True, validate=validate.Range(min=-1_000_000, max=1_000_000))
    reason = fields.String(required=True, validate=validate.Length(1, 500))


class ReversalSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(1, 500))


class AdjustmentEntrySchema(LedgerEntrySchema):
    account_id = fields.String()
    actor_id = fields.String()


class CapsSchema(Schema):
    day = StrictInteger(allow_none=True, validate=validate.Range(min=0))
    week = StrictInteger(allow_none=True, validate=validate.Range(min=0))
    month = StrictInteger(allow_none=True, validate=validate.Range(min=0))


class EarningRuleSchema(Schema):
    code = fields.String()
    event_type = fields.String()
    description = fields.String()
    points = fields.Integer()
    caps = fields.Dict(
        keys=fields.String(validate=validate.OneOf(CAP_PERIODS)),
        values=fields.Integer(allow_none=True),
    )
    active = fields.Boolean()
    multipliable = fields.Boolean()
    updated_at = fields.DateTime()


class EarningRuleUpdateSchema(Schema):
    points = StrictInteger(validate=validate.Range(min=0, max=1_000_000))
    caps = fields.Nested(CapsSchema)
    active = fields.Boolean()
    multipliable = fields.Boolean()
    description = fields.String(validate=validate.Length(max=200))


class RewardSchema(Schema):
    id = fields.String()
    title = fields.String()
    description = fields.String(allow_none=True)
    cost = fields.Integer()
    stock = fields.Integer()
    per_owner_limit = fields.Integer(allow_none=True)
    min_tier = fields.String()
    city_codes = fields.List(fields.String())
    fulfillment = fields.String()
    active = fields.Boolean()
    created_at = fields.DateTime()


class RewardUpdateSchema(Schema):
    title = fields.String(validate=validate.Length(1, 200))
    description = fields.String(allow_none=True, validate=validate.Length(max=2000))
    cost = StrictInteger(validate=validate.Range(min=1, max=10_000_000))
    stock = StrictInteger(validate=validate.Range(min=0, max=10_000_000))
    per_owner_limit = StrictInteger(allow_none=True, validate=validate.Range(min=1))
    min_tier = fields.String(validate=validate.OneOf(TIER_NAMES))
    city_codes = fields.List(fields.String(validate=CITY_CODE), validate=validate.Length(max=100))
    fulfillment = fields.String(validate=validate.OneOf(FULFILLMENTS))
    active = fields.Boolean()


class RewardCreateSchema(RewardUpdateSchema):
    title = fields.String(required=True, validate=validate.Length(1, 200))
    cost = StrictInteger(required=True, validate=validate.Range(min=1, max=10_000_000))
    stock = StrictInteger(required=True, validate=validate.Range(min=0, max=10_000_000))
    min_tier = fields.String(load_default="member", validate=validate.OneOf(TIER_NAMES))
    city_codes = fields.List(
        fields.String(validate=CITY_CODE), load_default=list, validate=validate.Length(max=100)
    )
    fulfillment = fields.String(required=True, validate=validate.OneOf(FULFILLMENTS))


class RewardArgsSchema(PageArgsSchema):
    city = fields.String(validate=CITY_CODE)


class RedemptionCreateSchema(Schema):
    reward_id = fields.String(required=True)
    quantity = StrictInteger(load_default=1, validate=validate.Range(min=1, max=100))


class RedemptionSchema(Schema):
    id = fields.String()
    user_id = fields.String()
    reward_id = fields.String()
    reward_title = fields.String()
    quantity = fields.Integer()
    points = fields.Integer()
    fulfillment = fields.String()
    city_code = fields.String(allow_none=True)
    status = fields.String()
    created_at = fields.DateTime()
    fulfilled_at = fields.DateTime(allow_none=True)
    cancelled_at = fields.DateTime(allow_none=True)


class PartnerCreateSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(1, 100))
    max_points_per_txn = StrictInteger(required=True, validate=validate.Range(min=1, max=1_000_000))


class PartnerCreatedSchema(Schema):
    id = fields.String()
    name = fields.String()
    key = fields.String()
    secret = fields.String(metadata={"description": "Shown only in this response"})
    max_points_per_txn = fields.Integer()


class PartnerCreditCreateSchema(Schema):
    member_id = fields.String()
    member_phone = fields.String(validate=validate.Length(3, 32))
    points = StrictInteger(required=True, validate=validate.Range(min=1))
    partner_txn_id = fields.String(required=True, validate=validate.Length(1, 128))
    occurred_at = fields.AwareDateTime(load_default=None)

    @validates_schema
    def one_member(self, data, **kwargs):
        if bool(data.get("member_id")) == bool(data.get("member_phone")):
            raise ValidationError("Give exactly one of member_id or member_phone.", "_schema")


class PartnerCreditSchema(Schema):
    id = fields.String()
    partner_txn_id = fields.String()
    member_id = fields.String()
    points = fields.Integer()
    balance_after = fields.Integer()
    entry_id = fields.String()
    occurred_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()


class DriftSchema(Schema):
    account_id = fields.String()
    cached_balance = fields.Integer()
    computed_balance = fields.Integer()
    lots_total = fields.Integer()
    cached_lifetime_earned = fields.Integer()
    computed_lifetime_earned = fields.Integer()


class ReconciliationRunSchema(Schema):
    id = fields.String()
    status = fields.String()
    accounts_checked = fields.Integer()
    entries_checked = fields.Integer()
    drifts = fields.List(fields.Nested(DriftSchema))
    repaired = fields.Integer()
    error = fields.String(allow_none=True)
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)


class RunStartedSchema(Schema):
    id = fields.String()
