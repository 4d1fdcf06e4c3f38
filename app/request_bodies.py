"""The one reader of JSON request bodies: `request.get_json()` (through the app's JSON
provider) and the arguments parser of every view read a body the same way, refusing with a
4xx envelope what no field could store before any service runs."""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from typing import Any

import flask
from flask.json.provider import DefaultJSONProvider
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

from app.errors import InvalidText, JSONTooDeep
from app.fields import shown

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
    """`request.get_json()` reads bodies with `load_json`, as the arguments parser does; a
    time that reaches JSON without a schema field (a free-form object such as an audit
    entry's `before` and `after`) is written RFC 3339, as every other time, not in Flask's
    default RFC 1123 (`Mon, 07 Dec 2026 ...`)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return load_json(s, **kwargs)

    @staticmethod
    def default(o: Any) -> Any:
        if isinstance(o, datetime):
            return shown(o).isoformat()
        if isinstance(o, date):
            return o.isoformat()
        return DefaultJSONProvider.default(o)


class ArgumentsParser(FlaskParser):
    """webargs' Flask parser, reading JSON bodies with `load_json`: the body
    `request.get_json()` parsed already (an Idempotency-Key's request hash reads it first) is
    not parsed again."""

    def _raw_load_json(self, req: flask.Request) -> Any:
        if not is_json_request(req):
            return core.missing
        parsed = req.get_json(silent=True)
        if parsed is not None:
            return parsed
        # Not JSON (or `null`): parsed again, so that webargs refuses it as it always has.
        return load_json(req.get_data(cache=True))
