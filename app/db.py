"""MongoDB through mongoengine, plus the unit-of-work helper mongoengine 0.29 lacks.

mongoengine has no transaction API and no `session=` argument, so code that must change
several documents atomically writes through `Model._get_collection()` with the session that
`transaction()` hands it. `ClientSession.with_transaction` retries the whole unit on
TransientTransactionError (a concurrent writer's WriteConflict), so the unit must be safe
to run more than once: read and write only through the session, no side effects outside.

Hot paths keep their round trips few (each has a command budget, tests/*/test_budgets.py):
a unit reads what it needs in the transaction's snapshot, decides, and queues its writes in
`batch(session)`; `transaction()` sends them in ONE command (MongoDB 8.0's client
`bulkWrite`, across collections, in order) and commits. In a snapshot, a conditional write
can only miss if the unit misread: a concurrent change to a document it read makes the write
fail with WriteConflict and the unit run again. So the conditions the writes carry (stock left,
balance left) are the invariants' last line, not the way the unit learns the state.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, Protocol, TypeVar

import mongoengine
import pymongo
from bson import ObjectId
from bson.errors import InvalidId
from flask import Flask, g
from pymongo import DeleteOne, InsertOne, MongoClient, UpdateOne, uri_parser
from pymongo.client_session import ClientSession
from pymongo.collection import Collection
from pymongo.errors import ClientBulkWriteException, DuplicateKeyError, PyMongoError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from app import compat
from app.errors import DomainError, NotFound

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


def widen_request_budget(milliseconds: int) -> None:
    """Give the current request a database budget of its own, from now on, in place of
    REQUEST_DB_BUDGET_MS: for the few requests whose work is large by nature (an ecosystem
    partner's statement of a day, tens of megabytes), which would otherwise always be 503."""
    budget = g.pop("db_budget", None)
    if budget is not None:
        budget.__exit__(None, None, None)
    widened = pymongo.timeout(milliseconds / 1000)
    widened.__enter__()
    g.db_budget = widened


def client() -> MongoClient:
    return mongoengine.get_connection()


def database():
    return mongoengine.get_db()


class Answer(Protocol):
    """What `transaction(..., answers_request=True)` writes with the unit's result: the
    request's Idempotency-Key record (app/idempotency.py), set for the request's duration."""

    def queue(self, writes: Writes, result: Any) -> None: ...

    def committed(self) -> None: ...


class StaleCache(Exception):
    """A write conditioned on what a cached figure said matched nothing: the figure is
    stale. `transaction` runs the unit once more with `caches_trusted()` false, and the unit
    reads what it took from the cache (and rewrites the cache)."""


_answer: ContextVar[Answer | None] = ContextVar("answer", default=None)
_caches_trusted: ContextVar[bool] = ContextVar("caches_trusted", default=True)
_running: ContextVar[Writes | None] = ContextVar("running_unit", default=None)
# The service running now declared `changes_in_one_transaction` (its name), and whether its
# answering transaction has run.
_one_transaction: ContextVar[list[Any] | None] = ContextVar("one_transaction", default=None)

Service = TypeVar("Service", bound=Callable[..., Any])


def changes_in_one_transaction(service: Service) -> Service:
    """Declare that `service` changes nothing but in one answering transaction
    (`transaction(..., answers_request=True)`): a view calling it may then take an
    Idempotency-Key without a claim (`app.idempotency.idempotent(service=...)`), since a
    replay's transaction fails on the key's record and changes nothing.

    The declaration is held while the service runs: another transaction, or a second
    answering one, raises `TypeError` (a programming error, not a refusal)."""

    @wraps(service)
    def declared(*args: Any, **kwargs: Any) -> Any:
        token = _one_transaction.set([service.__qualname__, False])
        try:
            return service(*args, **kwargs)
        finally:
            _one_transaction.reset(token)

    declared.changes_in_one_transaction = True  # type: ignore[attr-defined]
    return declared  # type: ignore[return-value]


def _hold_one_transaction(answers_request: bool) -> list[Any] | None:
    """The running service's declaration, refusing a transaction it does not allow (one
    that failed and is tried again is allowed: it committed nothing)."""
    declared = _one_transaction.get()
    if declared is not None and (not answers_request or declared[1]):
        raise TypeError(
            f"{declared[0]} is declared changes_in_one_transaction but runs another transaction"
        )
    return declared


class KeptCopies:
    """What this process last read of some documents (a reward's or an event's terms), by id,
    so that a unit may decide without reading them again; bounded: the whole copy is dropped
    beyond `limit` documents. The unit's writes are conditioned on what it decided from, and
    `decided_from` turns a refusal the copy decided into a `StaleCache`."""

    def __init__(self, limit: int = 1_024) -> None:
        self._copies: dict[Any, dict[str, Any]] = {}
        self._limit = limit

    def get(self, key: Any) -> dict[str, Any] | None:
        return self._copies.get(key)

    def keep(self, key: Any, copy: dict[str, Any]) -> None:
        if len(self._copies) >= self._limit:
            self._copies.clear()
        self._copies[key] = copy

    def forget(self, key: Any) -> None:
        self._copies.pop(key, None)


def decided_from(copy: dict[str, Any] | None, decide: Callable[[], T]) -> T:
    """`decide()`, where a refusal decided from `copy` (None: from a read) is decided again
    from a read: it raises `StaleCache` instead, since the copy may be what refused."""
    try:
        return decide()
    except DomainError:
        if copy is None:
            raise
        raise StaleCache() from None


def caches_trusted() -> bool:
    """Whether a unit may decide from a cached figure (false once a write conditioned on one
    found it stale: see `StaleCache`)."""
    return _caches_trusted.get()


@contextmanager
def answering(answer: Answer) -> Iterator[None]:
    """For the block: the transaction that answers the request also writes `answer`."""
    token = _answer.set(answer)
    try:
        yield
    finally:
        _answer.reset(token)


def transaction(
    work: Callable[[ClientSession], T],
    *,
    answers_request: bool = False,
    reads_nothing: bool = False,
) -> T:
    """Run `work(session)` in one MongoDB transaction and return its result.

    The writes `work` queued in `batch(session)` are sent in one command after it returns,
    then the transaction commits. `answers_request=True` says the result is what the service
    hands its caller (the view renders it): a request made with an Idempotency-Key then
    stores its answer in this same transaction, so the key is used exactly when the change
    is made. A unit that finds a cached figure stale (`StaleCache`) runs once more, trusting
    no cache.

    `reads_nothing=True` says the unit decides from copies alone while caches are trusted:
    its transaction then starts with its writes, without the snapshot read concern that a
    `bulkWrite` may not carry (a transaction reading nothing needs none), instead of with a
    read of its own; run again after a `StaleCache`, it reads, in a snapshot.
    """
    declared = _hold_one_transaction(answers_request)
    answer = _answer.get() if answers_request else None

    def unit(session: ClientSession) -> T:
        writes = Writes(session, opens_with_a_read=not (reads_nothing and caches_trusted()))
        running = _running.set(writes)
        try:
            result = work(session)
        finally:
            _running.reset(running)
        if answer is not None:
            answer.queue(writes, result)
        writes.send()
        return result

    with client().start_session() as session:

        def run() -> T:
            return session.with_transaction(
                unit,
                read_concern=ReadConcern()
                if reads_nothing and caches_trusted()
                else ReadConcern("snapshot"),
                write_concern=WriteConcern("majority"),
            )

        try:
            result = run()
        except StaleCache:
            distrusted = _caches_trusted.set(False)
            try:
                result = run()
            finally:
                _caches_trusted.reset(distrusted)
    if declared is not None:
        declared[1] = True  # committed
    if answer is not None:
        answer.committed()
    return result


@dataclass
class _Check:
    collection: Collection
    # Raised when the update matched no document (its condition no longer held).
    refusal: Exception | None = None
    # Raised when the write hit a unique index.
    duplicate: Exception | None = None


@dataclass
class Writes:
    """Writes to any collections, sent in order in one client `bulkWrite` (MongoDB 8.0+).

    Queued writes are not visible to the unit's later reads: a unit that must read its own
    writes calls `send()` first (the ledger does, so that several movements of one owner in
    one transaction each see the last).
    """

    session: ClientSession
    # Whether the transaction's first command must be a read (it carries the snapshot read
    # concern, which a `bulkWrite` may not): see `transaction(..., reads_nothing=True)`.
    opens_with_a_read: bool = True
    _models: list[InsertOne | UpdateOne | DeleteOne] = field(default_factory=list)
    _checks: list[_Check] = field(default_factory=list)

    def insert(
        self,
        collection: Collection,
        document: dict[str, Any],
        *,
        duplicate: Exception | None = None,
        first: bool = False,
    ) -> None:
        """Queue an insert; `first=True` puts it before every write queued so far, so that
        its `duplicate` is the one raised when several would be."""
        at = 0 if first else len(self._models)
        self._models.insert(at, InsertOne(document, namespace=_namespace(collection)))
        self._checks.insert(at, _Check(collection, duplicate=duplicate))

    def update(
        self,
        collection: Collection,
        filter: dict[str, Any],
        update: dict[str, Any] | list[dict[str, Any]],
        *,
        upsert: bool = False,
        refusal: Exception | None = None,
        duplicate: Exception | None = None,
    ) -> None:
        self._models.append(
            UpdateOne(filter, update, upsert=upsert, namespace=_namespace(collection))
        )
        self._checks.append(_Check(collection, refusal, duplicate))

    def delete(self, collection: Collection, filter: dict[str, Any]) -> None:
        self._models.append(DeleteOne(filter, namespace=_namespace(collection)))
        self._checks.append(_Check(collection))

    def __len__(self) -> int:
        return len(self._models)

    def send(self) -> None:
        """Send what is queued, in one command; raise the refusal or duplicate error a
        write was queued with when it applies (the transaction then aborts)."""
        if not self._models:
            return
        models, checks = self._models, self._checks
        self._models, self._checks = [], []
        if self.opens_with_a_read and compat.transaction_opening(self.session):
            # The first command of a transaction carries its read concern, which SecantusDB
            # refuses on a bulkWrite: a unit that only writes opens it with a read.
            checks[0].collection.find_one({"_id": None}, {"_id": 1}, session=self.session)
        try:
            result = client().bulk_write(
                models, session=self.session, ordered=True, verbose_results=True
            )
        except ClientBulkWriteException as exc:
            # Ordered: at most one write failed, and nothing after it ran.
            failed: dict[str, Any] | None = next(iter(exc.details.get("writeErrors") or []), None)
            if failed is not None and failed.get("code") == 11000:
                duplicate = checks[failed["idx"]].duplicate
                raise duplicate or DuplicateKeyError(failed["errmsg"], 11000, failed) from exc
            # A WriteConflict keeps its TransientTransactionError label, so that
            # `with_transaction` runs the unit again.
            if failed is None and isinstance(exc.error, PyMongoError):
                raise exc.error from exc
            raise
        for index, check in enumerate(checks):
            if check.refusal is None:
                continue
            updated = result.update_results[index]
            if updated.matched_count == 0 and updated.upserted_id is None:
                raise check.refusal


def _namespace(collection: Collection) -> str:
    return f"{collection.database.name}.{collection.name}"


def running_batch(session: ClientSession | None) -> Writes | None:
    """The writes queued by the unit running with `session`; None when no unit of
    `transaction()` runs with it (a session of the caller's own, or none)."""
    writes = _running.get()
    return writes if writes is not None and writes.session is session else None


def batch(session: ClientSession) -> Writes:
    """The writes queued by the unit running with `session` (see `Writes`)."""
    writes = running_batch(session)
    assert writes is not None, "batch() outside the unit of its session"
    return writes


# Striped: enough locks that unrelated documents seldom share one.
_TURNS = [threading.Lock() for _ in range(1024)]


def one_at_a_time(hot_document: Any) -> threading.Lock:
    """The lock a process's transactions take before writing `hot_document` (an event's
    seats, a reward's stock), whose key this is. Transactions writing one document conflict,
    and all but one run again (measured: a burst on one event went from 70 to 100
    registrations/s through the API): within a process they take turns instead, so only
    other processes' transactions conflict. The database still decides; this only spares
    it work."""
    return _TURNS[hash(str(hot_document)) % len(_TURNS)]


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


def ensure_indexes() -> None:
    """Create every index the models declare in `meta` (idempotent)."""
    for document in compat.document_classes():
        document.ensure_indexes()


def drop_undeclared_indexes() -> list[str]:
    """Drop the indexes of model collections that no model declares any more: earlier
    releases leave them behind, and each one costs every write. Returns what was dropped,
    as "collection.index"."""
    dropped = []
    for document in compat.document_classes():
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
