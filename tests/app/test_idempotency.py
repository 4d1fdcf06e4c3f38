"""The Idempotency-Key contract (docs/api-guide.md), on a view called in request contexts."""

from __future__ import annotations

import hashlib
import json

import pytest
from flask import g, jsonify, request

from app.auth import load_caller
from app.errors import Conflict, ValidationFailed
from app.idempotency import IdempotencyRecord, idempotent
from loyalty.errors import OutOfStock
from tests.support import make_person


@pytest.fixture
def counting_view():
    calls = []

    @idempotent
    def view():
        calls.append(1)
        if request.get_json().get("fail"):
            raise OutOfStock()
        response = jsonify(call=len(calls))
        response.status_code = 201
        return response

    return view, calls


def call(app, view, person, key, body):
    with app.test_request_context(
        "/api/v1/things", method="POST", json=body, headers={"Idempotency-Key": key}
    ):
        g.caller = load_caller(person.id)
        return view()


def test_replay_returns_first_response_and_runs_once(app, counting_view):
    view, calls = counting_view
    person = make_person()
    first = call(app, view, person, "k1", {"a": 1})
    for _ in range(5):
        again = call(app, view, person, "k1", {"a": 1})
        assert again.status_code == first.status_code == 201
        assert again.get_json() == first.get_json() == {"call": 1}
    assert len(calls) == 1


def test_key_with_other_body_is_refused(app, counting_view):
    view, calls = counting_view
    person = make_person()
    call(app, view, person, "k1", {"a": 1})
    with pytest.raises(ValidationFailed) as refused:
        call(app, view, person, "k1", {"a": 2})
    assert refused.value.error == "idempotency_key_reused"


def test_refusal_is_replayed_too(app, counting_view):
    view, calls = counting_view
    person = make_person()
    call(app, view, person, "k1", {"a": 1})
    with pytest.raises(Conflict):
        call(app, view, person, "k2", {"fail": 1})
    replay = call(app, view, person, "k2", {"fail": 1})
    assert replay.status_code == 409 and replay.get_json()["error"] == "out_of_stock"
    assert len(calls) == 2


def test_keys_are_scoped_to_the_caller(app, counting_view):
    view, calls = counting_view
    ann, bob = make_person(), make_person()
    call(app, view, ann, "same", {"a": 1})
    call(app, view, bob, "same", {"a": 1})
    assert len(calls) == 2


def test_request_in_progress(app, counting_view):
    view, _ = counting_view
    person = make_person()
    IdempotencyRecord(scope=f"{person.id}:POST:/api/v1/things", key="busy", request_hash="x").save()
    with pytest.raises(ValidationFailed):  # another body hash
        call(app, view, person, "busy", {"a": 1})
    IdempotencyRecord.objects(key="busy").update(
        set__request_hash=hashlib.sha256(
            json.dumps({"a": 1}, sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()
    )
    with pytest.raises(Conflict) as busy:
        call(app, view, person, "busy", {"a": 1})
    assert busy.value.error == "request_in_progress"
