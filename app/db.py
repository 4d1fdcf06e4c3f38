"""MongoDB through mongoengine, plus the unit-of-work helper mongoengine 0.29 lacks.

mongoengine has no transaction API and no `session=` argument, so code that must change
several documents atomically writes through `Model._get_collection()` with the session that
`transaction()` hands it. `ClientSession.with_transaction` retries the whole unit on
TransientTransactionError (a concurrent writer's WriteConflict), so the unit must be safe
to run more than once: read and write only through the session, no side effects outside.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import mongoengine
import pymongo
from bson import ObjectId
from bson.errors import InvalidId
from flask import Flask, g
from pymongo import MongoClient, uri_parser
from pymongo.client_session import ClientSession
from pymongo.collection import Collection
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from app.errors import NotFound

T = TypeVar("T")
D = TypeVar("D", bound=mongoengine.Document)


# Unless the URI says otherwise: how long a process waits for a server it cannot reach
# (pymongo's defaults, 20 s to connect and 30 s to select a server, would hold a worker or
# a CLI for half a minute on a database that is gone).
_TIMEOUT_DEFAULTS = {"connectTimeoutMS": 2000, "serverSelectionTimeoutMS": 5000}


def connect(uri: str) -> None:
    """Connect mongoengine's default alias. Called in each process after any fork."""
    mongoengine.disconnect()
    given = {name.lower() for name in uri_parser.parse_uri(uri, validate=False)["options"]}
    defaults = {name: ms for name, ms in _TIMEOUT_DEFAULTS.items() if name.lower() not in given}
    mongoengine.connect(
        host=uri, tz_aware=True, uuidRepresentation="standard", connect=False, **defaults
    )


def init_app(app: Flask) -> None:
    """Give each request a budget for all its MongoDB work (REQUEST_DB_BUDGET_MS): pymongo's
    client-side timeout bounds server selection, connecting, every command and transaction
    retries together, so a slow or unreachable database costs a request that long and then
    a 503 (app/errors.py), not a thread held until the client gives up."""

    @app.before_request
    def _start_budget() -> None:
        budget = pymongo.timeout(app.config["REQUEST_DB_BUDGET_MS"] / 1000)
        budget.__enter__()
        g.db_budget = budget

    @app.teardown_request
    def _end_budget(exc: BaseException | None) -> None:
        budget = g.pop("db_budget", None)
        if budget is not None:
            budget.__exit__(None, None, None)


def client() -> MongoClient:
    return mongoengine.get_connection()


def database():
    return mongoengine.get_db()


def transaction(work: Callable[[ClientSession], T]) -> T:
    """Run `work(session)` in one MongoDB transaction and return its result."""
    with client().start_session() as session:
        return session.with_transaction(
            work,
            read_concern=ReadConcern("snapshot"),
            write_concern=WriteConcern("majority"),
        )


def update_and_read(
    collection: Collection,
    filter: dict[str, Any],
    update: dict[str, Any],
    *,
    session: ClientSession,
    upsert: bool = False,
) -> dict[str, Any] | None:
    """`find_one_and_update(..., return_document=AFTER)` for use inside a transaction.

    SecantusDB runs findAndModify as a scan of the whole collection (65 ms at 5,000
    documents, against 1 ms for an update and a read by `_id`). Inside a transaction the
    update holds the document until commit, so reading it back in the same session is just
    as atomic. `filter` must select by `_id`.
    """
    result = collection.update_one(filter, update, upsert=upsert, session=session)
    if not (result.matched_count or result.upserted_id is not None):
        return None
    return collection.find_one({"_id": filter["_id"]}, session=session)


def object_id(value: Any) -> ObjectId | None:
    """Parse an id from a URL or body; None when it cannot be an id."""
    if isinstance(value, ObjectId):
        return value
    try:
        return ObjectId(str(value))
    except (InvalidId, TypeError):
        return None


def get_or_404(model: type[D], id_: Any, **filters: Any) -> D:
    """Load one document by id; a malformed id is simply not found."""
    oid = object_id(id_)
    document = model.objects(pk=oid, **filters).first() if oid else None
    if document is None:
        raise NotFound(message=f"{model.__name__} not found.")
    return document


def all_document_classes() -> Iterable[type[mongoengine.Document]]:
    from mongoengine.base import _document_registry

    for document in _document_registry.values():
        if issubclass(document, mongoengine.Document) and not document._meta.get("abstract"):
            yield document


def ensure_indexes() -> None:
    """Create every index the models declare in `meta` (idempotent)."""
    for document in all_document_classes():
        document.ensure_indexes()


def drop_undeclared_indexes() -> list[str]:
    """Drop the indexes of model collections that no model declares any more: earlier
    releases leave them behind, and each one costs every write. Returns what was dropped,
    as "collection.index"."""
    dropped = []
    for document in all_document_classes():
        collection = document._get_collection()
        undeclared = document.compare_indexes()["extra"]
        for name, info in collection.index_information().items():
            if name != "_id_" and info["key"] in undeclared:
                collection.drop_index(name)
                dropped.append(f"{collection.name}.{name}")
    return dropped


def ping(timeout_ms: int = 1000) -> bool:
    try:
        # The client-side timeout bounds server selection and the reply, which a paused or
        # unreachable server would otherwise hold for serverSelectionTimeoutMS or forever.
        with pymongo.timeout(timeout_ms / 1000):
            client().admin.command("ping")
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        return False
    return True
