"""`Idempotency-Key` for every POST that creates something (docs/api-guide.md).

Keys are scoped to the caller, the method and the path (a caller not signed in yet, at
sign-up, to the body too), and kept 48 hours. A replay with the same body gets the first
response (same status, same body, `Idempotent-Replayed: true`) and changes nothing; the same
key with another body is 422 `idempotency_key_reused`.

The record of a key is written, complete, by the service's answering transaction
(`app.db.transaction(..., answers_request=True)`), rendered from its result with the view's
declared schema, together with the change it protects, in the same command. A view whose
service has no answering transaction stores the answer after the view returns. Two ways of
keeping one key to one effect:

- a claim (the default): the request first inserts its key's record, unfinished; a second
  request with the key finds it, waits a few seconds for the first to finish and answers
  its response (409 `request_in_progress` if it is still running). The answering transaction
  finishes the claim; a request that fails with a 5xx, fails validation or dies leaves no
  finished record: its claim is deleted at once, or, if its process died, taken over after
  CLAIM_ABANDONED_AFTER;
- `idempotent(service=...)`, for a view whose service is declared
  `app.db.changes_in_one_transaction` (registration, redemption, a comment: hot paths): no
  claim and no read of the key; the view runs, and a replay's transaction fails on the
  key's record, inserted first in its batch, and answers the stored response. The unique
  index on (scope, key) lets one of two racing transactions commit.

A refusal (a 4xx domain error) is remembered too, a 409 stays a 409.

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
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import partial, wraps
from typing import Any

import marshmallow as ma
import structlog
from bson import ObjectId
from flask import Response, g, jsonify, request
from mongoengine import DateTimeField, Document, IntField, StringField
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError
from werkzeug.exceptions import UnprocessableEntity

from app import compat, db
from app.clock import utcnow
from app.errors import (
    DomainError,
    IdempotencyKeyReused,
    InvalidIdempotencyKey,
    RequestInProgress,
)
from app.web import REPLAYED, declared_response, header_parameters, refuses, render

log = structlog.get_logger()

HEADER = "Idempotency-Key"
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
# A second request with a claimed key waits this long for the first to finish.
CLAIM_WAIT_SECONDS = 3.0
_CLAIM_POLL_SECONDS = 0.05
# A claim still unfinished after this long belongs to a request whose process died (a
# request's database work has REQUEST_DB_BUDGET_MS, 5 s by default): the key is free again.
CLAIM_ABANDONED_AFTER = timedelta(seconds=30)

KEY_PARAMETER = {
    "in": "header",
    "name": HEADER,
    "required": False,
    "schema": {"type": "string", "pattern": _KEY.pattern},
    "description": "Makes a retried POST safe: the same key and body, sent again within 48 "
    "hours, answer the first response (status and body, with `Idempotent-Replayed: true`) "
    "and change nothing; the same key with another body is 422 `idempotency_key_reused`.",
}


class IdempotencyRecord(Document):
    scope = StringField(required=True)
    key = StringField(required=True)
    request_hash = StringField(required=True)
    # Both unset while a claim's request runs.
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
    """The key's record was an abandoned claim, deleted now: run the view again."""


def _request_hash() -> str:
    payload = request.get_json(silent=True)
    canonical = (
        json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        if payload is not None
        else request.get_data()
    )
    return hashlib.sha256(canonical).hexdigest()


def _scope(request_hash: str) -> str:
    """Whose key this is: the caller's, or, before sign-up, whoever sends this very body
    (which holds their password): another's sign-up never answers theirs."""
    caller = g.get("caller")
    who = caller.id if caller is not None else f"anonymous:{request_hash}"
    return f"{who}:{request.method}:{request.path}"


@dataclass
class _Pending:
    """The record of this request's key, until it is written."""

    records: Collection
    scope: str
    key: str
    request_hash: str
    status: int
    schema: ma.Schema
    # The claim's `_id`; None for a view with `service=`.
    claim: ObjectId | None = None
    body: bytes | None = None
    written: bool = False

    def document(self, status: int | None, body: bytes | None) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "key": self.key,
            "request_hash": self.request_hash,
            "status_code": status,
            "body": body.decode() if body is not None else None,
            "created_at": utcnow(),
        }

    # `app.db.Answer`: called by the answering transaction.
    def queue(self, writes: db.Writes, result: Any) -> None:
        if self.written:
            return
        self.body = render(self.schema, result)
        if self.claim is not None:
            writes.update(
                self.records,
                {"_id": self.claim, "body": None},
                {"$set": {"status_code": self.status, "body": self.body.decode()}},
                refusal=KeyTaken(),
            )
            return
        # First: a replay's transaction then fails on the key, whatever else it repeats.
        record = self.document(self.status, self.body)
        writes.insert(self.records, record, duplicate=KeyTaken(), first=True)

    def committed(self) -> None:
        self.written = self.body is not None

    def take(self) -> Response | None:
        """Claim the key for this request; the answer to give instead when the key is
        another request's (its stored response, once it finished)."""
        deadline = time.monotonic() + CLAIM_WAIT_SECONDS
        while True:
            if time.monotonic() > deadline:
                raise RequestInProgress()
            document = self.document(None, None)
            try:
                self.claim = self.records.insert_one(document).inserted_id
                return None
            except DuplicateKeyError:
                pass
            found = self.records.find_one({"scope": self.scope, "key": self.key})
            if found is None:
                continue  # its request failed and let the key go
            if found.get("body") is None and _abandoned(found):
                self.records.delete_one({"_id": found["_id"], "body": None})
                continue
            if found.get("body") is not None or found["request_hash"] != self.request_hash:
                return _answer(found, self.request_hash)
            time.sleep(_CLAIM_POLL_SECONDS)

    def release(self) -> None:
        """Let the key go: this request failed and recorded nothing."""
        if self.claim is not None:
            self.records.delete_one({"_id": self.claim, "body": None})

    def store(self, status: int, body: bytes) -> Response | None:
        """Store an answer outside any transaction; the winner's answer if there is one."""
        if self.claim is not None:
            finished = self.records.update_one(
                {"_id": self.claim, "body": None},
                {"$set": {"status_code": status, "body": body.decode()}},
            )
            if not finished.matched_count:
                # Taken over as abandoned while the view ran (past CLAIM_ABANDONED_AFTER):
                # the view's change is made, so its own answer stands.
                log.warning("idempotency_claim_lost", scope=self.scope)
            return None
        try:
            self.records.insert_one(self.document(status, body))
        except DuplicateKeyError:
            return self.answer_stored()
        return None

    def stored(self) -> dict[str, Any] | None:
        """The key's finished record; an abandoned claim is deleted, and the key is free."""
        found = self.records.find_one({"scope": self.scope, "key": self.key})
        if found is not None and found.get("body") is None:
            if not _abandoned(found):
                raise RequestInProgress()
            self.records.delete_one({"_id": found["_id"], "body": None})
            return None
        return found

    def answer_stored(self) -> Response:
        found = self.stored()
        if found is None:
            # The record that refused ours was an abandoned one, deleted now.
            raise _Unfinished()
        return _answer(found, self.request_hash)


def _abandoned(record: dict[str, Any]) -> bool:
    return record["created_at"] < utcnow() - CLAIM_ABANDONED_AFTER


def _answer(record: dict[str, Any], request_hash: str) -> Response:
    if record["request_hash"] != request_hash:
        raise IdempotencyKeyReused()
    response = Response(record["body"], status=record["status_code"], mimetype="application/json")
    response.headers[REPLAYED] = "true"
    return response


def idempotent(
    view: Callable[..., Response] | None = None, *, service: Callable[..., Any] | None = None
) -> Any:
    """Wrap a view: outermost of its method decorators, above the `@blp.response` whose
    schema renders the stored answer; the header, the `Idempotent-Replayed` answer header
    and the refusals it adds are documented with the view.

    `@idempotent(service=registration.register)` names the one service the view calls when
    that service is declared `app.db.changes_in_one_transaction` (the declaration lives
    there, once, and holds while it runs), and spares each request the claim: the view
    runs, and a replay's transaction fails on the key's record, which changes nothing, and
    answers the stored response. A replay then costs the view's reads, a first request
    nothing more than its own commands.
    """
    if view is None:
        return partial(idempotent, service=service)
    if service is not None and not getattr(service, "changes_in_one_transaction", False):
        raise TypeError(
            f"{view.__qualname__}: {service.__qualname__} is not declared "
            "app.db.changes_in_one_transaction, so its requests need a claim: drop service="
        )
    changes_in_transaction = service is not None
    status, schema = declared_response(view)

    def respond(pending: _Pending, args: Any, kwargs: Any) -> Response:
        try:
            with db.answering(pending):
                response = view(*args, **kwargs)
        except KeyTaken:
            return pending.answer_stored()
        except DomainError as refusal:
            if refusal.status >= 500:
                pending.release()
                raise
            body = jsonify(refusal.body()).get_data()
            if (first := pending.store(refusal.status, body)) is not None:
                return first
            raise
        except UnprocessableEntity:
            # A body the schema refuses: with a key already used for another body, that
            # is the answer (the view ran before the key was read).
            if changes_in_transaction and (found := pending.stored()) is not None:
                return _answer(found, pending.request_hash)
            pending.release()
            raise
        except BaseException:
            pending.release()
            raise
        if not pending.written:
            # The view changed nothing in an answering transaction: store its answer now.
            if response.status_code >= 500:
                pending.release()
                return response
            return pending.store(response.status_code, response.get_data()) or response
        if (response.status_code, response.get_data()) != (pending.status, pending.body):
            log.error("idempotent_answer_differs", view=view.__qualname__)
            return Response(pending.body, status=pending.status, mimetype="application/json")
        return response

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        if (key := request_key()) is None:
            return view(*args, **kwargs)
        request_hash = _request_hash()
        records = IdempotencyRecord._get_collection()
        pending = _Pending(records, _scope(request_hash), key, request_hash, status, schema)
        if not changes_in_transaction and (answered := pending.take()) is not None:
            return answered
        try:
            return respond(pending, args, kwargs)
        except _Unfinished:
            # Our transaction failed on a record found gone since: it changed nothing.
            retry = replace(pending, claim=None, body=None, written=False)
            if not changes_in_transaction and (answered := retry.take()) is not None:
                return answered
            return respond(retry, args, kwargs)

    documented = header_parameters(KEY_PARAMETER)(wrapper)
    documented = refuses(InvalidIdempotencyKey, IdempotencyKeyReused)(documented)
    if not changes_in_transaction:
        documented = refuses(RequestInProgress)(documented)
    return _mark_idempotent(documented)


def request_key() -> str | None:
    """The request's `Idempotency-Key`, if it sent one (400 `invalid_idempotency_key` for
    one that is not 1-255 printable ASCII characters)."""
    key = request.headers.get(HEADER)
    if key is not None and not _KEY.match(key):
        raise InvalidIdempotencyKey()
    return key


def keyed_by_the_view(view: Any) -> Any:
    """Document a view that keeps its `Idempotency-Key` itself (a drop entry keeps it on the
    entry) as `idempotent` documents its views: the header, the refusals, the replayed
    answers. The view reads the key with `request_key()`."""
    documented = header_parameters(KEY_PARAMETER)(view)
    return _mark_idempotent(refuses(InvalidIdempotencyKey, IdempotencyKeyReused)(documented))


def _mark_idempotent(view: Any) -> Any:
    """Tell the project Blueprint to document the view's success answer as replayable."""
    return compat.note_on_view(view, "idempotent", True)
