from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates_schema

from app.fields import AwareDateTime, CityCode, NotEmpty, Rfc3339DateTime, StrictBoolean, Text
from app.web import PageArgsSchema, Schema, StrictInteger, sometimes_absent
from loyalty.models import ENTRY_KINDS, FULFILLMENTS, REDEMPTION_STATUSES, RUN_STATUSES
from loyalty.points_account import TIER_NAMES
from loyalty.rules import CAP_PERIODS, EVENT_POINTS_CEILING
from loyalty.stock import MAX_BUCKETS as MAX_STOCK_BUCKETS

# The most points one movement (an adjustment, a partner credit, one earning) may carry.
MAX_POINTS = 1_000_000
MAX_COST = 10_000_000
MAX_STOCK = 10_000_000
# How often a rule may pay out per period, and how many of a reward one owner may take.
MAX_CAP = 10_000
MAX_PER_OWNER = 10_000
MAX_CITIES = 100


class NextTierSchema(Schema):
    name = fields.String(validate=validate.OneOf(TIER_NAMES))
    points_needed = fields.Integer()


class ExpiringSchema(Schema):
    points = fields.Integer()
    expires_at = Rfc3339DateTime()


class PointsSchema(Schema):
    balance = fields.Integer()
    lifetime_earned = fields.Integer()
    tier = fields.String(validate=validate.OneOf(TIER_NAMES))
    tier_points = fields.Integer(metadata={"description": "Earned in the rolling 12 months"})
    next_tier = fields.Nested(NextTierSchema, allow_none=True)
    expiring = fields.List(
        fields.Nested(ExpiringSchema),
        metadata={"description": "Points expiring in the next 90 days"},
    )
    held = fields.Integer(
        metadata={
            "description": "Part of the balance held for entries in drops' draws: not"
            " spendable until the draw spends or releases it"
        }
    )


class LedgerEntrySchema(Schema):
    id = fields.String()
    kind = fields.String(validate=validate.OneOf(ENTRY_KINDS))
    amount = fields.Integer()
    balance_after = fields.Integer()
    reason = fields.String()
    source = fields.Dict()
    created_at = Rfc3339DateTime()
    expires_at = Rfc3339DateTime(allow_none=True)


class AdjustmentSchema(Schema):
    user_id = fields.String(required=True)
    amount = StrictInteger(required=True, validate=validate.Range(min=-MAX_POINTS, max=MAX_POINTS))
    reason = Text(500, required=True)


class ReversalSchema(Schema):
    reason = Text(500, required=True)


class AdjustmentEntrySchema(LedgerEntrySchema):
    """The entry an adjustment or reversal wrote, as its transaction returns it (a document
    with `_id`): the answer is rendered inside that transaction (app/idempotency.py)."""

    id = fields.String(attribute="_id")
    account_id = fields.String()
    actor_id = fields.String()


class CapsSchema(Schema):
    day = StrictInteger(allow_none=True, validate=validate.Range(min=0, max=MAX_CAP))
    week = StrictInteger(allow_none=True, validate=validate.Range(min=0, max=MAX_CAP))
    month = StrictInteger(allow_none=True, validate=validate.Range(min=0, max=MAX_CAP))


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
    max_points = fields.Integer(
        allow_none=True,
        metadata={"description": "event.attended: the most points one event may award"},
    )
    updated_at = Rfc3339DateTime()


class EarningRuleUpdateSchema(NotEmpty, Schema):
    points = StrictInteger(validate=validate.Range(min=0, max=MAX_POINTS))
    caps = fields.Nested(CapsSchema)
    active = StrictBoolean()
    multipliable = StrictBoolean()
    description = Text(200, blank=True)
    max_points = StrictInteger(
        validate=validate.Range(min=0, max=EVENT_POINTS_CEILING),
        metadata={
            "description": "event.attended only: the most points one event may award each"
            " attendee (an event's `points_reward`)"
        },
    )


class RewardSchema(Schema):
    id = fields.String()
    title = fields.String()
    description = fields.String(allow_none=True)
    cost = fields.Integer()
    stock = fields.Integer()
    stock_buckets = fields.Integer(
        metadata={"description": "How many documents the stock is split over (1: one)"}
    )
    drop_id = fields.String(
        allow_none=True,
        metadata={"description": "The drop it is released through while that runs"},
    )
    per_owner_limit = fields.Integer(allow_none=True)
    min_tier = fields.String(validate=validate.OneOf(TIER_NAMES))
    city_codes = fields.List(fields.String())
    fulfillment = fields.String(validate=validate.OneOf(FULFILLMENTS))
    active = fields.Boolean()
    created_at = Rfc3339DateTime()


# Why an owner cannot redeem a reward now: the slug redeeming it would be refused with.
LOCK_REASONS = ("not_in_city", "city_too_recent", "tier_too_low", "out_of_stock")


class RewardOfferSchema(RewardSchema):
    """A reward as an owner browses it: whether they may redeem it now, and if not, why."""

    redeemable = fields.Boolean(
        metadata={
            "description": "Nothing but the owner's points or per-owner limit stands in the way"
        }
    )
    locked_reason = sometimes_absent(
        fields.String(
            validate=validate.OneOf(LOCK_REASONS),
            metadata={"description": "The slug redeeming it would be refused with"},
        ),
        when="when the reward is redeemable",
    )


class RewardFieldsSchema(Schema):
    title = Text(200)
    description = Text(2000, multiline=True, blank=True, allow_none=True)
    cost = StrictInteger(validate=validate.Range(min=1, max=MAX_COST))
    stock = StrictInteger(validate=validate.Range(min=0, max=MAX_STOCK))
    stock_buckets = StrictInteger(
        validate=validate.Range(min=1, max=MAX_STOCK_BUCKETS),
        metadata={
            "description": "Split the stock over this many documents, so that many owners"
            " redeeming at once do not queue on one (a flagship launch: 16); 1 keeps it on"
            " the reward"
        },
    )
    per_owner_limit = StrictInteger(
        allow_none=True, validate=validate.Range(min=1, max=MAX_PER_OWNER)
    )
    min_tier = fields.String(validate=validate.OneOf(TIER_NAMES))
    city_codes = fields.List(CityCode(), validate=validate.Length(max=MAX_CITIES))
    fulfillment = fields.String(validate=validate.OneOf(FULFILLMENTS))
    active = StrictBoolean()


class RewardUpdateSchema(NotEmpty, RewardFieldsSchema):
    pass


class RewardCreateSchema(RewardFieldsSchema):
    title = Text(200, required=True)
    cost = StrictInteger(required=True, validate=validate.Range(min=1, max=MAX_COST))
    stock = StrictInteger(required=True, validate=validate.Range(min=0, max=MAX_STOCK))
    min_tier = fields.String(load_default="member", validate=validate.OneOf(TIER_NAMES))
    city_codes = fields.List(
        CityCode(), load_default=list, validate=validate.Length(max=MAX_CITIES)
    )
    fulfillment = fields.String(required=True, validate=validate.OneOf(FULFILLMENTS))


class RewardArgsSchema(PageArgsSchema):
    city = CityCode()
    include_locked = fields.Boolean(
        load_default=False,
        metadata={"description": "Also rewards above the owner's tier (`tier_too_low`)"},
    )


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
    fulfillment = fields.String(validate=validate.OneOf(FULFILLMENTS))
    city_code = fields.String(allow_none=True)
    status = fields.String(validate=validate.OneOf(REDEMPTION_STATUSES))
    created_at = Rfc3339DateTime()
    fulfilled_at = Rfc3339DateTime(allow_none=True)
    cancelled_at = Rfc3339DateTime(allow_none=True)


class PartnerCreateSchema(Schema):
    name = Text(100, required=True)
    max_points_per_txn = StrictInteger(
        required=True, validate=validate.Range(min=1, max=MAX_POINTS)
    )


class PartnerCreatedSchema(Schema):
    id = fields.String()
    name = fields.String()
    key = fields.String()
    secret = fields.String(metadata={"description": "Shown only in this response"})
    max_points_per_txn = fields.Integer()


class PartnerCreditCreateSchema(Schema):
    member_id = fields.String()
    member_phone = fields.String(validate=validate.Length(3, 32))
    points = StrictInteger(required=True, validate=validate.Range(min=1, max=MAX_POINTS))
    partner_txn_id = fields.String(required=True, validate=validate.Length(1, 128))
    occurred_at = AwareDateTime(load_default=None)

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
    occurred_at = Rfc3339DateTime(allow_none=True)
    created_at = Rfc3339DateTime()


class DriftSchema(Schema):
    account_id = fields.String()
    cached_balance = fields.Integer()
    computed_balance = fields.Integer()
    lots_total = fields.Integer()
    cached_lifetime_earned = fields.Integer()
    computed_lifetime_earned = fields.Integer()


class ReconciliationRunSchema(Schema):
    id = fields.String()
    status = fields.String(validate=validate.OneOf(RUN_STATUSES))
    accounts_checked = fields.Integer()
    entries_checked = fields.Integer()
    drifts = fields.List(fields.Nested(DriftSchema))
    repaired = fields.Integer()
    error = fields.String(allow_none=True)
    created_at = Rfc3339DateTime()
    started_at = Rfc3339DateTime(allow_none=True)
    finished_at = Rfc3339DateTime(allow_none=True)


class RunStartedSchema(Schema):
    id = fields.String()
