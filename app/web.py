"""Thin project subclasses of flask-smorest's Api, Blueprint and marshmallow's Schema, the
one reader of JSON request bodies, and keyset pagination, so later changes never touch the
call sites."""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import flask
import flask_smorest
import marshmallow as ma
from bson import json_util
from flask.json.provider import DefaultJSONProvider
from itsdangerous import BadData, URLSafeSerializer
from marshmallow import fields, validate
from mongoengine.queryset import QuerySet
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

from app.errors import BadRequest, InvalidText, JSONTooDeep, http_exception_response

# No request of ours nests more than a few levels; a limit far below Python's recursion
# limit keeps every later walk of the body (validation, BSON encoding) safe.
MAX_JSON_DEPTH = 32
# Valid JSON (`"\ud800"`) but not Unicode text: BSON cannot encode it.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def load_json(data: str | bytes, **kwargs: Any) -> Any:
    """Parse a request body, refusing what could never be stored: nesting deeper than
    `MAX_JSON_DEPTH` and strings (values or keys) holding lone surrogates.

    Bytes must be UTF-8 (a `UnicodeDecodeError` otherwise, as webargs does): the standard
    library would let raw surrogate bytes through.
    """
    text = data.decode() if isinstance(data, bytes) else data
    try:
        document = json.loads(text, **kwargs)
    except RecursionError:
        raise JSONTooDeep() from None
    pending = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            if _LONE_SURROGATE.search(value):
                raise InvalidText()
        elif isinstance(value, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise JSONTooDeep()
            if isinstance(value, dict):
                pending.extend((key, depth) for key in value)
                value = value.values()
            pending.extend((item, depth + 1) for item in value)
    return document


class JSONProvider(DefaultJSONProvider):
    """`request.get_json()` reads bodies with `load_json`, as the arguments parser does."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return load_json(s, **kwargs)


class ArgumentsParser(FlaskParser):
    """webargs' Flask parser, reading JSON bodies with `load_json`."""

    def _raw_load_json(self, req: flask.Request) -> Any:
        if not is_json_request(req):
            return core.missing
        return load_json(req.get_data(cache=True))


class Api(flask_smorest.Api):
    def handle_http_exception(self, error):  # noqa: D401 - flask-smorest hook
        return http_exception_response(error)


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = ArgumentsParser()


def declared_response(view: Any) -> tuple[int, ma.Schema]:
    """The success status and schema a view declares with `Blueprint.response`, which
    flask-smorest keeps on the decorated function for its other decorators and the docs."""
    apidoc = getattr(view, "_apidoc", {})
    statuses = apidoc.get("success_status_codes", [])
    if len(statuses) != 1:
        raise TypeError(f"{view.__qualname__}: expected one `@blp.response(status, Schema)` below")
    [status] = statuses
    [declared] = apidoc["response"]["responses"][status]
    return int(status), declared["schema"]


def render(schema: ma.Schema, result: Any) -> bytes:
    """The body `Blueprint.response` answers for `result`."""
    return flask.jsonify(schema.dump(result)).get_data()


class Schema(ma.Schema):
    """Unknown fields are refused (422), never silently dropped."""

    class Meta:
        unknown = ma.RAISE
        ordered = True


def StrictInteger(**kwargs: Any) -> fields.Integer:  # noqa: N802 - reads like a field class
    """JSON integers only: `2.589e-42` and `"5"` are refused, not coerced."""
    return fields.Integer(strict=True, **kwargs)


class PageArgsSchema(Schema):
    cursor = fields.String(load_default=None, metadata={"description": "Opaque, from next_cursor"})
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


@cache
def page_of(item_schema: type[ma.Schema]) -> type[ma.Schema]:
    """The list envelope `{items, next_cursor}` for one item schema."""
    return type(
        f"{item_schema.__name__.removesuffix('Schema')}PageSchema",
        (Schema,),
        {
            "items": fields.List(fields.Nested(item_schema)),
            "next_cursor": fields.String(allow_none=True),
        },
    )


def _cursors(queryset: QuerySet, order: tuple[str, ...]) -> URLSafeSerializer:
    """Cursors are signed with the app's key and salted with the collection and order: a
    client can only hand back a position this list gave it, so nothing but the plain values
    it was made of (never an operator such as `$gte`) reaches the query."""
    return URLSafeSerializer(
        flask.current_app.config["SECRET_KEY"],
        salt=f"cursor:{queryset._document._get_collection_name()}:{','.join(order)}",
        serializer=json_util,
    )


def paginate(
    queryset: QuerySet, cursor: str | None, limit: int, order: tuple[str, ...] = ("-id",)
) -> dict[str, Any]:
    """Keyset pagination: never skips, stable under inserts.

    `order` lists mongoengine field names with an optional `-`; the last must be
    unique (`id`, or another unique field), so the position of the last item returned
    identifies the next page exactly.
    """
    names = [field.lstrip("-") for field in order]
    descending = [field.startswith("-") for field in order]
    db_names = [queryset._document._fields[name].db_field for name in names]
    ordered = queryset.order_by(*order)
    if not cursor:
        documents = list(ordered.limit(limit + 1))
    else:
        try:
            values = _cursors(queryset, order).loads(cursor)
        except BadData as exc:
            raise BadRequest("invalid_cursor", "The cursor is not valid.") from exc
        # (a, b, c) after (x, y, z) is (a=x, b=y, c>z), then (a=x, b>y), then (a>x), in that
        # order. One plain range query each, rather than an `$or` of the three, which
        # SecantusDB answers with a scan of the whole collection.
        documents = []
        for depth in reversed(range(len(names))):
            clause = {db_names[i]: values[i] for i in range(depth)}
            clause[db_names[depth]] = {"$lt" if descending[depth] else "$gt": values[depth]}
            documents += ordered.filter(__raw__=clause).limit(limit + 1 - len(documents))
            if len(documents) > limit:
                break
    has_more = len(documents) > limit
    documents = documents[:limit]
    next_cursor = None
    if has_more and documents:
        last = documents[-1]
        next_cursor = _cursors(queryset, order).dumps(
            [last._data.get(name) if name != "id" else last.pk for name in names]
        )
    return {"items": documents, "next_cursor": next_cursor}
