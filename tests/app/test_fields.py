"""The shared input and output fields (app/fields.py), and the OpenAPI promise that every
integer the API accepts has a documented range."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from marshmallow import ValidationError

from app.clock import utcnow
from app.fields import AwareDateTime, CityCode, Rfc3339DateTime, StrictBoolean, Text
from app.web import Schema


class Sample(Schema):
    name = Text(20)
    notes = Text(200, multiline=True, blank=True)
    city = CityCode()
    flag = StrictBoolean()
    at = AwareDateTime()
    soon = AwareDateTime(earliest=timedelta(0), latest=timedelta(days=1))
    shown = Rfc3339DateTime()


def refused(**data) -> dict:
    with pytest.raises(ValidationError) as caught:
        Sample().load(data)
    return caught.value.messages


def test_text_is_trimmed_and_refuses_blank_controls_and_bidi_overrides():
    assert Sample().load({"name": "  Ann  ", "notes": " one\n\ttwo\r\n"}) == {
        "name": "Ann",
        "notes": "one\n\ttwo",
    }
    assert Sample().load({"notes": "   "}) == {"notes": ""}
    for bad in ("", "   ", "A\x00", "A\x7f", "A\x85B", "A\nB", "A\u2028B", "\u202eA", "A\u2066"):
        assert "name" in refused(name=bad), repr(bad)
    for bad in ("A\x00", "A\x0bB", "\u202dA", "A\ud800"):
        assert "notes" in refused(notes=bad), repr(bad)
    assert "name" in refused(name="x" * 21)


def test_city_codes_are_matched_whole():
    assert Sample().load({"city": "SZ"}) == {"city": "SZ"}
    for bad in ("SZ\n", "sz", "S", "ABCDEFGHI", " SZ"):
        assert "city" in refused(city=bad), repr(bad)


def test_booleans_are_json_booleans():
    assert Sample().load({"flag": False}) == {"flag": False}
    for bad in (0, 1, "true", "yes", None):
        assert "flag" in refused(flag=bad), repr(bad)


def test_times_need_an_offset_and_lie_within_bounds():
    assert Sample().load({"at": "2030-01-01T10:00:00+08:00"})["at"] == datetime(
        2030, 1, 1, 2, tzinfo=UTC
    )
    for bad in (
        "2030-01-01T10:00:00",
        "9999-12-31T23:59:59-12:00",
        "0001-01-01T00:00:00+14:00",
        "1999-12-31T23:59:59Z",
    ):
        assert "at" in refused(at=bad), bad
    assert "soon" in refused(soon=(utcnow() - timedelta(minutes=1)).isoformat())
    assert "soon" in refused(soon=(utcnow() + timedelta(days=2)).isoformat())
    assert Sample().load({"soon": (utcnow() + timedelta(hours=1)).isoformat()})


def test_times_are_shown_in_rfc_3339():
    shanghai = ZoneInfo("Asia/Shanghai")
    shown = Sample(only=("shown",))
    dumped = shown.dump(
        {"shown": datetime(2030, 1, 1, 10, tzinfo=shanghai)}
    )  # a whole-minute offset is kept
    assert dumped == {"shown": "2030-01-01T10:00:00+08:00"}
    # Local mean time (+08:05:43) has seconds in its offset: shown in UTC instead.
    assert shown.dump({"shown": datetime(1900, 1, 1, 8, 5, 43, tzinfo=shanghai)}) == {
        "shown": "1900-01-01T00:00:00+00:00"
    }
    assert shown.dump({"shown": datetime(2030, 1, 1)}) == {"shown": "2030-01-01T00:00:00+00:00"}


def _integers(spec: dict, schema: dict, where: str, seen: set[str]):
    """Every integer property reachable from `schema`, with where it was found."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name not in seen:
            yield from _integers(spec, spec["components"]["schemas"][name], name, seen | {name})
        return
    kind = schema.get("type")
    if kind == "integer" or (isinstance(kind, list) and "integer" in kind):
        yield where, schema
    for combined in ("allOf", "anyOf", "oneOf"):
        for part in schema.get(combined, []):
            yield from _integers(spec, part, where, seen)
    for name, value in schema.get("properties", {}).items():
        yield from _integers(spec, value, f"{where}.{name}", seen)
    for nested in ("items", "additionalProperties"):
        if isinstance(schema.get(nested), dict):
            yield from _integers(spec, schema[nested], f"{where}[]", seen)


def test_every_integer_the_api_accepts_has_a_documented_range(client):
    spec = client.get("/api/v1/openapi.json").json
    found = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if not isinstance(operation, dict):
                continue
            place = f"{method.upper()} {path}"
            for parameter in operation.get("parameters", []):
                found += _integers(
                    spec, parameter.get("schema", {}), f"{place} ?{parameter['name']}", set()
                )
            for content in operation.get("requestBody", {}).get("content", {}).values():
                found += _integers(spec, content["schema"], place, set())
    assert len(found) > 10
    unbounded = [where for where, schema in found if not {"minimum", "maximum"} <= set(schema)]
    assert unbounded == []
