from __future__ import annotations

from datetime import date

from marshmallow import fields, validate

from app.fields import BoundedDate, CityCode, Month, NotEmpty, Rfc3339DateTime, Text
from app.web import PageArgsSchema, Schema, StrictInteger
from partners.scorecards import SORTABLE

# Contracts are signed for dates people can mean: this century.
_CONTRACT_DATES = {"earliest": date(2000, 1, 1), "latest": date(2099, 12, 31)}
MAX_ALLOCATION = 100_000_000


class CityPartnerCreateSchema(Schema):
    name = Text(200, required=True)
    contact = Text(500, required=True)
    city_code = CityCode(required=True)
    contract_start = BoundedDate(required=True, **_CONTRACT_DATES)
    contract_end = BoundedDate(
        required=True, **_CONTRACT_DATES, metadata={"description": "Its last day"}
    )


class CityPartnerUpdateSchema(NotEmpty, Schema):
    contact = Text(500)
    contract_end = BoundedDate(**_CONTRACT_DATES)


class CityPartnerListArgsSchema(PageArgsSchema):
    city = CityCode()


class BudgetFiguresSchema(Schema):
    month = fields.String()
    allocated = fields.Integer()
    reserved = fields.Integer()
    drawn = fields.Integer()
    released = fields.Integer()
    left = fields.Integer(metadata={"description": "allocated - reserved + released"})


class CityPartnerSchema(Schema):
    id = fields.String()
    name = fields.String()
    contact = fields.String()
    city_code = fields.String()
    contract_start = fields.String(metadata={"description": "YYYY-MM-DD, in the city's zone"})
    contract_end = fields.String(metadata={"description": "Its last day"})
    active = fields.Boolean(metadata={"description": "Runs the city today"})
    created_at = Rfc3339DateTime()
    ended_at = Rfc3339DateTime(allow_none=True)


class LeaderSchema(Schema):
    user_id = fields.String()
    display_name = fields.String(allow_none=True)
    attached_at = Rfc3339DateTime()


class CityPartnerDetailsSchema(CityPartnerSchema):
    leaders = fields.List(fields.Nested(LeaderSchema))
    budget = fields.Nested(BudgetFiguresSchema, metadata={"description": "The current month"})


class AllocationSchema(Schema):
    month = Month(required=True)
    points = StrictInteger(required=True, validate=validate.Range(1, MAX_ALLOCATION))


class MonthArgsSchema(Schema):
    month = Month("YYYY-MM; default the current month")


class BudgetArgsSchema(PageArgsSchema, MonthArgsSchema):
    pass


class BudgetEntrySchema(Schema):
    id = fields.String()
    kind = fields.String()
    points = fields.Integer()
    event_id = fields.String(allow_none=True)
    created_at = Rfc3339DateTime()


class BudgetSchema(BudgetFiguresSchema):
    entries = fields.List(fields.Nested(BudgetEntrySchema))
    next_cursor = fields.String(allow_none=True)


class ScorecardFiguresSchema(Schema):
    new_verified_owners = fields.Integer()
    active_owners = fields.Integer(
        metadata={"description": "Posted, commented, attended, gave feedback or redeemed"}
    )
    events_held = fields.Integer(metadata={"description": "Completed, starting in the month"})
    registrations = fields.Integer()
    attended = fields.Integer()
    no_shows = fields.Integer()
    attendance_rate = fields.Float(allow_none=True)
    no_show_rate = fields.Float(allow_none=True)
    feedback_count = fields.Integer()
    average_rating = fields.Float(allow_none=True, metadata={"description": "1-5"})
    nps = fields.Float(allow_none=True, metadata={"description": "% promoters - % detractors"})
    follow_ups_open = fields.Integer()
    follow_ups_overdue = fields.Integer()
    points_issued = fields.Integer()
    points_issued_by_source = fields.Dict(keys=fields.String(), values=fields.Integer())
    budget_allocated = fields.Integer()
    budget_used = fields.Integer(metadata={"description": "Drawn by check-ins"})
    posts = fields.Integer()
    comments = fields.Integer()
    reports_resolved = fields.Integer()
    median_hours_to_resolve = fields.Float(allow_none=True)
    referrals_completed = fields.Integer()


class ScorecardSchema(Schema):
    city_partner_id = fields.String()
    name = fields.String()
    city_code = fields.String()
    month = fields.String()
    computed_at = Rfc3339DateTime()
    figures = fields.Nested(ScorecardFiguresSchema)


RANKING_ORDERS = ("desc", "asc")


class RankingArgsSchema(Schema):
    month = Month(required=True)
    # A figure's name alone, and the direction apart: enum values a client generator can
    # name (`-figure` values became VALUE_21..VALUE_41).
    sort = fields.String(
        load_default="active_owners",
        validate=validate.OneOf(SORTABLE),
        metadata={"description": "The figure to rank by"},
    )
    order = fields.String(
        load_default="desc",
        validate=validate.OneOf(RANKING_ORDERS),
        metadata={"description": "`desc`: the highest first; partners without the figure last"},
    )


class RankingSchema(Schema):
    month = fields.String()
    sort = fields.String(validate=validate.OneOf(SORTABLE))
    order = fields.String(validate=validate.OneOf(RANKING_ORDERS))
    items = fields.List(fields.Nested(ScorecardSchema))
