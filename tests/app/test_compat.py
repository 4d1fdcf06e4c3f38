"""app/compat.py against the installed libraries: one check per private API it uses, each
failing with a message that says which library changed what, so an upgrade that breaks one
is found here rather than in a transaction, a page of results or the OpenAPI document."""

from __future__ import annotations

import ast
import inspect
from importlib.metadata import version
from pathlib import Path
from typing import Any

import dramatiq.worker
import flask
import flask_smorest
import mongoengine
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker
from flask_limiter import Limiter
from mongoengine.base import _document_registry

from app import compat, db
from app.web import Api, Blueprint
from tests.conftest import ROOT


def changed(library: str, what: str) -> str:
    return (
        f"{library} {version(library)} changed {what}: app/compat.py relies on it; find the "
        "public way (or the new private one) and mend the function there"
    )


class CompatProbe(mongoengine.Document):
    name = mongoengine.StringField(db_field="n")
    meta = {"collection": "compat_probe"}


def test_pymongo_says_when_a_transaction_has_sent_nothing(app):
    client = db.client()
    with client.start_session() as session:
        session.start_transaction()
        assert compat.transaction_opening(session), changed("pymongo", "_TxnState.STARTING")
        CompatProbe._get_collection().find_one({}, session=session)
        assert not compat.transaction_opening(session), changed("pymongo", "_TxnState")
        session.abort_transaction()


def test_mongoengine_builds_documents_from_stored_ones():
    probe = compat.from_son(CompatProbe, {"_id": "x", "n": "stored"})
    assert (probe.pk, probe.name) == ("x", "stored"), changed("mongoengine", "_from_son")
    assert compat.field_values(probe) == {"id": "x", "name": "stored"}, changed(
        "mongoengine", "Document._fields"
    )
    assert compat.db_field(CompatProbe, "name") == "n", changed("mongoengine", "_fields")
    assert compat.field_of(CompatProbe, "name").db_field == "n"
    assert compat.queryset_model(CompatProbe.objects) is CompatProbe, changed(
        "mongoengine", "QuerySet._document"
    )
    assert CompatProbe in set(compat.document_classes()), changed(
        "mongoengine", "base._document_registry"
    )
    assert "CompatProbe" in _document_registry


def test_dramatiq_runs_its_maintenance_through_its_dispatch_script(servers):
    broker = RedisBroker(url=servers.redis_url)
    assert "dispatch" in broker.scripts, changed("dramatiq", "RedisBroker.scripts['dispatch']")
    assert isinstance(broker._max_unpack_size(), int), changed(
        "dramatiq", "RedisBroker._max_unpack_size"
    )
    broker.declare_queue("compat-probe")
    try:
        # The script checks its arguments' count and kinds, and raises when they moved.
        compat.run_broker_maintenance(broker, "compat-probe")
    except redis.exceptions.ResponseError as exc:
        pytest.fail(changed("dramatiq", f"the dispatch script's arguments ({exc})"))
    finally:
        broker.close()


def test_flask_smorest_hands_view_notes_to_documentation_callbacks():
    seen: list[dict[str, Any]] = []
    blueprint = Blueprint("compat_probe", __name__, url_prefix="/compat-probe")

    def note(doc: dict[str, Any], doc_info: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        seen.append(doc_info)
        return doc

    compat.add_doc_callback(blueprint, note)

    def probe() -> str:
        return ""

    view = compat.note_on_view(probe, "probe_note", 1)
    assert compat.view_doc(view)["probe_note"] == 1, changed("flask-smorest", "view._apidoc")
    blueprint.add_url_rule("", view_func=view, methods=["GET"])
    assert "get" in dict(compat.latest_route_docs(blueprint)), changed(
        "flask-smorest", "Blueprint._docs / Blueprint._endpoints"
    )
    app = flask.Flask("compat_probe")
    app.config.update(API_TITLE="probe", API_VERSION="1", OPENAPI_VERSION="3.0.3")
    api = Api(app)
    api.register_blueprint(blueprint)
    assert any(info.get("probe_note") == 1 for info in seen), changed(
        "flask-smorest", "Blueprint._prepare_doc_cbks (or the notes it passes as doc_info)"
    )
    assert hasattr(flask_smorest.Api, "_register_pagination_header"), changed(
        "flask-smorest", "Api._register_pagination_header"
    )
    assert "PaginationMetadata" not in str(api.spec.to_dict()), changed(
        "flask-smorest", "how it registers its pagination header"
    )


def test_dramatiq_s_consumer_thread_is_as_compat_mends_it():
    """compat._RetriesKeptConsumerThread replaces three parts of Dramatiq's consumer thread:
    the reset of its waiting messages after a connection error, their requeue on close, and
    the loop that queues them when their time comes."""
    thread = dramatiq.worker.ConsumerThread
    assert "self.delay_queue = PriorityQueue()" in inspect.getsource(thread.run), changed(
        "dramatiq", "ConsumerThread.run's reset of delay_queue after a connection error"
    )
    assert "iter_queue(self.delay_queue)" in inspect.getsource(thread.close), changed(
        "dramatiq", "ConsumerThread.close's requeue of the waiting messages"
    )
    delayed = inspect.getsource(thread.handle_delayed_messages)
    assert "self.broker.enqueue(new_message)" in delayed, changed(
        "dramatiq", "ConsumerThread.handle_delayed_messages"
    )
    assert "_add_consumer" in dir(dramatiq.worker.Worker) and "ConsumerThread(" in (
        inspect.getsource(dramatiq.worker.Worker._add_consumer)
    ), changed("dramatiq", "how a worker makes its consumer threads")


def test_flask_hands_the_request_and_g_behind_its_proxies(app):
    with app.test_request_context("/probe", headers={"X-Probe": "1"}):
        flask.g.probe = "noted"
        request = compat.current_request()
        assert type(request) is app.request_class, changed("Flask", "LocalProxy's object")
        assert request.headers["X-Probe"] == "1" and request.path == "/probe"
        here = compat.current_g()
        assert type(here) is app.app_ctx_globals_class and here.probe == "noted", changed(
            "Flask", "LocalProxy's object"
        )


def test_flask_limiter_checks_a_view_s_limit_in_the_view():
    """The before-request check that compat skips applies only app-wide limits: a view's
    limit holds without it, and a default limit is seen as one the check applies."""
    app = flask.Flask(__name__)
    limiter = Limiter(key_func=lambda: "client", storage_uri="memory://", default_limits=[])
    limiter.init_app(app)
    assert limiter._check_request_limit in app.before_request_funcs[None], changed(
        "Flask-Limiter", "the before-request hook init_app registers"
    )

    @app.get("/limited")
    @limiter.limit("1/minute")
    def limited() -> str:
        return "answered"

    assert not compat.limits_checked_before_views(limiter)
    compat.skip_limiter_check_before_views(app, limiter)
    client = app.test_client()
    assert client.get("/limited").status_code == 200
    assert client.get("/limited").status_code == 429, changed(
        "Flask-Limiter", "where a view's limit is checked (no longer in its wrapper)"
    )

    with_defaults = Limiter(
        key_func=lambda: "client", storage_uri="memory://", default_limits=["5/minute"]
    )
    with_defaults.init_app(flask.Flask(__name__))
    assert compat.limits_checked_before_views(with_defaults), changed(
        "Flask-Limiter", "LimitManager.default_limits"
    )
    limiter.limit("5/minute")(flask.Blueprint("limited", __name__))
    assert compat.limits_checked_before_views(limiter), changed(
        "Flask-Limiter", "LimitManager._blueprint_limits"
    )


def test_the_api_checks_no_limit_before_its_views(app):
    from app.extensions import limiter

    assert limiter._check_request_limit not in app.before_request_funcs[None]


# The private names compat.py stands for; outside it, none is read or written.
PRIVATE_NAMES = {
    "_TxnState",
    "_transaction",
    "_from_son",
    "_fields",
    "_document_registry",
    "_document",
    "_max_unpack_size",
    "_apidoc",
    "_prepare_doc_cbks",
    "_docs",
    "_endpoints",
    "_register_pagination_header",
    "_init_spec",
    "_check_request_limit",
    "_blueprint_limits",
    "_meta_limits",
    "_in_memory_fallback_enabled",
    "_get_current_object",
}


def test_only_compat_touches_private_apis():
    touched = []
    for path in sorted(ROOT.glob("*/**/*.py")):
        relative = path.relative_to(ROOT)
        if relative.parts[0] in {".venv", "var"} or relative == Path("app/compat.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            name = (
                node.attr
                if isinstance(node, ast.Attribute)
                else node.name
                if isinstance(node, ast.alias | ast.FunctionDef)
                else None
            )
            if name in PRIVATE_NAMES and relative != Path("tests/app/test_compat.py"):
                touched.append(f"{relative}:{node.lineno}: {name}")
    assert touched == []
