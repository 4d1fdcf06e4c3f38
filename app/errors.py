"""One error envelope: flask-smorest's `code/status/message/errors` plus a stable `error` slug.

Services raise `DomainError` subclasses carrying their HTTP status and slug; the handlers
registered by `init_app` turn them, HTTP exceptions and mongoengine's validation and
not-found errors into that envelope. Anything else is a bug and stays a 500.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import mongoengine
from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

# Slugs for errors that carry no domain meaning of their own.
_SLUG_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}


# Past these, gunicorn would answer with an HTML page of its own; it runs with its limits
# raised (app/launcher.py, README) so that these JSON answers reach the client instead.
MAX_URI_BYTES = 8190
MAX_HEADER_BYTES = 8190

_WEBARGS_LOCATIONS = {"json", "query", "headers", "form", "files", "view_args", "querystring"}


class DomainError(Exception):
    """A refusal the client can act on. Subclasses fix the status; `error` is the slug."""

    status = 409
    error = "conflict"
    message = "The request conflicts with the current state."

    def __init__(
        self,
        error: str | None = None,
        message: str | None = None,
        headers: dict[str, str] | None = None,
        **details: Any,
    ) -> None:
        self.error = error or self.error
        self.message = message or self.message
        self.headers = headers or {}
        self.details = details
        super().__init__(self.message)


class BadRequest(DomainError):
    status = 400
    error = "bad_request"
    message = "The request is not valid."


class UnreadableBody(BadRequest, ValueError):
    """A JSON body refused as a whole. A `ValueError` too, so `request.get_json(silent=True)`
    callers (rate-limit keys, idempotency hashes) treat it as any malformed body."""


class JSONTooDeep(UnreadableBody):
    error = "json_too_deep"
    message = "The request body nests too deeply."


class InvalidText(UnreadableBody):
    error = "invalid_text"
    message = "The request body holds text that is not valid Unicode (a lone surrogate)."


class ValidationFailed(DomainError):
    status = 422
    error = "validation_failed"
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


class Conflict(DomainError):
    status = 409
    error = "conflict"


class ServiceUnavailable(DomainError):
    status = 503
    error = "service_unavailable"
    message = "A backing service is unavailable; retry later."

    def __init__(self, *args: Any, retry_after: int = 5, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.headers.setdefault("Retry-After", str(retry_after))


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
    return body


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
        (exc.description or "") if status < 500 else "Internal server error."
    )
    slug = data.get("error")
    if status == 400 and errors == ["Invalid JSON body."]:
        slug, message, errors = "malformed_json", "The request body is not valid JSON.", None
    return envelope(status, message, slug, errors), status, headers


def init_app(app: Flask) -> None:
    @app.before_request
    def _refuse_oversized_heads():
        if len(request.environ.get("RAW_URI") or request.full_path) > MAX_URI_BYTES:
            message = f"The URL is longer than {MAX_URI_BYTES} bytes."
            return jsonify(envelope(414, message, "uri_too_long")), 414
        # A header line is `Name: value`.
        if any(len(name) + 2 + len(value) > MAX_HEADER_BYTES for name, value in request.headers):
            message = f"A request header is longer than {MAX_HEADER_BYTES} bytes."
            return jsonify(envelope(431, message, "header_too_large")), 431
        return None

    @app.before_request
    def _json_bodies_only():
        if request.method not in {"POST", "PUT", "PATCH"}:
            return None
        has_body = bool(request.content_length)
        if request.content_length is None:
            # A streamed (chunked) body: werkzeug stops reading it at MAX_CONTENT_LENGTH
            # without a word, and the cut JSON would read as malformed. A byte past the limit
            # means the body was too large.
            body = request.get_data()
            has_body = bool(body)
            limit = request.max_content_length
            if limit is not None and len(body) >= limit and request.input_stream.read(1):
                raise RequestEntityTooLarge()
        # A form or text body sent to a JSON API is a client mistake worth naming (415)
        # rather than a list of "missing field" errors.
        if has_body and not request.is_json:
            return jsonify(envelope(415, "Send the body as application/json.")), 415
        return None

    @app.errorhandler(DomainError)
    def _domain_error(exc: DomainError):
        response = jsonify(envelope(exc.status, exc.message, exc.error, **exc.details))
        response.status_code = exc.status
        response.headers.update(exc.headers)
        return response

    @app.errorhandler(mongoengine.DoesNotExist)
    def _not_found(exc: Exception):
        return jsonify(envelope(404, "Not found.")), 404

    @app.errorhandler(mongoengine.ValidationError)
    def _invalid(exc: mongoengine.ValidationError):
        errors = {k: str(v) for k, v in (exc.to_dict() or {}).items()} or None
        return jsonify(envelope(422, "The request is not valid.", errors=errors)), 422
