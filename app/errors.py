"""One error envelope: flask-smorest's `code/status/message/errors` plus a stable `error` slug.

Every refusal a client can receive is a `DomainError` subclass declared in one place, its
domain's `errors.py` (the app-level and generic ones here): the class carries the HTTP
status, the slug, the message and the details it adds to the envelope. Services raise it
without restating any of them; views list what they may answer with `@blp.refuses(...)`,
and the OpenAPI document is written from the same classes (`app.web`). The handlers
registered by `init_app` turn these, HTTP exceptions and mongoengine's validation and
not-found errors into the envelope. Anything else is a bug and stays a 500.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, ClassVar

import mongoengine
import redis
from flask import Flask, Request, Response, g, has_request_context, jsonify
from flask_limiter.errors import RateLimitExceeded
from limits import RateLimitItem
from marshmallow import fields
from pymongo.errors import ConnectionFailure, PyMongoError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from app import compat

# Past these, gunicorn would answer with an HTML page of its own; it runs with its limits
# raised (app/launcher.py, README) so that these JSON answers reach the client instead.
MAX_URI_BYTES = 8190
MAX_HEADER_BYTES = 8190
# The two headers the environ names without `HTTP_` (and ignores under it).
_CONTENT_HEADERS = frozenset({"CONTENT_TYPE", "CONTENT_LENGTH"})
_CONTENT_HEADERS_AS_HTTP = frozenset({"HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"})

_WEBARGS_LOCATIONS = {"json", "query", "headers", "form", "files", "view_args", "querystring"}


class DomainError(Exception):
    """A refusal the client can act on. Subclasses fix `status`, the `error` slug and the
    `message`, which may name details (`"{confirmed} places are taken"`); the details a
    refusal adds to the envelope are keyword arguments, documented in `detail_fields`.
    `message=` replaces the sentence where the class's one is too general."""

    status: ClassVar[int] = 409
    error: ClassVar[str] = "conflict"
    message: str = "The request conflicts with the current state."
    # What the refusal adds to the envelope besides `errors`, for its OpenAPI schema.
    detail_fields: ClassVar[Mapping[str, fields.Field]] = {}

    def __init__(
        self, *, message: str | None = None, headers: dict[str, str] | None = None, **details: Any
    ) -> None:
        self.message = message or type(self).message.format_map(details)
        self.headers = headers or {}
        self.details = details
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        """The envelope the client receives."""
        return envelope(self.status, self.message, self.error, **self.details)


# --- the generic refusals, one per status (the slug an HTTP error of that status gets) ----


class BadRequest(DomainError):
    status = 400
    error = "bad_request"
    message = "The request is not valid."


class Unauthorized(DomainError):
    status = 401
    error = "unauthorized"
    message = "Authentication is required."


class Forbidden(DomainError):
    status = 403
    error = "forbidden"
    message = "You are not allowed to do this."


class NotFound(DomainError):
    status = 404
    error = "not_found"
    message = "Not found."


class MethodNotAllowed(DomainError):
    status = 405
    error = "method_not_allowed"
    message = "The method is not allowed for the requested URL."


class Conflict(DomainError):
    status = 409
    error = "conflict"


class PayloadTooLarge(DomainError):
    status = 413
    error = "payload_too_large"
    message = "The request body is too large."


class URITooLong(DomainError):
    status = 414
    error = "uri_too_long"
    message = f"The URL is longer than {MAX_URI_BYTES} bytes."


class UnsupportedMediaType(DomainError):
    status = 415
    error = "unsupported_media_type"
    message = "Send the body as application/json."


class ValidationFailed(DomainError):
    status = 422
    error = "validation_failed"
    message = "The request is not valid."


class RateLimited(DomainError):
    """Raised by Flask-Limiter as an HTTP error; declared for its slug and documentation."""

    status = 429
    error = "rate_limited"
    message = "Too many requests; retry after the time in Retry-After."


class HeaderTooLarge(DomainError):
    status = 431
    error = "header_too_large"
    message = f"A request header is longer than {MAX_HEADER_BYTES} bytes."


class InternalError(DomainError):
    status = 500
    error = "internal_error"
    message = "Internal server error."


class ServiceUnavailable(DomainError):
    status = 503
    error = "service_unavailable"
    message = "A backing service is unavailable; retry later."

    def __init__(self, *, retry_after: int = 5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.headers.setdefault("Retry-After", str(retry_after))


GENERIC: tuple[type[DomainError], ...] = (
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    URITooLong,
    UnsupportedMediaType,
    ValidationFailed,
    RateLimited,
    HeaderTooLarge,
    InternalError,
    ServiceUnavailable,
)
_SLUG_BY_STATUS = {refusal.status: refusal.error for refusal in GENERIC}


# --- app-level refusals -------------------------------------------------------------------


class MalformedJSON(BadRequest):
    error = "malformed_json"
    message = "The request body is not valid JSON."


class UnreadableBody(BadRequest, ValueError):
    """A JSON body refused as a whole. A `ValueError` too, so `request.get_json(silent=True)`
    callers (rate-limit keys, idempotency hashes) treat it as any malformed body."""


class JSONTooDeep(UnreadableBody):
    error = "json_too_deep"
    message = "The request body nests too deeply."


class InvalidText(UnreadableBody):
    error = "invalid_text"
    message = "The request body holds text that is not valid Unicode (a lone surrogate)."


class InvalidCursor(BadRequest):
    error = "invalid_cursor"
    message = "The cursor is not valid."


class InvalidIdempotencyKey(BadRequest):
    error = "invalid_idempotency_key"
    message = "Idempotency-Key must be 1-255 printable ASCII characters."


class ContainsSensitiveWord(ValidationFailed):
    """A name (display name, club name or description, event title) holding a listed
    sensitive word; `errors` names the fields (`app.screening`)."""

    error = "sensitive_word"
    message = "This name contains a listed sensitive word."


class IdempotencyKeyReused(ValidationFailed):
    error = "idempotency_key_reused"
    message = "This Idempotency-Key was used with another request body."


class RequestInProgress(Conflict):
    error = "request_in_progress"
    message = "A request with this Idempotency-Key is still running; retry in a moment."


class SessionEnded(Unauthorized):
    error = "session_ended"
    message = "This session has ended; log in again."


class AccountBanned(Forbidden):
    error = "account_banned"
    message = "This account is suspended."


class DevelopmentKeyLoopbackOnly(Forbidden):
    error = "development_key_loopback_only"
    message = "This server runs with the development SECRET_KEY: loopback clients only."


def envelope(
    status: int, message: str, error: str | None = None, errors: Any = None, **details: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "code": status,
        "status": HTTPStatus(status).phrase,
        "message": message,
        "error": error or _SLUG_BY_STATUS.get(status, "error"),
    }
    if errors is not None:
        body["errors"] = errors
    body.update(details)
    # As the X-Request-ID header says it: a user's screenshot of the error finds the log.
    if has_request_context() and (request_id := g.get("request_id")):
        body["request_id"] = request_id
    return body


def unavailable(exc: BaseException) -> bool:
    """Whether `exc` says a backing service is unavailable for now rather than that the
    request or the code is wrong: a MongoDB connection failure or timeout (client-side or
    server-side, a write concern's included), a transaction whose conflicts outlasted the
    budget, a Redis connection failure or timeout; or mongoengine's wrapping of one."""
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return True
    if isinstance(exc, PyMongoError):
        return (
            isinstance(exc, ConnectionFailure)
            or exc.timeout
            or exc.has_error_label("TransientTransactionError")
        )
    # mongoengine raises its OperationError from inside the `except` of pymongo's error.
    if isinstance(exc, mongoengine.OperationError) and exc.__context__ is not None:
        return unavailable(exc.__context__)
    return False


def http_exception_response(exc: HTTPException) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Envelope for werkzeug/webargs HTTP exceptions, keeping their headers (Allow, Retry-After)."""
    status = exc.code or 500
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
    data = getattr(exc, "data", None) or {}
    headers.update(data.get("headers") or {})
    errors = data.get("errors") or data.get("messages")
    # webargs nests errors under their location; a single location is flattened.
    if isinstance(errors, dict) and len(errors) == 1 and set(errors) <= _WEBARGS_LOCATIONS:
        errors = next(iter(errors.values()))
    message = data.get("message") or (
        (exc.description or "") if status < 500 else InternalError.message
    )
    if isinstance(exc, RateLimitExceeded):
        message = f"Too many requests: at most {_per(exc.limit.limit)}. {RateLimited.message}"
    slug = data.get("error")
    if status == 400 and errors == ["Invalid JSON body."]:
        slug, message, errors = MalformedJSON.error, MalformedJSON.message, None
    return envelope(status, message, slug, errors), status, headers


def _per(limit: RateLimitItem) -> str:
    """A limit as people say it: `5 per minute`, `20 per 2 minutes` (limits says `5 per 1
    minute`)."""
    unit = limit.GRANULARITY.name
    period = unit if limit.multiples == 1 else f"{limit.multiples} {unit}s"
    return f"{limit.amount} per {period}"


def _retry_after_only_on_refusals(response: Response) -> Response:
    """Retry-After tells a client to wait before trying again: only 429 and 503 say that.
    Flask-Limiter puts its window's reset on every answer of a limited route, a 200 too."""
    if response.status_code not in (RateLimited.status, ServiceUnavailable.status):
        response.headers.pop("Retry-After", None)
    return response


def init_app(app: Flask) -> None:
    # First in the list, so it runs after every other `after_request`, Flask-Limiter's too.
    app.after_request_funcs.setdefault(None, []).insert(0, _retry_after_only_on_refusals)

    def _refuse_oversized_heads(asked: Request) -> None:
        environ = asked.environ
        if len(environ.get("RAW_URI") or asked.full_path) > MAX_URI_BYTES:
            raise URITooLong()
        # A header line is `Name: value`; the environ names a header `HTTP_NAME` (werkzeug's
        # headers read from it: the same lengths, without making each name).
        for key, value in environ.items():
            if key[:5] == "HTTP_" and key not in _CONTENT_HEADERS_AS_HTTP:
                name_length = len(key) - 5
            elif key in _CONTENT_HEADERS and value:
                name_length = len(key)
            else:
                continue
            if name_length + 2 + len(value) > MAX_HEADER_BYTES:
                raise HeaderTooLarge()

    def _json_bodies_only(asked: Request) -> None:
        # The API's bodies; the consoles' pages take forms.
        if asked.method not in {"POST", "PUT", "PATCH"} or not asked.path.startswith("/api/"):
            return
        length = asked.content_length
        has_body = bool(length)
        if length is None:
            # A streamed (chunked) body: werkzeug stops reading it at MAX_CONTENT_LENGTH
            # without a word, and the cut JSON would read as malformed. A byte past the limit
            # means the body was too large.
            body = asked.get_data()
            has_body = bool(body)
            limit = asked.max_content_length
            if limit is not None and len(body) >= limit and asked.input_stream.read(1):
                raise RequestEntityTooLarge()
        # A form or text body sent to a JSON API is a client mistake worth naming (415)
        # rather than a list of "missing field" errors.
        if has_body and not asked.is_json:
            raise UnsupportedMediaType()

    @app.before_request
    def _screen_request() -> None:
        # One hook for both checks: Flask calls each hook of every request on its own; the
        # request taken from Flask's proxy once.
        asked = compat.current_request()
        _refuse_oversized_heads(asked)
        _json_bodies_only(asked)

    @app.errorhandler(DomainError)
    def _domain_error(exc: DomainError):
        response = jsonify(exc.body())
        response.status_code = exc.status
        response.headers.update(exc.headers)
        return response

    @app.errorhandler(PyMongoError)
    @app.errorhandler(mongoengine.OperationError)
    @app.errorhandler(redis.exceptions.ConnectionError)
    @app.errorhandler(redis.exceptions.TimeoutError)
    def _backing_service_unavailable(exc: Exception):
        # MongoDB or Redis slow, unreachable or failing over: the request's budget ran out
        # (app/db.py) or the server went away; the same request may succeed later. Any
        # other database error (a duplicate key the code did not expect) is a bug: a 500.
        if not unavailable(exc):
            raise exc
        return _domain_error(ServiceUnavailable())

    @app.errorhandler(mongoengine.DoesNotExist)
    def _not_found(exc: Exception):
        return _domain_error(NotFound())

    @app.errorhandler(mongoengine.ValidationError)
    def _invalid(exc: mongoengine.ValidationError):
        errors = {k: str(v) for k, v in (exc.to_dict() or {}).items()} or None
        return _domain_error(ValidationFailed(errors=errors))
