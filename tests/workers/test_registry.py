"""Handler names: declared with each handler, stored in markers and messages, and carried
over by the migration when they change."""

from __future__ import annotations

import importlib

import pytest

from accounts.domain_events import VEHICLE_VERIFIED, VehicleVerified
from app import handlers as registry
from app.db import transaction
from app.handlers import HandledEvent
from app.outbox import DomainEvent, OutboxEvent, record_event
from tests.support import make_person
from tests.workers.handlers import Probe, probe
from workers.models import DeadLetter

migration = importlib.import_module("migrations.2026_12_01_stable_handler_names")


@registry.handles(probe("test.named"), name="tests.named")
def named_handler(event: DomainEvent, session) -> None:
    """Does nothing: only its marker matters."""


def emit(type_: str, **payload) -> DomainEvent:
    event_id = transaction(
        lambda session: record_event(session, probe(type_), Probe(**payload), subject_id="1")
    )
    return DomainEvent.from_document(OutboxEvent._get_collection().find_one({"_id": event_id}))


def test_every_installed_handler_declares_a_domain_verb_name(app):
    registry.load_handler_modules()
    domains = {"loyalty", "notifications", "events", "community", "partners"}
    installed = [
        handler for handler in registry.all_handlers() if handler.name.split(".")[0] in domains
    ]
    assert len(installed) == 25  # loyalty.start_bulk_credit: an admin's bulk credit
    for handler in installed:
        assert registry.NAME.match(handler.name)
        assert handler.name != f"{handler.func.__module__}.{handler.func.__qualname__}"
        assert registry.handler_named(handler.name) is handler


def test_the_marker_names_the_handler_not_its_module(app):
    event = emit("test.named")
    handler = registry.handler_named("tests.named")
    assert registry.run_handler(handler, event) is True
    assert HandledEvent.objects.get(event_id=event.id).pk == f"{event.id}:tests.named"
    assert registry.run_handler(handler, event) is False


def test_a_name_is_refused_when_taken_by_another_function_or_not_domain_verb():
    def impostor(event, session) -> None: ...

    with pytest.raises(ValueError, match="taken"):
        registry.handles(probe("test.named"), name="tests.named")(impostor)
    with pytest.raises(ValueError, match="domain.verb"):
        registry.handles(probe("test.named"), name="tests/named")
    with pytest.raises(TypeError, match="declared EventType"):
        registry.handles("test.named", name="tests.other")  # type: ignore[arg-type]
    # The same function registered again (its module imported twice) keeps its name.
    registry.handles(probe("test.named"), name="tests.named")(named_handler)
    assert registry.handlers_for("test.named") == [registry.handler_named("tests.named")]


def test_the_migration_carries_markers_over_so_a_redelivery_changes_nothing(app):
    registry.load_handler_modules()
    owner = make_person("SZ")
    event_id = transaction(
        lambda session: record_event(
            session, VEHICLE_VERIFIED, VehicleVerified(owner.id, "VIN", "#1", True), subject_id="1"
        )
    )
    event = DomainEvent.from_document(OutboxEvent._get_collection().find_one({"_id": event_id}))
    # Handled by the previous release, under the handler's Python path.
    HandledEvent._get_collection().insert_one(
        HandledEvent.document(event.id, "loyalty.tasks.welcome_points")
    )
    letter = DeadLetter(
        message_id="m1",
        queue_name="domain_events",
        actor_name="outbox.handle",
        args=["events.tasks.notify_promoted", [event.to_message()]],
    ).save()

    assert migration.migrate() == {"markers_copied": 1, "dead_letters_renamed": 1}
    assert migration.migrate() == {"markers_copied": 0, "dead_letters_renamed": 0}

    welcome = registry.handler_named("loyalty.welcome_points")
    assert registry.run_handler(welcome, event) is False  # no points paid twice
    assert letter.reload().args[0] == "events.notify_promoted"
    assert set(migration.RENAMED.values()) <= {handler.name for handler in registry.all_handlers()}
