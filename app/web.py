"""Thin project subclasses of flask-smorest's Api, Blueprint and marshmallow's Schema, and
keyset pagination, so later changes never touch the call sites (JSON request bodies are read
by `app.request_bodies`).

The Blueprint owns two things every route shares:
- access: every view requires a logged-in caller (`app.auth.login_required`) unless its
  blueprint is `Blueprint(..., public=True)` or the view is marked `@blp.public` (anyone, or
  a view that authenticates its caller itself, such as a partner's signed request);
- the documented answers: a view lists the refusals it may answer with
  `@blp.refuses(errors.EventFull, ...)` (classes from its domain's `errors.py`), and the
  Blueprint adds those every route of its kind may answer (401 and `account_banned` for a
  protected route, 422 where it takes arguments, 404 where its path names a thing, 429
  where it is rate-limited, 503). Each status is documented once, as the `Error` envelope
  whose `error` is one of the listed slugs (`oneOf` the refusals' schemas), so a generated
  client parses a refusal into a class of its own; protected operations carry the bearer
  `security` requirement, public ones `security: []`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from functools import cache, wraps
from typing import Any, TypeVar

import flask
import flask_smorest
import marshmallow as ma
import structlog
from apispec.ext.marshmallow.common import resolve_schema_instance
from bson import ObjectId, json_util
from flask.views import MethodView
from flask_limiter import RouteLimit
from itsdangerous import BadData, URLSafeSerializer
from marshmallow import fields, validate
from mongoengine.queryset import QuerySet

from app import compat
from app.auth import login_required
from app.errors import (
    AccountBanned,
    DomainError,
    InvalidCursor,
    InvalidText,
    JSONTooDeep,
    MalformedJSON,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
    SessionEnded,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
    http_exception_response,
)
from app.fields import Rfc3339DateTime, shown
from app.request_bodies import ArgumentsParser

log = structlog.get_logger()


def declared_response(view: Any) -> tuple[int, ma.Schema]:
    """The success status and schema a view declares with `Blueprint.response`, which
    flask-smorest keeps on the decorated function for its other decorators and the docs."""
    apidoc = compat.view_doc(view)
    statuses = apidoc.get("success_status_codes", [])
    if len(statuses) != 1:
        raise TypeError(f"{view.__qualname__}: expected one `@blp.response(status, Schema)` below")
    [status] = statuses
    [declared] = apidoc["response"]["responses"][status]
    return int(status), declared["schema"]


def render(schema: ma.Schema, result: Any) -> bytes:
    """The body `Blueprint.response` answers for `result`. The request remembers it: a view
    that then returns this very `result` answers these bytes, rendered once (an idempotent
    write renders its answer inside its transaction, for the key's record)."""
    dump = getattr(schema, "lean_dump", None) or schema.dump
    body = flask.jsonify(dump(result)).get_data()
    flask.g.rendered = (schema, result, body)
    return body


def _answer_rendered(
    view: View, schema: ma.Schema, status: int, dump: Callable[[Any], Any] | None = None
) -> View:
    """`view`, answering the body `render` made of its result, when it made one, rather than
    having flask-smorest dump and encode it again; or the result as `dump` dumps it."""

    @wraps(view)
    def answered(*args: Any, **kwargs: Any) -> Any:
        result = view(*args, **kwargs)
        rendered = flask.g.pop("rendered", None)
        # The schema `render` was given is the view's declared one, or a copy of it (each
        # flask-smorest decorator above this one copies the view's notes).
        if rendered is not None and type(rendered[0]) is type(schema) and rendered[1] is result:
            return flask.Response(rendered[2], status=status, mimetype="application/json")
        if dump is not None and not isinstance(result, flask.Response | tuple):
            answer = flask.jsonify(dump(result))
            answer.status_code = status
            return answer
        return result

    return answered  # type: ignore[return-value]


def lean_dump(schema: ma.Schema) -> Callable[[Any], Any]:
    """`schema.dump` of one object, field by field: a string, integer, boolean or time
    whose value has the plain Python type formats inline as marshmallow would, nested
    schemas and lists of them the same way, and any other field or value goes through the
    field's own `serialize`; the document's promise is checked as `Schema` checks it.

    marshmallow's machinery around each value (its accessor, hooks, error store) was about
    a tenth of a list's CPU. Hooks are not run: only for schemas that declare none besides
    `Schema`'s own check (tests compare hot lists' answers with recorded ones)."""
    steps = [
        (field.data_key or name, field.attribute or name, field, _lean_format(field))
        for name, field in schema.dump_fields.items()
    ]

    def dump(obj: Any) -> dict[str, Any]:
        data: dict[str, Any] = {}
        # A plain dict (a list's item as its service describes it) is read with `get`: the
        # accessor's checks were a fifth of a list page's Python calls.
        plain = type(obj) is dict
        for key, attribute, field, lean in steps:
            if lean is None:
                formatted = field.serialize(attribute, obj)
            else:
                value = obj.get(attribute, ma.missing) if plain else ma.missing
                if value is ma.missing:
                    value = _value_of(obj, attribute)
                if value is ma.missing:
                    default = field.dump_default
                    value = default() if callable(default) else default
                    if value is ma.missing:
                        continue
                # Each of these kinds dumps None as None.
                formatted = None if value is None else lean(value)
                if formatted is ma.missing:
                    formatted = field.serialize(attribute, obj)
            if formatted is not ma.missing:
                data[key] = formatted
        return as_documented(schema, data)

    return dump


def _value_of(obj: Any, key: str) -> Any:
    """The value marshmallow's accessor finds (`utils.get_value` of a plain key)."""
    if not hasattr(obj, "__getitem__"):
        return getattr(obj, key, ma.missing)
    try:
        return obj[key]
    except (KeyError, IndexError, TypeError, AttributeError):
        return getattr(obj, key, ma.missing)


def _lean_format(field: fields.Field) -> Callable[[Any], Any] | None:
    """How `_serialize` of `field` formats a value of the type it commonly gets (missing
    for another type: the field's own `serialize` then decides); None for a field of
    another kind."""
    kind = type(field)  # exactly these kinds: a subclass may format otherwise
    if kind is fields.String:
        return lambda value: value if type(value) is str else _as_text(value)
    if isinstance(field, fields.Integer) and kind is fields.Integer and not field.as_string:
        return lambda value: value if type(value) is int else ma.missing
    if kind is fields.Boolean:
        return lambda value: value if type(value) is bool else ma.missing
    # Bound to a schema, a field without a format takes the schema's ("iso" by default).
    if isinstance(field, Rfc3339DateTime) and kind is Rfc3339DateTime and field.format == "iso":
        return lambda value: shown(value).isoformat() if isinstance(value, datetime) else ma.missing
    if isinstance(field, fields.Nested) and kind is fields.Nested and not field.many:
        return lean_dump(field.schema)
    if isinstance(field, fields.List) and kind is fields.List:
        inner = _lean_format(field.inner)
        if inner is not None:
            return lambda value: _each(inner, value) if type(value) is list else ma.missing
    return None


def _as_text(value: Any) -> Any:
    return str(value) if type(value) is ObjectId else ma.missing


def _each(format_one: Callable[[Any], Any], values: list[Any]) -> Any:
    formatted = [None if value is None else format_one(value) for value in values]
    return ma.missing if any(item is ma.missing for item in formatted) else formatted


# A response field's metadata key saying when the field is left out of the body.
ABSENT_WHEN = "absent_when"

Field = TypeVar("Field", bound=fields.Field)


def sometimes_absent(field: Field, when: str) -> Field:
    """A response field that is left out of the body `when` ...: the only kind of field a
    response may lack. The document leaves it out of `required` and says when."""
    field.metadata = {**field.metadata, ABSENT_WHEN: when}
    return field


class Schema(ma.Schema):
    """Unknown fields are refused (422), never silently dropped.

    As a response, a schema promises what the document says of it (`Api` writes every field
    of a schema a 2xx answer reaches into its `required`): each field is present unless
    declared `sometimes_absent`, and null only where it allows None. A dump that breaks the
    promise is logged, and fails under test."""

    class Meta:
        unknown = ma.RAISE
        ordered = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A stored document leaves out what it has no value for: a nullable field is null.
        for field in self.dump_fields.values():
            nullable = field.allow_none and ABSENT_WHEN not in field.metadata
            if nullable and field.dump_default is ma.missing:
                field.dump_default = None

    @ma.post_dump
    def _as_documented(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return as_documented(self, data)


def as_documented(schema: ma.Schema, data: dict[str, Any]) -> dict[str, Any]:
    """`data`, the dump of `schema`, checked against the document's promise (`Schema`)."""
    for name, field in schema.dump_fields.items():
        key = field.data_key or name
        if key not in data:
            if ABSENT_WHEN not in field.metadata:
                _undocumented(schema, key, "missing")
        elif data[key] is None and not field.allow_none:
            _undocumented(schema, key, "null")
    return data


def _undocumented(schema: ma.Schema, key: str, problem: str) -> None:
    message = f"{type(schema).__name__}.{key} is {problem}, unlike what the document says"
    if flask.has_app_context() and flask.current_app.testing:
        raise AssertionError(message)
    log.error("response_differs_from_document", schema=type(schema).__name__, field=key)


class FieldErrorsSchema(ma.Schema):
    """Messages by field name (a list of strings, or the same shape nested for a nested
    field or a list item); `_schema` for the body as a whole."""

    class Meta:
        unknown = ma.INCLUDE


class EnvelopeSchema(ma.Schema):
    code = fields.Integer(required=True, metadata={"description": "The HTTP status"})
    status = fields.String(required=True, metadata={"description": "The HTTP status phrase"})
    message = fields.String(required=True, metadata={"description": "A human sentence"})
    request_id = fields.String(
        metadata={
            "description": "This request's id, as in the X-Request-ID header and the server's "
            "logs. Absent only from a 503 `overloaded` answered before the request was handled"
        }
    )


class ErrorSchema(EnvelopeSchema):
    """The error envelope (app/errors.py). Refusals add details of their own, so the generic
    envelope allows more properties; each refusal's own schema lists exactly its details."""

    class Meta:
        unknown = ma.INCLUDE

    error = fields.String(required=True, metadata={"description": "A stable machine slug"})
    errors = fields.Nested(FieldErrorsSchema)


class Api(compat.WithoutPaginationHeader, flask_smorest.Api):
    ERROR_SCHEMA = ErrorSchema
    # No catch-all `default` answer: every status an operation may answer is documented
    # with its slugs (Blueprint), so a client, and the fuzzing test, can hold us to them.
    DEFAULT_ERROR_RESPONSE_NAME = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # marshmallow's URL is JSON Schema's `uri` (apispec says `url`, which no tool knows).
        self.register_field(fields.URL, "string", "uri")

    def init_app(self, app: flask.Flask, *args: Any, **kwargs: Any) -> None:
        super().init_app(app, *args, **kwargs)
        self.ma_plugin.converter.add_attribute_function(_say_when_absent)

    def require_response_fields(self) -> None:
        """Once every blueprint is registered (`create_app`): each pass reads the whole
        document, so one per blueprint cost a process a seventh of a second at start-up."""
        _require_response_fields(self.spec, self.ma_plugin.converter)

    def handle_http_exception(self, error):  # noqa: D401 - flask-smorest hook
        return http_exception_response(error)


def _say_when_absent(converter: Any, field: fields.Field, ret: dict[str, Any]) -> dict[str, Any]:
    """apispec attribute function: a `sometimes_absent` field says when in its description."""
    when = field.metadata.get(ABSENT_WHEN)
    if when is None:
        return {}
    said = (ret.get("description") or "").rstrip(".")
    return {"description": f"{said}. Absent {when}." if said else f"Absent {when}."}


def component_refs(document: Any) -> Iterator[str]:
    """The component names `document` refers to, anywhere inside it."""
    if isinstance(document, dict):
        for key, value in document.items():
            if key == "$ref" and isinstance(value, str):
                yield value.rsplit("/", 1)[1]
            else:
                yield from component_refs(value)
    elif isinstance(document, list):
        for item in document:
            yield from component_refs(item)


def _require_response_fields(spec: Any, converter: Any) -> None:
    """Write `required` into every schema a 2xx answer reaches: all its fields but those
    `sometimes_absent` (generated clients then type them as present, in every language).
    A schema reached by both a request body and an answer would need two `required` lists:
    refused, so each side keeps a schema of its own."""
    schemas = spec.components.schemas
    answers: list[str] = []
    bodies: list[str] = []
    for item in spec.to_dict()["paths"].values():
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            bodies += component_refs(operation.get("requestBody"))
            for status, answer in operation["responses"].items():
                if str(status).startswith("2"):
                    answers += component_refs(answer)

    def reached(names: list[str]) -> set[str]:
        found: set[str] = set()
        while names:
            name = names.pop()
            if name not in found and name in schemas:
                found.add(name)
                names += component_refs(schemas[name])
        return found

    answered = reached(answers)
    shared = answered & reached(bodies)
    if shared:
        raise TypeError(f"schemas both sent and answered (split them): {sorted(shared)}")
    instances = {name: key for key, name in converter.refs.items()}
    for name in answered:
        if name not in instances:
            continue
        schema = resolve_schema_instance(instances[name][0])
        schemas[name]["required"] = sorted(
            field.data_key or field_name
            for field_name, field in schema.dump_fields.items()
            if ABSENT_WHEN not in field.metadata
        )


_refusal_schemas: dict[type[DomainError], type[ma.Schema]] = {}


def refusal_schema(refusal: type[DomainError]) -> type[ma.Schema]:
    """The envelope of one refusal: its slug as a one-value enum, and its details."""
    if refusal not in _refusal_schemas:

        class Meta:
            unknown = ma.RAISE

        # Field errors come with validation failures only.
        errors = {"errors": fields.Nested(FieldErrorsSchema)} if refusal.status == 422 else {}
        _refusal_schemas[refusal] = type(
            f"{refusal.__name__}Schema",
            (EnvelopeSchema,),
            {
                "Meta": Meta,
                "error": fields.String(required=True, validate=validate.OneOf([refusal.error])),
                **errors,
                **refusal.detail_fields,
            },
        )
    return _refusal_schemas[refusal]


View = TypeVar("View", bound=Callable[..., Any])


def _add_doc(view: View, key: str, values: Iterable[Any]) -> View:
    return compat.note_on_view(view, key, [*compat.view_doc(view).get(key, ()), *values])


def refuses(*refusals: type[DomainError]) -> Callable[[View], View]:
    """Document that a view may answer with these refusals (as `Blueprint.refuses`), for
    decorators that add refusals of their own (`app.idempotency.idempotent`)."""
    return lambda view: _add_doc(view, "refusals", refusals)


def header_parameters(*parameters: dict[str, Any]) -> Callable[[View], View]:
    """Document request headers a view (or a decorator of it) reads."""
    return lambda view: _add_doc(view, "header_parameters", parameters)


class Blueprint(flask_smorest.Blueprint):
    """Routes require a logged-in caller unless public, and document their refusals; see
    the module docstring."""

    ARGUMENTS_PARSER = ArgumentsParser()
    SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]
    # What a caller of any protected route may be told.
    LOGIN_REFUSALS = (Unauthorized, SessionEnded, AccountBanned)

    refuses = staticmethod(refuses)

    def response(
        self, status_code: int | str, schema: Any = None, *, lean: bool = False, **kwargs: Any
    ) -> Any:
        """flask-smorest's, answering what `render` already made of the view's result.

        `lean=True` (a hot list's or a hot write's) dumps the result field by field
        (`lean_dump`) rather than through marshmallow's machinery: the same answer, for a
        schema of ours that declares no hooks of its own."""
        instance = schema() if isinstance(schema, type) else schema
        if not isinstance(instance, ma.Schema):  # none, or a plain JSON Schema (a CSV's)
            return super().response(status_code, schema, **kwargs)
        dump = lean_dump(instance) if lean else None
        if dump is not None:
            # For `render` too (a keyed write's answer), which is given the schema the view
            # declares: this one, or a deep copy of it that keeps its attributes.
            instance.lean_dump = dump  # type: ignore[attr-defined]
        decorate = super().response(status_code, instance, **kwargs)
        return lambda view: decorate(_answer_rendered(view, instance, int(status_code), dump))

    def arguments(self, schema: Any, *args: Any, **kwargs: Any) -> Any:
        """flask-smorest's, with the schema made once: given its class, webargs makes an
        instance for every request (copying each of its fields), about 0.1 ms of a
        redemption's CPU."""
        return super().arguments(schema() if isinstance(schema, type) else schema, *args, **kwargs)

    def __init__(self, *args: Any, public: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.public_by_default = public
        compat.add_doc_callback(self, self._prepare_access_doc)

    @staticmethod
    def public(view: View) -> View:
        """Open a view to anyone: no login is required (the view may authenticate its
        caller in its own way, and document that)."""
        view._public = True  # type: ignore[attr-defined]
        return view

    def add_url_rule(
        self,
        rule: str,
        endpoint: str | None = None,
        view_func: Any = None,
        provide_automatic_options: bool | None = None,
        *,
        deprecated_for: str | None = None,
        **options: Any,
    ) -> None:
        """`deprecated_for="POST /admin/rewards"`: an older path a view keeps answering
        while clients move; the document marks it deprecated and names its successor."""
        if isinstance(view_func, type) and issubclass(view_func, MethodView):
            for method in view_func.methods or ():
                name = method.lower()
                setattr(view_func, name, self._guard(getattr(view_func, name)))
        elif view_func is not None:
            view_func = self._guard(view_func)
        super().add_url_rule(rule, endpoint, view_func, provide_automatic_options, **options)
        rate_limited = any(isinstance(d, RouteLimit) for d in getattr(view_func, "decorators", ()))
        for method, doc in compat.latest_route_docs(self):
            if method != "parameters":
                doc["route"] = {
                    "rate_limited": rate_limited,
                    "names_a_thing": "<" in rule,
                    # The view and its method, as a generated client's function name:
                    # `postEventRegistrations` becomes `post_event_registrations`.
                    "operation_id": method + view_func.__name__[0].upper() + view_func.__name__[1:],
                    "deprecated_for": deprecated_for,
                }

    def _guard(self, view: View) -> View:
        if self.public_by_default or getattr(view, "_public", False):
            return _add_doc(view, "public", [True])
        if getattr(view, "_login_required", False):  # a view class routed twice
            return view
        guarded = login_required(view)
        guarded._login_required = True  # type: ignore[attr-defined]
        return guarded  # type: ignore[return-value]

    def _prepare_access_doc(
        self,
        doc: dict[str, Any],
        doc_info: dict[str, Any],
        *,
        spec: Any,
        method: str,
        **kwargs: Any,
    ) -> dict[str, Any]:
        refusals: list[type[DomainError]] = [*doc_info.get("refusals", ()), ServiceUnavailable]
        if doc_info.get("public"):
            doc["security"] = []
        else:
            doc["security"] = self.SECURITY
            refusals += self.LOGIN_REFUSALS
        if method in ("post", "put", "patch"):
            refusals += [PayloadTooLarge, UnsupportedMediaType]
        if "requestBody" in doc:
            refusals += [MalformedJSON, JSONTooDeep, InvalidText]
        if doc_info.get("arguments"):
            refusals.append(ValidationFailed)
            schemas = [p.get("schema") for p in doc_info["arguments"].get("parameters", ())]
            if any(_is_page_args(schema) for schema in schemas):
                refusals.append(InvalidCursor)
        route = doc_info.get("route", {})
        doc["operationId"] = route.get("operation_id")
        if route.get("names_a_thing"):
            refusals.append(NotFound)
        if route.get("rate_limited"):
            refusals.append(RateLimited)
        if doc_info.get("header_parameters"):
            doc["parameters"] = [*doc.get("parameters", ()), *doc_info["header_parameters"]]
        by_status: dict[int, dict[str, type[DomainError]]] = defaultdict(dict)
        for refusal in refusals:
            known = by_status[refusal.status].setdefault(refusal.error, refusal)
            if known is not refusal:
                raise TypeError(f"{known} and {refusal} share the slug {refusal.error!r}")
        responses = doc.setdefault("responses", {})
        for status, slugs in sorted(by_status.items()):
            responses.pop(status, None)
            responses[str(status)] = _refusals_response(spec, [slugs[s] for s in sorted(slugs)])
        # flask-smorest writes the docstring's summary and description over what the
        # callbacks return: notes join the docstring's description itself.
        docstring = doc_info.setdefault("docstring", {})
        notes = [docstring.get("description")]
        if doc_info.get("idempotent"):
            _document_replays(doc)
            notes.append(IDEMPOTENT_NOTE)
        if route.get("deprecated_for"):
            doc["deprecated"] = True
            moved = f"**Deprecated**: use `{route['deprecated_for']}`, which answers the same."
            notes.insert(0, moved)
        if any(notes):
            docstring["description"] = "\n\n".join(filter(None, notes))
        return doc


# Said on every operation that takes an `Idempotency-Key` (app/idempotency.py).
IDEMPOTENT_NOTE = (
    "**Idempotent**: send an `Idempotency-Key` header to make a retry safe. The same key "
    "and body within 48 hours answer the first response, status and body (a refusal too), "
    "with `Idempotent-Replayed: true`, and change nothing; the same key with another body "
    "is 422 `idempotency_key_reused`."
)


REPLAYED = "Idempotent-Replayed"
REPLAYED_HEADER = {
    "description": "`true` when this is the stored answer to an earlier request with the "
    "same `Idempotency-Key`, which changed nothing now",
    "schema": {"type": "string", "enum": ["true"]},
}


def _document_replays(doc: dict[str, Any]) -> None:
    """The `Idempotent-Replayed` header on the answers a replay repeats (success and
    refusals alike)."""
    for status, response in doc.get("responses", {}).items():
        if str(status).startswith(("2", "4")):
            response.setdefault("headers", {})[REPLAYED] = REPLAYED_HEADER


def _is_page_args(schema: Any) -> bool:
    """Whether `@blp.arguments` got the arguments of a list (a schema class or instance)."""
    schema_class = schema if isinstance(schema, type) else type(schema)
    return issubclass(schema_class, PageArgsSchema)


def _refusals_response(spec: Any, refusals: list[type[DomainError]]) -> dict[str, Any]:
    """One status's documented answer: the envelope of one of `refusals`."""
    refs = {}
    for refusal in refusals:
        name = refusal.__name__
        if name not in spec.components.schemas:
            spec.components.schema(
                name, {"description": _meaning(refusal)}, schema=refusal_schema(refusal)
            )
        refs[refusal.error] = f"#/components/schemas/{name}"
    if len(refusals) == 1:
        schema: dict[str, Any] = {"$ref": refs[refusals[0].error]}
    else:
        schema = {
            "oneOf": [{"$ref": ref} for ref in refs.values()],
            "discriminator": {"propertyName": "error", "mapping": refs},
        }
    response: dict[str, Any] = {
        "description": "\n".join(f"- `{r.error}`: {_meaning(r)}" for r in refusals),
        "content": {"application/json": {"schema": schema}},
    }
    if refusals[0].status in (RateLimited.status, ServiceUnavailable.status):
        response["headers"] = {
            "Retry-After": {
                "description": "Seconds to wait before retrying",
                "schema": {"type": "integer"},
            }
        }
    return response


def _meaning(refusal: type[DomainError]) -> str:
    """What a refusal means: its own docstring's first paragraph, in one line (a sentence
    may run over several lines), else its message."""
    doc = refusal.__dict__.get("__doc__")
    return " ".join(doc.strip().split("\n\n")[0].split()) if doc else refusal.message


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


def _cursors(collection: str, order: tuple[str, ...]) -> URLSafeSerializer:
    """Cursors are signed with the app's key and salted with the collection and order: a
    client can only hand back a position this list gave it, so nothing but the plain values
    it was made of (never an operator such as `$gte`) reaches the query."""
    return URLSafeSerializer(
        flask.current_app.config["SECRET_KEY"],
        salt=f"cursor:{collection}:{','.join(order)}",
        serializer=json_util,
    )


# One page's read: the documents after a position (a query of one field's values, or None
# for the first page), at most so many.
Fetch = Callable[[dict[str, Any] | None, int], list[Any]]


def _keyset_page(
    model: type[Any],
    fetch: Fetch,
    position: Callable[[Any], list[Any]],
    cursor: str | None,
    limit: int,
    order: tuple[str, ...],
) -> dict[str, Any]:
    """`paginate`'s page, whatever the documents are read as: `fetch` reads them in
    `order`, `position` gives a document's values of the order's fields."""
    names = [field.lstrip("-") for field in order]
    descending = [field.startswith("-") for field in order]
    db_names = [compat.db_field(model, name) for name in names]
    cursors = _cursors(model._get_collection_name(), order)
    if not cursor:
        documents = fetch(None, limit + 1)
    else:
        try:
            values = cursors.loads(cursor)
        except BadData as exc:
            raise InvalidCursor() from exc
        # (a, b, c) after (x, y, z) is (a=x, b=y, c>z), then (a=x, b>y), then (a>x), in that
        # order. One plain range query each, rather than an `$or` of the three, which
        # SecantusDB answers with a scan of the whole collection.
        documents = []
        for depth in reversed(range(len(names))):
            clause = {db_names[i]: values[i] for i in range(depth)}
            clause[db_names[depth]] = {"$lt" if descending[depth] else "$gt": values[depth]}
            documents += fetch(clause, limit + 1 - len(documents))
            if len(documents) > limit:
                break
    has_more = len(documents) > limit
    documents = documents[:limit]
    next_cursor = None
    if has_more and documents:
        next_cursor = cursors.dumps(position(documents[-1]))
    return {"items": documents, "next_cursor": next_cursor}


def paginate(
    queryset: QuerySet, cursor: str | None, limit: int, order: tuple[str, ...] = ("-id",)
) -> dict[str, Any]:
    """Keyset pagination: never skips, stable under inserts.

    `order` lists mongoengine field names with an optional `-`; the last must be
    unique (`id`, or another unique field), so the position of the last item returned
    identifies the next page exactly.
    """
    names = [field.lstrip("-") for field in order]
    ordered = queryset.order_by(*order)

    def fetch(after: dict[str, Any] | None, count: int) -> list[Any]:
        found = ordered if after is None else ordered.filter(__raw__=after)
        return list(found.limit(count))

    return _keyset_page(
        compat.queryset_model(queryset),
        fetch,
        lambda last: [last._data.get(name) if name != "id" else last.pk for name in names],
        cursor,
        limit,
        order,
    )


def paginate_stored(
    model: type[Any],
    query: dict[str, Any],
    projection: list[str],
    cursor: str | None,
    limit: int,
    order: tuple[str, ...] = ("-id",),
) -> dict[str, Any]:
    """`paginate` over `model`'s stored documents as pymongo reads them (the fields of
    `projection`), for a hot list that does not decode them into documents: the same pages
    and the same cursors as `paginate` of the queryset that `query` filters."""
    db_names = [compat.db_field(model, field.lstrip("-")) for field in order]
    sort = [
        (name, -1 if field.startswith("-") else 1)
        for name, field in zip(db_names, order, strict=True)
    ]
    collection = model._get_collection()

    def fetch(after: dict[str, Any] | None, count: int) -> list[Any]:
        found = collection.find(_both(query, after or {}), projection, sort=sort, limit=count)
        return list(found)

    return _keyset_page(
        model, fetch, lambda last: [last.get(name) for name in db_names], cursor, limit, order
    )


def _both(query: dict[str, Any], clause: dict[str, Any]) -> dict[str, Any]:
    """`query` and `clause`, as mongoengine combines a filter with a raw one: conditions of
    one field in one operator document, an equality beside a condition in `$and`."""
    combined = dict(query)
    both: list[dict[str, Any]] = []
    for field, condition in clause.items():
        present = combined.get(field)
        if present is None:
            combined[field] = condition
        elif isinstance(present, dict) and isinstance(condition, dict):
            combined[field] = {**present, **condition}
        else:
            both += [{field: combined.pop(field)}, {field: condition}]
    return {**combined, "$and": both} if both else combined
