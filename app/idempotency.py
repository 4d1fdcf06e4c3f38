"""`Idempotency-Key` for the POSTs docs/api-guide.md lists.

Keys are scoped to the caller, the method and the path, and kept 48 hours. A replay with the
same body gets the first response (same status, same body) and changes nothing; the same key
with another body is 422 `idempotency_key_reused`.

The record of a key is written once, complete, in the transaction of the change it protects;
nothing is written before. The decorator reads the record once: found, it answers from it.
Not found, the view runs with a pending record that the service's answering transaction
(`app.db.transaction(..., answers_request=True)`) renders from its result and inserts with
its own writes, in the same command. (A view whose every change is in that transaction can
skip the read: `changes_in_transaction=True`, below.) So:

- two requests racing with one key cannot both take effect: the unique index on
  (scope, key) lets one transaction commit, the other fails on it (or on the change itself:
  the stock the first took) and answers the first one's record;
- a request that dies, or fails with a 5xx, wrote nothing: its key is free at once;
- a refusal (a 4xx domain error) is remembered too, a 409 stays a 409: its transaction
  aborted, so its record is inserted after it, unless a concurrent request with the key
  committed first, whose answer is then given.

Why the body is rendered inside the transaction rather than the resource's id stored and
rendered again on a replay: the resource changes (a registration is cancelled, a redemption
fulfilled), and a replay answers what the first request answered, byte for byte. The record
holds the body the view's declared schema (`@blp.response`) makes of the unit's result, which
is what the service returns and the view hands to flask-smorest; the decorator checks that
the view answered exactly those bytes, and answers the stored ones if it ever did not.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial, wraps
from typing import Any

import marshmallow as ma
import structlog
from flask import Response, jsonify, request
from mongoengine import DateTimeField, Document, IntField, StringField
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError
from werkzeug.exceptions import UnprocessableEntity

from app import db
from app.auth import caller
from app.clock import utcnow
from app.errors import DomainError, IdempotencyKeyReused, InvalidIdempotencyKey
from app.web import declared_response, header_parameters, refuses, render

log = structlog.get_logger()

HEADER = "Idempotency-Key"
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


class KeyTaken(Exception):
    """Another request with this key committed first (raised out of the transaction)."""


class _Unfinished(Exception):
    """The key's record was one the previous release left unfinished: run the view again."""


def _request_hash() -> str:
    payload = request.get_json(silent=True)
    canonical = (
        json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        if payload is not None
        else request.get_data()
    )
    return hashlib.sha256(canonical).hexdigest()


@dataclass
class _Pending:
    """The record of this request's key, until a transaction writes it."""

    records: Collection
    scope: str
    key: str
    request_hash: str
    status: int
    schema: ma.Schema
    body: bytes | None = None
    written: bool = False

    def document(self, status: int, body: bytes) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "key": self.key,
            "request_hash": self.request_hash,
            "status_code": status,
            "body": body.decode(),
            "created_at": utcnow(),
        }

    # `app.db.Answer`: called by the answering transaction.
    def queue(self, writes: db.Writes, result: Any) -> None:
        if self.written:
            return
        self.body = render(self.schema, result)
        # First: a replay's transaction then fails on the key, whatever else it repeats.
        record = self.document(self.status, self.body)
        writes.insert(self.records, record, duplicate=KeyTaken(), first=True)

    def committed(self) -> None:
        self.written = self.body is not None

    def insert(self, status: int, body: bytes) -> Response | None:
        """Store an answer outside any transaction; the winner's answer if there is one."""
        try:
            self.records.insert_one(self.document(status, body))
        except DuplicateKeyError:
            return self.answer_stored()
        return None

    def stored(self) -> dict[str, Any] | None:
        """The key's finished record; one left by the previous release for a request that
        never finished is deleted, and the key is free."""
        found = self.records.find_one({"scope": self.scope, "key": self.key})
        if found is not None and found.get("body") is None:
            self.records.delete_one({"_id": found["_id"], "body": None})
            return None
        return found

    def answer_stored(self) -> Response:
        found = self.stored()
        if found is None:
            # The record that refused ours was an unfinished one, deleted now.
            raise _Unfinished()
        return _answer(found, self.request_hash)


def _answer(record: dict[str, Any], request_hash: str) -> Response:
    if record["request_hash"] != request_hash:
        raise IdempotencyKeyReused()
    response = Response(record["body"], status=record["status_code"], mimetype="application/json")
    response.headers["Idempotent-Replayed"] = "true"
    return response


def idempotent(
    view: Callable[..., Response] | None = None, *, changes_in_transaction: bool = False
) -> Any:
    """Wrap a view: outermost of its method decorators, above the `@blp.response` whose
    schema renders the stored answer; the header and the refusals it adds are documented
    with the view.

    `changes_in_transaction=True` (as `@idempotent(changes_in_transaction=True)`) declares
    that the view changes nothing but in its answering transaction, and spares each request
    the read of its key: the view runs, and a replay's transaction fails on the key's record,
    which changes nothing, and answers the stored response. A replay then costs the view's
    reads, a first request one command less.
    """
    if view is None:
        return partial(idempotent, changes_in_transaction=changes_in_transaction)
    status, schema = declared_response(view)

    def respond(pending: _Pending, args: Any, kwargs: Any) -> Response:
        try:
            with db.answering(pending):
                response = view(*args, **kwargs)
        except KeyTaken:
            return pending.answer_stored()
        except DomainError as refusal:
            if refusal.status >= 500:
                raise
            body = jsonify(refusal.body()).get_data()
            if (first := pending.insert(refusal.status, body)) is not None:
                return first
            raise
        except UnprocessableEntity:
            # A body the schema refuses: with a key already used for another body, that
            # is the answer (the view ran before the key was read).
            if changes_in_transaction and (found := pending.stored()) is not None:
                return _answer(found, pending.request_hash)
            raise
        if not pending.written:
            # The view changed nothing in an answering transaction: store its answer now.
            if response.status_code >= 500:
                return response
            return pending.insert(response.status_code, response.get_data()) or response
        if (response.status_code, response.get_data()) != (pending.status, pending.body):
            log.error("idempotent_answer_differs", view=view.__qualname__)
            return Response(pending.body, status=pending.status, mimetype="application/json")
        return response

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        key = request.headers.get(HEADER)
        if key is None:
            return view(*args, **kwargs)
        if not _KEY.match(key):
            raise InvalidIdempotencyKey()
        scope = f"{caller().id}:{request.method}:{request.path}"
        records = IdempotencyRecord._get_collection()
        pending = _Pending(records, scope, key, _request_hash(), status, schema)
        if not changes_in_transaction and (found := pending.stored()) is not None:
            return _answer(found, pending.request_hash)
        try:
            return respond(pending, args, kwargs)
        except _Unfinished:
            return respond(replace(pending, body=None, written=False), args, kwargs)

    documented = header_parameters(KEY_PARAMETER)(wrapper)
    return refuses(InvalidIdempotencyKey, IdempotencyKeyReused)(documented)
