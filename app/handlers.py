"""Domain event handlers register by type here, in one place, each under a stable name:

    @handles(VEHICLE_VERIFIED, name="loyalty.welcome_points")
    def welcome_points(event: DomainEvent[VehicleVerified], session: ClientSession) -> None:

The event type is the one its emitter declares (`<domain>/domain_events.py`); the handler
receives the payload as that declaration's dataclass.

The name (`domain.verb`) is stored in every marker ("<event id>:<name>"), travels in every
queued message and dead letter, so it is declared with the handler and never follows the
file layout: moving or renaming the function changes nothing stored. Renaming a handler
itself needs a dated migration that carries its markers over (see `migrations/`).

A transactional handler runs inside one MongoDB transaction together with the marker that
says it handled this event, so a redelivered event changes nothing twice.
"""

from __future__ import annotations

import importlib
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mongoengine import DateTimeField, Document, StringField
from pymongo.client_session import ClientSession
from pymongo.errors import DuplicateKeyError

from app import domains
from app.clock import utcnow
from app.db import transaction
from app.outbox import DomainEvent, EventType


class HandledEvent(Document):
    """Written in the same transaction as the handler's own changes: a redelivered
    event finds it and changes nothing twice."""

    # "<event id>:<handler>": the primary key is the uniqueness check, and since event
    # ids are ordered by time, an `_id` range is how the dispatcher sweeps old markers.
    # So a marker costs no secondary index (a TTL index made marker writes twice as slow
    # on the embedded server).
    id = StringField(primary_key=True)
    event_id = StringField(required=True)
    handler = StringField(required=True)
    handled_at = DateTimeField(default=utcnow)

    meta = {"collection": "handled_events", "indexes": []}

    @classmethod
    def key(cls, event_id: str, handler: str) -> str:
        return f"{event_id}:{handler}"

    @classmethod
    def document(cls, event_id: str, handler: str) -> dict:
        return (
            cls(id=cls.key(event_id, handler), event_id=event_id, handler=handler)
            .to_mongo()
            .to_dict()
        )


# A transactional handler gets the transaction's ClientSession, another one None.
HandlerFunc = Callable[[DomainEvent[Any], Any], None]


@dataclass(frozen=True)
class Handler:
    name: str
    event: EventType[Any]
    func: HandlerFunc
    transactional: bool
    max_retries: int
    min_backoff_ms: int
    max_backoff_ms: int
    batch_size: int

    @property
    def event_type(self) -> str:
        return self.event.name

    def apply(self, event: DomainEvent[Any], session: ClientSession | None) -> None:
        """Run the handler on `event`, its payload read as the event type declares it."""
        self.func(event.typed(self.event), session)

    @property
    def message_options(self) -> dict[str, Any]:
        return {
            "max_retries": self.max_retries,
            "min_backoff": self.min_backoff_ms,
            "max_backoff": self.max_backoff_ms,
        }


_by_type: dict[str, list[Handler]] = defaultdict(list)
_by_name: dict[str, Handler] = {}


# What a handler name looks like: `domain.verb`, lower case.
NAME = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")


def handles(
    event_type: EventType[Any],
    *,
    name: str,
    transactional: bool = True,
    max_retries: int = 10,
    min_backoff_ms: int = 1_000,
    max_backoff_ms: int = 600_000,
    batch_size: int = 50,
) -> Callable[[HandlerFunc], HandlerFunc]:
    """Register `func` for `event_type` under `name`. A non-transactional handler (one that
    talks to the outside world) receives `session=None` and must be idempotent by itself.

    A transactional handler gets up to `batch_size` events the dispatcher sent together,
    in one message and one transaction (lower it for handlers that take long per event);
    a non-transactional one always gets one event per message.
    """
    if not NAME.match(name):
        raise ValueError(f"handler name {name!r} is not `domain.verb`")
    if not isinstance(event_type, EventType):
        raise TypeError(f"{name}: handle a declared EventType, not {event_type!r}")

    def register(func: HandlerFunc) -> HandlerFunc:
        known = _by_name.get(name)
        if known is not None and _origin(known.func) != _origin(func):
            # Two handlers under one name would share markers: one would skip the other's
            # events as already handled.
            raise ValueError(f"handler name {name!r} is taken by {_origin(known.func)}")
        handler = Handler(
            name,
            event_type,
            func,
            transactional,
            max_retries,
            min_backoff_ms,
            max_backoff_ms,
            batch_size if transactional else 1,
        )
        if known is None:
            _by_type[event_type.name].append(handler)
        _by_name[name] = handler
        return func

    return register


def _origin(func: HandlerFunc) -> str:
    # The same function imported again (a module reloaded) may register its name again.
    return f"{func.__module__}.{func.__qualname__}"


def all_handlers() -> list[Handler]:
    return list(_by_name.values())


def handlers_for(event_type: str) -> list[Handler]:
    return list(_by_type.get(event_type, ()))


def handler_named(name: str) -> Handler | None:
    return _by_name.get(name)


def load_handler_modules(extra: tuple[str, ...] = ()) -> None:
    """Import the installed domains' `tasks` modules (app/domains.py), which register their
    handlers and declare their actors, then the `extra` ones."""
    for module in (*domains.task_modules(), *extra):
        importlib.import_module(module)


def run_handler(handler: Handler, event: DomainEvent) -> bool:
    """Apply `handler` to `event` once. Returns False when it had already been applied."""
    markers = HandledEvent._get_collection()
    marker = HandledEvent.document(event.id, handler.name)
    key = {"_id": marker["_id"]}

    if not handler.transactional:
        if markers.find_one(key, {"_id": 1}):
            return False
        handler.apply(event, None)
        markers.update_one(key, {"$setOnInsert": marker}, upsert=True)
        return True

    def unit(session: ClientSession) -> None:
        handler.apply(event, session)
        # The marker goes last, unchecked: a redelivery fails on its primary key and the
        # whole unit aborts with it. Written first, it would hold the key from the start,
        # and a worker killed mid-handler would leave a transaction that blocks the
        # redelivery until the server gives up on it (a minute).
        markers.insert_one(dict(marker), session=session)

    try:
        transaction(unit)
    except DuplicateKeyError:
        if markers.find_one(key, {"_id": 1}):
            return False
        raise  # the handler's own unique index refused something: a real failure
    return True


def run_batch(handler: Handler, events: list[DomainEvent]) -> None:
    """Apply a transactional `handler` to several events in one transaction, all or
    nothing: a commit costs about as much as the rest, so this is several times cheaper
    than one transaction each. Raises when any event fails or had already been handled;
    the caller then handles them one by one."""

    def unit(session: ClientSession) -> None:
        for event in events:
            handler.apply(event, session)
        HandledEvent._get_collection().insert_many(
            [HandledEvent.document(event.id, handler.name) for event in events], session=session
        )

    transaction(unit)
