"""Input and output fields every domain's schemas share, so that one rule holds everywhere:
human text is clean, city codes are exact, booleans are booleans, times are bounded and
carry an offset, and every time the API shows is RFC 3339."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from app.clock import utcnow

# Query bounds, partner transaction times and the like: wide enough for any real use,
# narrow enough that converting to UTC or any time zone, or adding a day, never overflows.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)

# Bidirectional embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069) make a
# name or a title read differently from what it is ("Trojan Source"); lone surrogates cannot
# be stored or encoded.
_INVISIBLE = "\u202a-\u202e\u2066-\u2069\ud800-\udfff"
# C0 and C1 controls, DEL, line and paragraph separators in one-line text...
_NOT_IN_LINE = re.compile(f"[\x00-\x1f\x7f-\x9f\u2028\u2029{_INVISIBLE}]")
# ...and the same, less tab and line breaks, in long text such as a description.
_NOT_IN_PROSE = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{_INVISIBLE}]")

CITY_CODE_PATTERN = r"^[A-Z]{2,8}$"


class Text(fields.String):
    """Human text: names, titles, venues, reasons, descriptions.

    Surrounding whitespace is trimmed; blank text is refused unless `blank=True`; control
    characters (except tab and line breaks when `multiline`), bidirectional overrides and
    lone surrogates are refused rather than stored and shown to others.
    """

    default_error_messages = {
        "blank": "Must not be blank.",
        "forbidden_character": "Must not contain control or bidirectional-override characters.",
    }

    def __init__(
        self, max_length: int, *, multiline: bool = False, blank: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(validate=validate.Length(0 if blank else 1, max_length), **kwargs)
        self.blank = blank
        self.forbidden = _NOT_IN_PROSE if multiline else _NOT_IN_LINE

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        if not text and not self.blank:
            raise self.make_error("blank")
        if self.forbidden.search(text):
            raise self.make_error("forbidden_character")
        return text


class FullMatch(validate.Regexp):
    """A pattern that must match the whole value: `validate.Regexp` with `$` lets a
    trailing newline through. The pattern is published in the OpenAPI document as it is,
    so write it for ECMA 262 too (`[0-9]`, `^...$`, no Python-only syntax)."""

    def __call__(self, value: Any) -> Any:
        if self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


class CityCode(fields.String):
    """A city code: 2 to 8 capital letters, nothing else."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            validate=FullMatch(CITY_CODE_PATTERN, error="Not a city code (2-8 capital letters)."),
            **kwargs,
        )


class StrictBoolean(fields.Boolean):
    """JSON true/false only: 1, "yes" and "true" are refused rather than coerced. (Query
    strings carry text: their flags stay `fields.Boolean`.)"""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


Bound = datetime | timedelta


def _resolve(bound: Bound) -> datetime:
    return utcnow() + bound if isinstance(bound, timedelta) else bound


class AwareDateTime(fields.AwareDateTime):
    """An ISO 8601 time with an offset (without one: refused, or `default_timezone`), from
    `earliest` to `latest` inclusive. A bound given as a timedelta is relative to now."""

    default_error_messages = {"date_out_of_range": "Must be from {earliest} to {latest}."}

    def __init__(self, *, earliest: Bound = EARLIEST, latest: Bound = LATEST, **kwargs: Any):
        super().__init__(**kwargs)
        self.earliest, self.latest = earliest, latest

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        moment = super()._deserialize(value, attr, data, **kwargs)
        earliest, latest = _resolve(self.earliest), _resolve(self.latest)
        # Aware datetimes compare without converting, so even year 9999 in UTC-12 is safe here.
        if not earliest <= moment <= latest:
            raise self.make_error(
                "date_out_of_range",
                earliest=earliest.isoformat(timespec="seconds"),
                latest=latest.isoformat(timespec="seconds"),
            )
        return moment


class BoundedDate(fields.Date):
    """A calendar date from `earliest` to `latest` inclusive (else `date_out_of_range`); the
    range is said in the field's description, JSON Schema having no bounds for a date."""

    default_error_messages = {"date_out_of_range": "Must be from {earliest} to {latest}."}

    def __init__(self, *, earliest: date, latest: date, **kwargs: Any) -> None:
        metadata = dict(kwargs.pop("metadata", {}))
        said = metadata.get("description")
        span = f"From {earliest.isoformat()} to {latest.isoformat()}"
        metadata["description"] = f"{said}; {span.lower()}" if said else span
        super().__init__(metadata=metadata, **kwargs)
        self.earliest, self.latest = earliest, latest

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> date:
        day = super()._deserialize(value, attr, data, **kwargs)
        if not self.earliest <= day <= self.latest:
            raise self.make_error("date_out_of_range", earliest=self.earliest, latest=self.latest)
        return day


MONTH_PATTERN = r"^20[0-9]{2}-(0[1-9]|1[0-2])$"


class Month(fields.String):
    """A calendar month, `YYYY-MM`, of this century (what a contract or a budget can mean)."""

    def __init__(self, description: str = "YYYY-MM", **kwargs: Any) -> None:
        super().__init__(
            validate=FullMatch(MONTH_PATTERN, error="A month as YYYY-MM, from 2000-01."),
            metadata={"example": "2026-12", "description": description},
            **kwargs,
        )


def shown(value: datetime) -> datetime:
    """A time as the API shows it, RFC 3339 with an offset: naive values are UTC, as every
    stored time is; an offset with seconds (local mean time of old dates) is shown in UTC,
    which RFC 3339 cannot write otherwise."""
    offset = value.utcoffset()
    if offset is None:
        return value.replace(tzinfo=UTC)
    if offset % timedelta(minutes=1):
        return value.astimezone(UTC)
    return value


class Rfc3339DateTime(fields.DateTime):
    """A time as the API shows it (`shown`)."""

    def _serialize(self, value: datetime | None, attr: Any, obj: Any, **kwargs: Any) -> Any:
        return super()._serialize(None if value is None else shown(value), attr, obj, **kwargs)


class NotEmpty:
    """Mixin for PATCH and PUT bodies: a body that changes nothing (`{}`, or none at all) is
    a client mistake, refused rather than answered 200."""

    @validates_schema
    def not_empty(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data:
            raise ValidationError("Change at least one field.", "_schema")
