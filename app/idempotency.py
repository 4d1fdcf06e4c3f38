"""`Idempotency-Key` for the POSTs docs/api-guide.md lists.

Keys are scoped to the caller, the method and the path, and kept 48 hours. The first
request with a key runs; a replay with the same body gets the first response (same status,
same body) and changes nothing; the same key with another body is 422
`idempotency_key_reused`; a replay while the first is still running is 409
`request_in_progress`. A request that crashed (500, or a process killed) frees its key, so
the client's retry runs it again.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any

from flask import Response, request
from mongoengine import DateTimeField, Document, IntField, StringField
from pymongo.errors import DuplicateKeyError

from app.auth import caller
from app.clock import utcnow
from app.errors import (
    DomainError,
    IdempotencyKeyReused,
    InvalidIdempotencyKey,
    RequestInProgress,
)
from app.web import header_parameters, refuses

HEADER = "Idempotency-Key"
IN_PROGRESS = "in_progress"
DONE = "done"
# An in-progress record older than this belongs to a request that died mid-way.
ABANDONED_AFTER = timedelta(seconds=60)
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")

KEY_PARAMETER = {
    "in": "header",
    "name": HEADER,
    "required": False,
    "schema": {"type": "string", "pattern": _KEY.pattern},
    "description": "Makes a retried POST safe: the same key and body return the first response.",
}


class IdempotencyRecord(Document):
    scope = StringField(required=True)
    key = StringField(required=True)
    request_hash = StringField(required=True)
    state = StringField(required=True, default=IN_PROGRESS)
    status_code = IntField()
    body = StringField()
    created_at = DateTimeField(default=utcnow)

    meta = {
        "collection": "idempotency_keys",
        "indexes": [
            {"fields": ["scope", "key"], "unique": True},
            {"fields": ["created_at"], "expireAfterSeconds": 48 * 3600},
        ],
    }


def _request_hash() -> str:
    payload = request.get_json(silent=True)
    canonical = (
        json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        if payload is not None
        else request.get_data()
    )
    return hashlib.sha256(canonical).hexdigest()


def _replay(record: dict[str, Any]) -> Response:
    response = Response(record["body"], status=record["status_code"], mimetype="application/json")
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _claim(records, scope: str, key: str, request_hash: str) -> Response | None:
    """Insert the in-progress record; or answer from (or take over) an existing one."""
    try:
        records.insert_one(
            {
                "scope": scope,
                "key": key,
                "request_hash": request_hash,
                "state": IN_PROGRESS,
                "created_at": utcnow(),
            }
        )
        return None
    except DuplicateKeyError:
        existing = records.find_one({"scope": scope, "key": key})
    if existing is None:  # expired between the insert and the read
        return _claim(records, scope, key, request_hash)
    if existing["request_hash"] != request_hash:
        raise IdempotencyKeyReused()
    if existing["state"] == DONE:
        return _replay(existing)
    taken_over = records.update_one(
        {
            "_id": existing["_id"],
            "state": IN_PROGRESS,
            "created_at": {"$lt": utcnow() - ABANDONED_AFTER},
        },
        {"$set": {"created_at": utcnow()}},
    )
    if not taken_over.matched_count:
        raise RequestInProgress()
    return None


def idempotent(view: Callable[..., Response]) -> Callable[..., Response]:
    """Wrap a view (outermost of its method decorators, after authentication); the header
    and the refusals it adds are documented with the view."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        key = request.headers.get(HEADER)
        if key is None:
            return view(*args, **kwargs)
        if not _KEY.match(key):
            raise InvalidIdempotencyKey()
        records = IdempotencyRecord._get_collection()
        scope = f"{caller().id}:{request.method}:{request.path}"
        replayed = _claim(records, scope, key, _request_hash())
        if replayed is not None:
            return replayed
        try:
            response = view(*args, **kwargs)
        except DomainError as exc:
            body = json.dumps(exc.body())
            records.update_one(
                {"scope": scope, "key": key},
                {"$set": {"state": DONE, "status_code": exc.status, "body": body}},
            )
            raise
        except BaseException:
            records.delete_one({"scope": scope, "key": key, "state": IN_PROGRESS})
            raise
        if response.status_code >= 500:
            records.delete_one({"scope": scope, "key": key, "state": IN_PROGRESS})
        else:
            records.update_one(
                {"scope": scope, "key": key},
                {
                    "$set": {
                        "state": DONE,
                        "status_code": response.status_code,
                        "body": response.get_data(as_text=True),
                    }
                },
            )
        return response

    documented = header_parameters(KEY_PARAMETER)(wrapper)
    return refuses(InvalidIdempotencyKey, RequestInProgress, IdempotencyKeyReused)(documented)
