"""Domain events and the transactional outbox.

Each domain declares the events it emits, in its `domain_events.py` (named by its entry in
`app/domains.py`): a frozen dataclass for the payload and `declare(name, Payload, ...)`.
A service that changes state calls `record_event(session, EVENT, Payload(...), ...)` inside
the same `app.db.transaction` as the change, so the event is durable exactly when the change
is; the payload is checked against its declaration there, field by field. Nothing reaches
Redis from the request: the dispatcher (`workers/dispatcher.py`) sees each event once its
transaction commits and moves it to Dramatiq; while Redis is down, events wait in the
outbox. A handler registered for an `EventType` receives the payload as its dataclass,
read from the stored dict by `EventType.load`, which also reads the shapes of earlier
releases (fields added since take their defaults; fields dropped since are ignored).
`docs/events.md` is written from the declarations (`make events-doc`).
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any, Generic, TypeVar

from bson import ObjectId
from mongoengine import DateTimeField, DictField, Document, IntField, StringField
from pymongo.client_session import ClientSession

from app.clock import utcnow
from app.db import running_batch


class OutboxEvent(Document):
    id = StringField(primary_key=True)
    type = StringField(required=True)
    version = IntField(required=True, default=1)
    actor_id = StringField()
    subject_type = StringField(required=True)
    subject_id = StringField(required=True)
    city_code = StringField()
    payload = DictField()
    occurred_at = DateTimeField(required=True)

    meta = {
        "collection": "outbox",
        # Written once and never updated: the dispatcher follows the collection's change
        # stream, so an event needs no status. No secondary index either: ids are
        # ordered by time (`id_floor`), so `_id` ranges serve the catch-up, the sweep
        # and the lag figures, and each index would cost every event an index write
        # (on the embedded server, one index made inserts 2.5x slower). Events are
        # kept a week for audit and catch-up, then the dispatcher sweeps them.
        "indexes": [],
    }


P = TypeVar("P")


@dataclass(frozen=True)
class NoPayload:
    """The payload of an event whose subject says it all (`user.erased`)."""


class PayloadMismatch(TypeError):
    """A payload that is not what its event type declares (a programming error)."""


@dataclass(frozen=True)
class EventType(Generic[P]):
    """A kind of domain event: its name (`noun.past_participle`), its payload's dataclass,
    the kind of thing its subject is, and what the fact means (for docs/events.md)."""

    name: str
    payload: type[P]
    subject_type: str
    about: str
    version: int = 1

    @property
    def emitter(self) -> str:
        """The domain that declares, and so emits, it."""
        return self.payload.__module__.split(".")[0]

    def dump(self, payload: P) -> dict[str, Any]:
        """The stored form of `payload`, checked against the declaration."""
        if type(payload) is not self.payload:
            raise PayloadMismatch(
                f"{self.name} carries {self.payload.__name__}, not {type(payload).__name__}"
            )
        plan = _scalar_fields(typing.cast(type, self.payload))
        if plan is None:
            _check(payload, self.payload, self.name)
            return asdict(payload)  # type: ignore[call-overload]
        # What `asdict` makes of scalars (each copies as itself), checked field by field.
        stored = {}
        for name, hint, kinds in plan:
            value = getattr(payload, name)
            if type(value) not in kinds:
                _check(value, hint, f"{self.name}.{name}")
            stored[name] = value
        return stored

    def load(self, stored: Mapping[str, Any]) -> P:
        """The payload of a stored or queued event, of this release's shape or an earlier
        one's."""
        return _load(self.payload, stored, self.name)


_declared: dict[str, EventType[Any]] = {}


def declare(name: str, payload: type[P], *, subject_type: str, about: str) -> EventType[P]:
    """Declare an event type (once per name; a module imported again declares it again)."""
    if not dataclasses.is_dataclass(payload):
        raise TypeError(f"{name}: the payload must be a dataclass")
    declared: EventType[P] = EventType(name, payload, subject_type, about)
    known = _declared.get(name)
    if known is not None and (known.payload.__qualname__, known.emitter) != (
        payload.__qualname__,
        declared.emitter,
    ):
        raise ValueError(f"{name} is declared twice ({known.payload} and {payload})")
    _declared[name] = declared
    return declared


def declared_types() -> list[EventType[Any]]:
    """Every event type declared by the modules imported so far, by name."""
    return [_declared[name] for name in sorted(_declared)]


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """A payload dataclass's field types, evaluated once: `get_type_hints` evaluates the
    annotations' text on every call, and checking a registration's payload took 3 % of
    its CPU that way."""
    return typing.get_type_hints(cls)


# The exact types of the values each scalar hint takes without a closer look (a bool is
# no int to a payload; another str or int subclass is looked at by `_check`).
_SCALARS: dict[Any, tuple[type, ...]] = {
    str: (str,),
    int: (int,),
    float: (int, float),
    bool: (bool,),
    type(None): (type(None),),
}


@functools.cache
def _scalar_fields(cls: type) -> tuple[tuple[str, Any, frozenset[type]], ...] | None:
    """For a payload dataclass whose fields are all scalars (str, int, float, bool, None
    and unions of them), as most are: each field's name, type and the exact types of the
    values that pass; None for another. Checking and storing such a payload field by field
    takes a tenth of the Python calls `_check` and `asdict` take."""
    hints = _hints(cls)
    plan = []
    for spec in dataclasses.fields(cls):
        hint = hints[spec.name]
        union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        options = typing.get_args(hint) if union else (hint,)
        if not all(option in _SCALARS for option in options):
            return None
        kinds = frozenset(kind for option in options for kind in _SCALARS[option])
        plan.append((spec.name, hint, kinds))
    return tuple(plan)


def _check(value: Any, hint: Any, where: str) -> None:
    """Raise PayloadMismatch unless `value` is of `hint` (the types payloads use: str, int,
    bool, float, None, lists, dicts, unions, Any and nested dataclasses)."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return
    if origin in (typing.Union, types.UnionType):
        # The option of the value's own kind, so a mismatch deep inside it says where.
        kinds = [option for option in typing.get_args(hint) if _of_kind(value, option)]
        if not kinds:
            raise PayloadMismatch(f"{where} is {value!r}, not {hint}")
        _check(value, kinds[0], where)
        return
    if hint is type(None):
        ok = value is None
    elif dataclasses.is_dataclass(hint):
        ok = type(value) is hint
        if ok:
            for name, field_hint in _hints(hint).items():  # type: ignore[arg-type]
                _check(getattr(value, name), field_hint, f"{where}.{name}")
    elif origin is list:
        ok = isinstance(value, list)
        if ok:
            [item_hint] = typing.get_args(hint)
            for index, item in enumerate(value):
                _check(item, item_hint, f"{where}[{index}]")
    elif origin is dict:
        ok = isinstance(value, dict)
        if ok:
            key_hint, item_hint = typing.get_args(hint)
            for key, item in value.items():
                _check(key, key_hint, f"{where} key")
                _check(item, item_hint, f"{where}[{key!r}]")
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    else:
        ok = isinstance(value, hint)
    if not ok:
        raise PayloadMismatch(f"{where} is {value!r}, not {getattr(hint, '__name__', hint)}")


def _of_kind(value: Any, hint: Any) -> bool:
    """Whether `value` is of `hint`'s outer kind (a list for `list[str]`...)."""
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    kind = typing.get_origin(hint) or hint
    if kind in (int, float):
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, kind)


def _load(cls: type[P], stored: Mapping[str, Any], where: str) -> P:
    values = {}
    hints = _hints(typing.cast(type, cls))
    for spec in dataclasses.fields(cls):  # type: ignore[arg-type]
        if spec.name in stored:
            values[spec.name] = _load_value(hints[spec.name], stored[spec.name], where)
        elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            raise PayloadMismatch(f"{where}: the stored payload has no {spec.name!r}")
    return cls(**values)


def _load_value(hint: Any, value: Any, where: str) -> Any:
    options = (
        typing.get_args(hint)
        if typing.get_origin(hint) in (typing.Union, types.UnionType)
        else (hint,)
    )
    for option in options:
        if dataclasses.is_dataclass(option) and isinstance(value, Mapping):
            return _load(option, value, where)  # type: ignore[arg-type]
    return value


@dataclass(frozen=True)
class DomainEvent(Generic[P]):
    """An immutable fact. It travels whole in the Dramatiq message: unlike a document it
    never changes, so handlers need not reload it. On the wire its payload is the stored
    dict; a handler receives it as its event type's dataclass (`typed`)."""

    id: str
    type: str
    subject_type: str
    subject_id: str
    occurred_at: str
    version: int = 1
    actor_id: str | None = None
    city_code: str | None = None
    payload: P = field(default_factory=dict)  # type: ignore[assignment]

    def typed(self, event_type: EventType[Any]) -> DomainEvent[Any]:
        """This event with its payload read as `event_type` declares it."""
        if self.type != event_type.name:
            raise PayloadMismatch(f"a {self.type} event is not {event_type.name}")
        if isinstance(self.payload, event_type.payload):
            return self
        return replace(self, payload=event_type.load(self.payload))  # type: ignore[arg-type]

    def to_message(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_message(cls, data: dict[str, Any]) -> DomainEvent[Any]:
        return cls(**data)

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> DomainEvent[Any]:
        occurred_at: datetime = doc["occurred_at"]
        return cls(
            id=doc["_id"],
            type=doc["type"],
            version=doc.get("version", 1),
            actor_id=doc.get("actor_id"),
            subject_type=doc["subject_type"],
            subject_id=doc["subject_id"],
            city_code=doc.get("city_code"),
            payload=doc.get("payload") or {},  # type: ignore[arg-type]
            occurred_at=occurred_at.isoformat(),
        )


def id_floor(moment: datetime) -> str:
    """The smallest event id of `moment`'s second. Event ids are ObjectIds, which start
    with their creation time, so ids compare as their times do (to the second)."""
    return str(ObjectId.from_datetime(moment))


def record_event(
    session: ClientSession | None,
    event_type: EventType[P],
    payload: P,
    *,
    subject_id: Any,
    actor_id: Any = None,
    city_code: str | None = None,
) -> str:
    """Store a domain event in the outbox, in the caller's transaction. Returns its id.
    Raises PayloadMismatch when `payload` is not what `event_type` declares.

    Inside a unit of `app.db.transaction` the insert joins the unit's batch of writes (no
    unit reads the outbox), so it costs no round trip of its own."""
    event_id = str(ObjectId())
    document = {
        "_id": event_id,
        "type": event_type.name,
        "version": event_type.version,
        "actor_id": str(actor_id) if actor_id is not None else None,
        "subject_type": event_type.subject_type,
        "subject_id": str(subject_id),
        "city_code": city_code,
        "payload": event_type.dump(payload),
        "occurred_at": utcnow(),
    }
    outbox = OutboxEvent._get_collection()
    if (writes := running_batch(session)) is not None:
        writes.insert(outbox, document)
    else:
        outbox.insert_one(document, session=session)
    return event_id
