"""Schemas of the ecosystem partners' API: pay codes, debits, reversals, statements and
their exceptions, settlements, and the partners' settings."""

from __future__ import annotations

import re
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from marshmallow import ValidationError, fields, validate, validates_schema

from app.fields import AwareDateTime, BoundedDate, NotEmpty, Rfc3339DateTime, StrictBoolean, Text
from app.web import PageArgsSchema, Schema, StrictInteger, sometimes_absent
from loyalty.models import (
    EXCEPTION_KINDS,
    EXCEPTION_STATUSES,
    PARTNER_TXN_KINDS,
    RESOLUTIONS,
    REVERSAL,
    STATEMENT_STATUSES,
)
from loyalty.pay_codes import DIGITS, QR_PREFIX
from loyalty.schemas import MAX_POINTS

# The most lines one statement may carry (a busy charging network's day).
MAX_STATEMENT_LINES = 200_000
# Minor units per 1,000 points: up to 10 million (100,000.00 a thousand points).
MAX_RATE = 10_000_000
MAX_CAP = 1_000_000_000


def _full(pattern: str, error: str) -> Any:
    """A pattern the whole value must match (`validate.Regexp` lets a trailing newline
    through `$`)."""
    compiled = re.compile(pattern)

    def check(value: str) -> None:
        if compiled.fullmatch(value) is None:
            raise ValidationError(error)

    return check


def _timezone(value: str) -> None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError("Not an IANA time zone.") from exc


# A partner's transaction id: printable ASCII, no spaces.
TXN_ID = _full(r"[\x21-\x7e]{1,128}", "1-128 printable ASCII characters, no spaces.")
MONTH = _full(r"20\d\d-(0[1-9]|1[0-2])", "A month as YYYY-MM (2000-2099).")
CUTOFF = _full(r"([01]\d|2[0-3]):[0-5]\d", "A time of day as HH:MM.")
CURRENCY = _full(r"[A-Z]{3}", "An ISO 4217 currency code.")


def TxnId(**kwargs: Any) -> fields.String:  # noqa: N802 - reads like a field class
    return fields.String(validate=TXN_ID, **kwargs)


def Month(**kwargs: Any) -> fields.String:  # noqa: N802 - reads like a field class
    return fields.String(validate=MONTH, metadata={"example": "2026-03"}, **kwargs)


# --- partners ------------------------------------------------------------------------------


class PartnerSettingsSchema(Schema):
    name = Text(100)
    max_points_per_txn = StrictInteger(validate=validate.Range(min=1, max=MAX_POINTS))
    daily_credit_cap = StrictInteger(
        allow_none=True,
        validate=validate.Range(min=1, max=MAX_CAP),
        metadata={"description": "Points the partner may credit per business day (null: none)"},
    )
    daily_debit_cap = StrictInteger(
        allow_none=True,
        validate=validate.Range(min=1, max=MAX_CAP),
        metadata={"description": "Points owners may spend there per business day (null: none)"},
    )
    timezone = fields.String(validate=_timezone, metadata={"example": "Asia/Shanghai"})
    cutoff = fields.String(
        validate=CUTOFF,
        metadata={"description": "When its business day begins, HH:MM in its time zone"},
    )
    currency = fields.String(validate=CURRENCY, metadata={"example": "CNY"})
    credit_rate_per_1000 = StrictInteger(
        validate=validate.Range(min=0, max=MAX_RATE),
        metadata={"description": "Minor units the partner pays per 1,000 points it credits"},
    )
    debit_rate_per_1000 = StrictInteger(
        validate=validate.Range(min=0, max=MAX_RATE),
        metadata={"description": "Minor units the brand pays per 1,000 points spent there"},
    )
    active = StrictBoolean()


class PartnerUpdateSchema(NotEmpty, PartnerSettingsSchema):
    pass


class EcosystemPartnerSchema(Schema):
    id = fields.String()
    name = fields.String()
    key = fields.String()
    max_points_per_txn = fields.Integer()
    daily_credit_cap = fields.Integer(allow_none=True)
    daily_debit_cap = fields.Integer(allow_none=True)
    timezone = fields.String()
    cutoff = fields.String()
    currency = fields.String()
    credit_rate_per_1000 = fields.Integer()
    debit_rate_per_1000 = fields.Integer()
    active = fields.Boolean()
    secret_rotated_at = Rfc3339DateTime(allow_none=True)
    previous_secret_until = Rfc3339DateTime(
        allow_none=True,
        metadata={"description": "While a rotation lasts: until when the previous secret signs"},
    )
    created_at = Rfc3339DateTime()


class SecretRotationSchema(Schema):
    overlap_hours = StrictInteger(
        load_default=24,
        validate=validate.Range(min=0, max=168),
        metadata={"description": "How long the previous secret keeps signing (0: not at all)"},
    )


class SecretIssuedSchema(Schema):
    id = fields.String()
    key = fields.String()
    secret = fields.String(metadata={"description": "Shown only in this response"})
    previous_secret_until = Rfc3339DateTime(allow_none=True)


# --- pay codes, debits and reversals ------------------------------------------------------------


class PayCodeCreateSchema(Schema):
    max_points = StrictInteger(required=True, validate=validate.Range(min=1, max=MAX_POINTS))
    partner_id = fields.String(
        metadata={"description": "Only this ecosystem partner may debit with the code"}
    )


class PayCodeSchema(Schema):
    code = fields.String(metadata={"description": f"{DIGITS} digits"})
    qr = fields.String(metadata={"description": "The text of the QR code to show"})
    max_points = fields.Integer()
    partner_id = fields.String(allow_none=True)
    partner_name = fields.String(allow_none=True)
    expires_at = Rfc3339DateTime()


class PartnerDebitCreateSchema(Schema):
    pay_code = fields.String(
        required=True,
        validate=_full(rf"({QR_PREFIX})?\d{{{DIGITS}}}", "The owner's pay code."),
        metadata={"description": f"The {DIGITS} digits, or the QR code's text"},
    )
    partner_txn_id = TxnId(required=True)
    points = StrictInteger(required=True, validate=validate.Range(min=1, max=MAX_POINTS))
    occurred_at = AwareDateTime(load_default=None)


class PartnerReversalCreateSchema(Schema):
    partner_txn_id = TxnId(
        required=True, metadata={"description": "The credit or debit to reverse"}
    )
    reversal_txn_id = TxnId(required=True, metadata={"description": "This reversal's own id"})
    points = StrictInteger(required=True, validate=validate.Range(min=1, max=MAX_POINTS))
    occurred_at = AwareDateTime(load_default=None)


class PartnerTransactionSchema(Schema):
    id = fields.String()
    partner_txn_id = fields.String()
    kind = fields.String(validate=validate.OneOf(PARTNER_TXN_KINDS))
    member_id = fields.String()
    points = fields.Integer()
    original_txn_id = fields.String(allow_none=True)
    balance_after = fields.Integer()
    entry_id = fields.String()
    occurred_at = Rfc3339DateTime(allow_none=True)
    business_day = fields.String()
    created_at = Rfc3339DateTime()


# --- statements ----------------------------------------------------------------------------


class StatementLineSchema(Schema):
    partner_txn_id = TxnId(required=True)
    member_id = fields.String(validate=validate.Length(1, 64))
    member_phone = fields.String(validate=validate.Length(3, 32))
    kind = fields.String(required=True, validate=validate.OneOf(PARTNER_TXN_KINDS))
    points = StrictInteger(required=True, validate=validate.Range(min=1, max=MAX_POINTS))
    occurred_at = AwareDateTime(required=True)
    original_txn_id = TxnId(metadata={"description": "A reversal: the transaction it reverses"})

    @validates_schema
    def one_member(self, data: dict[str, Any], **kwargs: Any) -> None:
        if bool(data.get("member_id")) == bool(data.get("member_phone")):
            raise ValidationError("Give exactly one of member_id or member_phone.", "_schema")
        if (data["kind"] == REVERSAL) != bool(data.get("original_txn_id")):
            raise ValidationError(
                "A reversal names its original_txn_id; other lines do not.", "original_txn_id"
            )


_TOTAL = {"validate": validate.Range(min=0, max=MAX_POINTS * MAX_STATEMENT_LINES)}


class StatementCreateSchema(Schema):
    date = BoundedDate(
        required=True,
        earliest=date(2000, 1, 1),
        latest=date(2099, 12, 31),
        metadata={"description": "The partner's business day the statement covers"},
    )
    count = StrictInteger(required=True, validate=validate.Range(min=0, max=MAX_STATEMENT_LINES))
    total_credit = StrictInteger(required=True, **_TOTAL)
    total_debit = StrictInteger(required=True, **_TOTAL)
    total_reversal = StrictInteger(**_TOTAL)
    lines = fields.List(
        fields.Nested(StatementLineSchema),
        required=True,
        validate=validate.Length(max=MAX_STATEMENT_LINES),
    )


class StatementReceivedSchema(Schema):
    id = fields.String(attribute="_id")
    date = fields.String(metadata={"format": "date"})  # stored as its ISO text
    version = fields.Integer()
    status = fields.String(validate=validate.OneOf(STATEMENT_STATUSES))
    line_count = fields.Integer()
    received_at = Rfc3339DateTime()


class StatementHeaderSchema(Schema):
    count = fields.Integer()
    total_credit = fields.Integer()
    total_debit = fields.Integer()
    total_reversal = sometimes_absent(fields.Integer(), when="when the statement gave none")


# Either side of an exception is a transaction, or, for `totals_mismatch`, the control
# totals: each field is absent from the other shape, and where that side has no such value.
_TOTALS_ONLY = "except on `totals_mismatch`"
_LINE_ONLY = "on `totals_mismatch`, and where this side has no such value"


class ExceptionSideSchema(Schema):
    """A transaction as one side has it; for `totals_mismatch`, the control totals."""

    count = sometimes_absent(fields.Integer(), when=_TOTALS_ONLY)
    total_credit = sometimes_absent(fields.Integer(), when=_TOTALS_ONLY)
    total_debit = sometimes_absent(fields.Integer(), when=_TOTALS_ONLY)
    total_reversal = sometimes_absent(fields.Integer(), when=_TOTALS_ONLY)
    kind = sometimes_absent(
        fields.String(validate=validate.OneOf(PARTNER_TXN_KINDS)), when=_LINE_ONLY
    )
    member_id = sometimes_absent(fields.String(), when=_LINE_ONLY)
    member_phone = sometimes_absent(fields.String(), when=_LINE_ONLY)
    points = sometimes_absent(fields.Integer(), when=_LINE_ONLY)
    occurred_at = sometimes_absent(Rfc3339DateTime(allow_none=True), when=_LINE_ONLY)
    business_day = sometimes_absent(fields.String(metadata={"format": "date"}), when=_LINE_ONLY)
    original_txn_id = sometimes_absent(
        fields.String(), when="but on a reversal, and where this side has none"
    )
    voided = sometimes_absent(
        fields.Boolean(metadata={"description": "Ours: an admin took it back"}), when="on theirs"
    )
    copies = sometimes_absent(
        fields.Integer(metadata={"description": "Theirs: how often the statement lists it"}),
        when="on ours",
    )
    reversible = sometimes_absent(
        fields.Integer(metadata={"description": "Ours: what is left to reverse"}),
        when="on theirs",
    )


class ResolutionRecordSchema(Schema):
    action = fields.String(validate=validate.OneOf(RESOLUTIONS))
    reason = fields.String()
    by = fields.String()
    at = Rfc3339DateTime()
    entry_ids = fields.List(fields.String())
    booked_on = fields.String(
        allow_none=True, metadata={"description": "The business day its movements count on"}
    )


class _Resolution(fields.Nested):
    """An exception not yet resolved keeps an empty `resolution` document: null here."""

    # marshmallow's Field and Nested name the first argument differently: either is "wrong".
    def _serialize(self, nested_obj: Any, attr: Any, obj: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return super()._serialize(nested_obj or None, attr, obj, **kwargs)


class StatementExceptionSchema(Schema):
    id = fields.String(attribute="_id")
    date = fields.String(metadata={"format": "date"})  # stored as its ISO text
    kind = fields.String(validate=validate.OneOf(EXCEPTION_KINDS))
    partner_txn_id = fields.String(allow_none=True)
    ours = fields.Nested(ExceptionSideSchema)
    theirs = fields.Nested(ExceptionSideSchema)
    status = fields.String(validate=validate.OneOf(EXCEPTION_STATUSES))
    actions = fields.List(
        fields.String(validate=validate.OneOf(RESOLUTIONS)),
        metadata={"description": "The actions that may resolve it"},
    )
    resolution = _Resolution(
        ResolutionRecordSchema,
        allow_none=True,
        metadata={"description": "How an admin resolved it; null while open"},
    )
    created_at = Rfc3339DateTime()


def _EXCEPTION_COUNTS() -> fields.Dict:  # noqa: N802 - reads like a field class
    return sometimes_absent(
        fields.Dict(keys=fields.String(), values=fields.Integer()),
        when="until the statement is matched",
    )


class StatementSchema(StatementReceivedSchema):
    partner_id = fields.String()
    header = fields.Nested(StatementHeaderSchema)
    matched = fields.Integer(allow_none=True)
    exception_counts = _EXCEPTION_COUNTS()
    matched_at = Rfc3339DateTime(allow_none=True)
    error = fields.String(allow_none=True)
    exceptions = fields.List(
        fields.Nested(StatementExceptionSchema),
        metadata={"description": "The first page; `exceptions_next_cursor` pages on"},
    )
    exceptions_next_cursor = fields.String(allow_none=True)


class StatementListItemSchema(StatementReceivedSchema):
    matched = fields.Integer(allow_none=True)
    exception_counts = _EXCEPTION_COUNTS()


class ExceptionArgsSchema(PageArgsSchema):
    status = fields.String(validate=validate.OneOf(EXCEPTION_STATUSES))
    kind = fields.String(validate=validate.OneOf(EXCEPTION_KINDS))


class ResolutionSchema(Schema):
    action = fields.String(required=True, validate=validate.OneOf(RESOLUTIONS))
    reason = Text(500, required=True)


# --- settlement ----------------------------------------------------------------------------


class MonthArgsSchema(Schema):
    month = Month(required=True)


class SettlementDaySchema(Schema):
    day = fields.String()
    points_credited = fields.Integer()
    points_debited = fields.Integer()


class SettlementSchema(Schema):
    partner_id = fields.String()
    partner_name = fields.String()
    month = fields.String()
    status = fields.String(validate=validate.OneOf(("open", "closed")))
    currency = fields.String()
    credit_rate_per_1000 = fields.Integer()
    debit_rate_per_1000 = fields.Integer()
    points_credited = fields.Integer(metadata={"description": "Net of reversals and corrections"})
    points_debited = fields.Integer(metadata={"description": "Net of reversals and corrections"})
    partner_owes = fields.Integer(
        metadata={"description": "For the points it credited, in minor units of `currency`"}
    )
    brand_owes = fields.Integer(
        metadata={"description": "For the points spent there, in minor units of `currency`"}
    )
    net_owed_to_brand = fields.Integer()
    open_exceptions = fields.Integer(
        metadata={"description": "Statement exceptions of the month's days still open"}
    )
    days = fields.List(fields.Nested(SettlementDaySchema))
    closable_from = Rfc3339DateTime(allow_none=True)
    closed_at = Rfc3339DateTime(allow_none=True)
    closed_by = fields.String(allow_none=True)
