from __future__ import annotations

from datetime import timedelta

from marshmallow import fields, validate

from app.fields import AwareDateTime, CityCode, Rfc3339DateTime, StrictBoolean
from app.web import PageArgsSchema, Schema, StrictInteger
from drops.models import MODES, SHOWN_STATUSES, TARGET_TYPES
from loyalty.points_account import TIER_NAMES

MAX_QUANTITY = 1_000_000
MAX_PER_OWNER = 100
MAX_CITIES = 100
PHASES = ("scheduled", "open", "allocating", "decided")


class DropCreateSchema(Schema):
    target_type = fields.String(required=True, validate=validate.OneOf(TARGET_TYPES))
    target_id = fields.String(required=True, validate=validate.Length(1, 64))
    opens_at = AwareDateTime(
        required=True,
        earliest=-timedelta(days=1),
        latest=timedelta(days=365),
        metadata={
            "description": "Now at the earliest (a minute's slack); a draw's seed_hash"
            " is published from creation, before it opens"
        },
    )
    closes_at = AwareDateTime(
        required=True,
        earliest=-timedelta(days=1),
        latest=timedelta(days=400),
        metadata={
            "description": "After opens_at, at most 30 days later; an event's drop"
            " closes by its registration_closes_at"
        },
    )
    quantity = StrictInteger(
        required=True,
        validate=validate.Range(1, MAX_QUANTITY),
        metadata={"description": "Units of the reward, or seats: at most what is left"},
    )
    per_owner_limit = StrictInteger(
        load_default=1,
        validate=validate.Range(1, MAX_PER_OWNER),
        metadata={"description": "Units one entry may ask for (1 for an event)"},
    )
    mode = fields.String(required=True, validate=validate.OneOf(MODES))
    verified_owners_only = StrictBoolean(load_default=False)
    min_tier = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.OneOf(TIER_NAMES),
        metadata={"description": "A reward's drop defaults to (and may not go below) its own"},
    )
    city_codes = fields.List(
        CityCode(),
        load_default=list,
        validate=validate.Length(max=MAX_CITIES),
        metadata={
            "description": "Owners of these cities only (empty: any; a reward's own"
            " cities by default)"
        },
    )


class PerSecondSchema(Schema):
    mean = fields.Float()
    peak = fields.Integer()
    peak_at = Rfc3339DateTime(allow_none=True)


class DropSchema(Schema):
    id = fields.String()
    target_type = fields.String(validate=validate.OneOf(TARGET_TYPES))
    target_id = fields.String()
    title = fields.String()
    city_code = fields.String(allow_none=True)
    opens_at = Rfc3339DateTime()
    closes_at = Rfc3339DateTime()
    phase = fields.String(validate=validate.OneOf(PHASES))
    quantity = fields.Integer()
    per_owner_limit = fields.Integer()
    mode = fields.String(validate=validate.OneOf(MODES))
    verified_owners_only = fields.Boolean()
    min_tier = fields.String(allow_none=True)
    city_codes = fields.List(fields.String())
    cost = fields.Integer(
        allow_none=True, metadata={"description": "A reward's points per unit (held in a draw)"}
    )
    seed_hash = fields.String(
        allow_none=True,
        metadata={"description": "A draw's SHA-256 of its seed, published before it opens"},
    )
    seed = fields.String(
        allow_none=True,
        metadata={
            "description": "A draw's seed, once drawn: an entry's ticket is SHA-256 of"
            " `<seed>:<entry id>` (hex), and entries are served lowest ticket first"
        },
    )
    seed_revealed_at = Rfc3339DateTime(allow_none=True)
    entries = fields.Integer(metadata={"description": "Counted a few seconds behind"})
    allocated = fields.Integer()
    waiting = fields.Integer(metadata={"description": "Entries not decided yet"})
    created_at = Rfc3339DateTime()
    decided_at = Rfc3339DateTime(allow_none=True)


class DropFiguresSchema(Schema):
    id = fields.String()
    phase = fields.String(validate=validate.OneOf(PHASES))
    quantity = fields.Integer()
    entries = fields.Integer()
    entries_per_second = fields.Nested(PerSecondSchema)
    first_entry_at = Rfc3339DateTime(allow_none=True)
    last_entry_at = Rfc3339DateTime(allow_none=True)
    allocated = fields.Integer(metadata={"description": "Places given (won, or being made)"})
    won = fields.Integer()
    lost = fields.Integer()
    refused = fields.Integer()
    refused_by_reason = fields.Dict(keys=fields.String(), values=fields.Integer())
    waiting = fields.Integer()
    told = fields.Integer(metadata={"description": "Entrants told how their entry ended"})
    closes_at = Rfc3339DateTime()
    decided_at = Rfc3339DateTime(allow_none=True)
    last_told_at = Rfc3339DateTime(allow_none=True)
    seconds_from_close_to_last_told = fields.Float(
        allow_none=True, metadata={"description": "Once every entrant was told"}
    )


class DropListArgsSchema(PageArgsSchema):
    include_decided = fields.Boolean(load_default=False)


class EntryCreateSchema(Schema):
    quantity = StrictInteger(
        load_default=1,
        validate=validate.Range(1, MAX_PER_OWNER),
        metadata={"description": "At most the drop's per_owner_limit"},
    )


class EntryAcceptedSchema(Schema):
    id = fields.String()
    drop_id = fields.String()
    status = fields.String(validate=validate.OneOf(SHOWN_STATUSES))
    quantity = fields.Integer()
    entered_at = Rfc3339DateTime()


class EntrySchema(EntryAcceptedSchema):
    reason = fields.String(
        allow_none=True, metadata={"description": "Why it was refused (an eligibility slug)"}
    )
    position = fields.Integer(
        allow_none=True,
        metadata={"description": "Its turn in the drop's order (1 first), once it came"},
    )
    allocated = fields.Integer(allow_none=True, metadata={"description": "Units won"})
    made_id = fields.String(
        allow_none=True,
        metadata={"description": "The redemption or registration it won"},
    )
    decided_at = Rfc3339DateTime(allow_none=True)
