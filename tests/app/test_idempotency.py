"""The Idempotency-Key contract (docs/api-guide.md), on a view called in request contexts
whose service makes its change in an answering transaction, as the real ones do."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import flask
import pytest
from bson import ObjectId
from flask import g
from marshmallow import fields

from app import db
from app.auth import load_caller
from app.clock import utcnow
from app.errors import Conflict, RequestInProgress, ValidationFailed
from app.idempotency import CLAIM_ABANDONED_AFTER, IdempotencyRecord, idempotent
from app.web import Blueprint, Schema
from loyalty.errors import OutOfStock
from tests.support import count_commands, make_person, wait_until

blp = Blueprint("things", __name__)


class ThingSchema(Schema):
    id = fields.String(attribute="_id")
    call = fields.Integer()


def things():
    return db.database()["things"]


@pytest.fixture(params=[False, True], ids=["claim", "changes-in-transaction"])
def counting_view(request):
    """A view making one `things` document per effective call; `{"fail": 1}` is refused,
    `{"crash": 1}` fails with a bug after queueing its write. Both ways of `idempotent`:
    with a service declared `changes_in_one_transaction`, a replay runs the unit, which
    changes nothing; with a claim, a replay waits for the first request and answers its response."""
    calls = []
    meeting: list[threading.Barrier | threading.Event] = []

    def change(body):
        def unit(session):
            calls.append(threading.current_thread())
            things().find_one({"_id": 0}, session=session)  # a unit reads before it writes
            if meeting and calls.count(threading.current_thread()) == 1:
                meeting[0].wait(10)
            if body.get("fail"):
                raise OutOfStock()
            thing = {"_id": ObjectId(), "call": len(calls)}
            db.batch(session).insert(things(), thing)
            if body.get("crash"):
                raise RuntimeError("a bug")
            return thing

        return db.transaction(unit, answers_request=True)

    service = db.changes_in_one_transaction(change) if request.param else None

    @idempotent(service=service)
    @blp.response(201, ThingSchema)
    def view():
        return (service or change)(flask.request.get_json())

    view.calls = calls
    view.meeting = meeting
    view.replays_run = request.param
    return view


def call(app, view, person, key, body):
    with app.test_request_context(
        "/api/v1/things", method="POST", json=body, headers={"Idempotency-Key": key}
    ):
        g.caller = load_caller(person.id)
        return view()


def test_replay_returns_first_response_and_runs_once(app, counting_view):
    person = make_person()
    first = call(app, counting_view, person, "k1", {"a": 1})
    for _ in range(5):
        again = call(app, counting_view, person, "k1", {"a": 1})
        assert again.status_code == first.status_code == 201
        assert again.get_data() == first.get_data()
        assert again.headers["Idempotent-Replayed"] == "true"
    assert first.get_json()["call"] == 1
    assert len(counting_view.calls) == (6 if counting_view.replays_run else 1)
    assert things().count_documents({}) == 1


def test_the_record_is_written_with_the_change_in_one_command(app, counting_view):
    person = make_person()
    with count_commands() as commands:
        call(app, counting_view, person, "k1", {"a": 1})
    assert commands.names == [
        "find users",  # the caller, as authentication loads it
        *([] if counting_view.replays_run else ["insert idempotency_keys"]),
        "find things",
        "bulkWrite admin",
        "commitTransaction admin",
    ]
    assert IdempotencyRecord.objects.get(key="k1").status_code == 201


def test_key_with_other_body_is_refused(app, counting_view):
    person = make_person()
    call(app, counting_view, person, "k1", {"a": 1})
    with pytest.raises(ValidationFailed) as refused:
        call(app, counting_view, person, "k1", {"a": 2})
    assert refused.value.error == "idempotency_key_reused"
    assert things().count_documents({}) == 1


def test_refusal_is_replayed_too(app, counting_view):
    person = make_person()
    call(app, counting_view, person, "k1", {"a": 1})
    with pytest.raises(Conflict):
        call(app, counting_view, person, "k2", {"fail": 1})
    replay = call(app, counting_view, person, "k2", {"fail": 1})
    assert replay.status_code == 409 and replay.get_json()["error"] == "out_of_stock"
    assert len(counting_view.calls) == (3 if counting_view.replays_run else 2)


def test_keys_are_scoped_to_the_caller(app, counting_view):
    ann, bob = make_person(), make_person()
    call(app, counting_view, ann, "same", {"a": 1})
    call(app, counting_view, bob, "same", {"a": 1})
    assert len(counting_view.calls) == 2


def test_a_failed_request_leaves_nothing_and_frees_its_key(app, counting_view):
    person = make_person()
    with pytest.raises(RuntimeError):
        call(app, counting_view, person, "k1", {"crash": 1})
    assert IdempotencyRecord.objects.count() == 0 and things().count_documents({}) == 0
    retried = call(app, counting_view, person, "k1", {"a": 1})
    assert retried.status_code == 201


def test_concurrent_requests_with_one_key_take_effect_once(app, counting_view):
    person = make_person()
    with ThreadPoolExecutor(2) as pool:
        if counting_view.replays_run:
            # Both are inside their transactions before either commits.
            counting_view.meeting.append(threading.Barrier(2))
            futures = [
                pool.submit(call, app, counting_view, person, "k1", {"a": 1}) for _ in range(2)
            ]
        else:
            # The second finds the first's claim and waits for it to finish.
            go = threading.Event()
            counting_view.meeting.append(go)
            first = pool.submit(call, app, counting_view, person, "k1", {"a": 1})
            wait_until(lambda: IdempotencyRecord.objects(key="k1").count(), message="a claim")
            with count_commands() as commands:
                second = pool.submit(call, app, counting_view, person, "k1", {"a": 1})
                wait_until(lambda: "find idempotency_keys" in commands.names, message="a wait")
            go.set()
            futures = [first, second]
        answers = [future.result() for future in futures]
    assert [answer.status_code for answer in answers] == [201, 201]
    assert answers[0].get_data() == answers[1].get_data()
    assert sorted(answer.headers.get("Idempotent-Replayed", "") for answer in answers) == [
        "",
        "true",
    ]
    assert things().count_documents({}) == 1


def test_a_request_still_running_past_the_wait_is_409(app, monkeypatch):
    person = make_person()
    go = threading.Event()

    @idempotent
    @blp.response(201, ThingSchema)
    def slow():
        go.wait(10)
        return {"_id": "one", "call": 1}

    monkeypatch.setattr("app.idempotency.CLAIM_WAIT_SECONDS", 0.2)
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(call, app, slow, person, "k1", {"a": 1})
        wait_until(lambda: IdempotencyRecord.objects(key="k1").count(), message="a claim")
        with pytest.raises(RequestInProgress):
            call(app, slow, person, "k1", {"a": 1})
        with pytest.raises(ValidationFailed):  # another body: refused at once
            call(app, slow, person, "k1", {"a": 2})
        go.set()
        assert first.result().status_code == 201
    assert call(app, slow, person, "k1", {"a": 1}).headers["Idempotent-Replayed"] == "true"


def test_a_claim_its_dead_request_left_unfinished_is_taken_over(app, counting_view):
    person = make_person()
    IdempotencyRecord(
        scope=f"{person.id}:POST:/api/v1/things",
        key="old",
        request_hash="x",
        body=None,
        created_at=utcnow() - CLAIM_ABANDONED_AFTER - timedelta(seconds=1),
    ).save()
    assert call(app, counting_view, person, "old", {"a": 1}).status_code == 201
    assert IdempotencyRecord.objects.get(key="old").body is not None


def test_a_service_declared_in_one_transaction_runs_no_other(app):
    """The declaration lives on the service once; a view cannot name an undeclared one, and
    the declared one cannot change anything outside its answering transaction."""

    def two_transactions():
        db.transaction(lambda session: None)
        return db.transaction(lambda session: {}, answers_request=True)

    declared = db.changes_in_one_transaction(two_transactions)
    with pytest.raises(TypeError, match="runs another transaction"):
        declared()
    answering_twice = db.changes_in_one_transaction(
        lambda: [db.transaction(lambda session: {}, answers_request=True) for _ in range(2)]
    )
    with pytest.raises(TypeError, match="runs another transaction"):
        answering_twice()
    with pytest.raises(TypeError, match="not declared"):
        idempotent(service=two_transactions)(blp.response(201, ThingSchema)(lambda: {}))
