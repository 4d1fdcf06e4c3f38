"""`app.web.lean_dump` dumps what `Schema.dump` dumps, for the values hot lists carry and for
those it leaves to the field (other types, absent attributes, defaults, nested and listed
schemas), and checks the document's promise the same way."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

import pytest
from bson import ObjectId
from marshmallow import fields

from app.fields import Rfc3339DateTime
from app.web import Schema, _value_of, lean_dump, page_of, sometimes_absent
from tests.support import calls_counted


class Inner(Schema):
    id = fields.String()
    at = Rfc3339DateTime(allow_none=True)


class Outer(Schema):
    id = fields.String()
    name = fields.String(allow_none=True)
    count = fields.Integer()
    share = fields.Float()
    flag = fields.Boolean()
    at = Rfc3339DateTime()
    tags = fields.List(fields.String())
    inner = fields.Nested(Inner, allow_none=True)
    inners = fields.List(fields.Nested(Inner))
    renamed = fields.String(data_key="shown_as", attribute="kept_as")
    extra = sometimes_absent(fields.Integer(allow_none=True), when="sometimes")
    # Kinds it leaves to marshmallow: computed, or formatted otherwise.
    computed = fields.Function(lambda thing: "computed")
    count_text = fields.Decimal(as_string=True, data_key="count_text", allow_none=True)


class Kind(StrEnum):
    OWNER = "owner"


@dataclass
class Thing:
    id: Any
    name: Any
    count: Any
    share: Any
    flag: Any
    at: Any
    tags: Any
    inner: Any
    inners: Any
    kept_as: Any = "kept"
    count_text: Any = None


BERLIN = timezone(timedelta(hours=1))
AT = datetime(2026, 12, 6, 13, 0, 0, 123000, tzinfo=BERLIN)
OID = ObjectId("6b0000000000000000000001")
THINGS: list[Any] = [
    Thing(OID, "Ann", 3, 1.5, True, AT, ["a", "b"], {"id": OID, "at": None}, []),
    # Values of other types than a hot list carries: the field decides.
    Thing(7, Kind.OWNER, True, 2, 1, datetime(2026, 1, 1, 8), ("a", OID), None, [{"id": "x"}]),
    Thing("s", None, 0, 0.0, False, datetime(1850, 1, 1, tzinfo=timezone(timedelta(seconds=487))),
          [None, "z"], Thing(OID, *[None] * 8), [Thing(OID, *[None] * 8)]),
    # A stored document: the absent key, `extra`, left out; a nullable one null.
    {"id": OID, "count": 1, "share": 1, "flag": False, "at": AT, "tags": [], "inners": [],
     "kept_as": "x", "extra": 5, "count_text": 3},
    {"id": OID, "name": "n", "count": 1, "share": 1, "flag": False, "at": AT,
     "tags": [], "inners": [], "kept_as": "x"},
]  # fmt: skip


@pytest.mark.parametrize("thing", THINGS)
def test_a_lean_dump_is_the_schema_s_dump(app, thing):
    with app.app_context():
        assert lean_dump(Outer())(thing) == Outer().dump(thing)
        page = {"items": [thing, thing], "next_cursor": None}
        schema = page_of(Outer)()
        assert lean_dump(schema)(page) == schema.dump(page)


def test_a_lean_dump_keeps_the_document_s_promise(app):
    broken = {"id": OID, "name": "n", "count": None, "share": 1, "flag": False, "at": AT}
    with app.app_context(), pytest.raises(AssertionError, match="Outer.count is null"):
        lean_dump(Outer())(broken)
    with app.app_context(), pytest.raises(AssertionError, match="Outer.tags is missing"):
        lean_dump(Outer())({**broken, "count": 1})


def test_plain_values_are_formatted_without_the_field_s_serialize(app):
    with app.app_context(), calls_counted(fields.Field.serialize) as serialized:
        lean_dump(Outer())(THINGS[0])
    assert serialized == [3]  # `share`, `computed`, `count_text`: kinds left to marshmallow


def test_a_dict_is_read_with_get_and_its_absent_keys_as_marshmallow_reads_them(app):
    # THINGS[4] lacks `inner` and `extra`: only those go through the accessor.
    with app.app_context(), calls_counted(_value_of) as accessed:
        lean_dump(Outer())(THINGS[4])
    assert accessed == [2]

    class Named(Schema):
        values = fields.String()  # absent from the dict: marshmallow finds `dict.values`

    empty: dict[str, Any] = {}
    with app.app_context():
        assert lean_dump(Named())(empty) == Named().dump(empty)
