"""The private APIs of libraries this project leans on, in one place.

Each function below reaches into a library where it offers no public way to do what we
need. Nothing else in the project touches a library's private names (tests/test_imports.py
holds that), and tests/app/test_compat.py checks every one of them against the installed
version, failing with a message that names the library and what changed. When a library
grows a public API for one of these, replace the function's body and delete its check.

Library by library:
- pymongo: whether a transaction has sent its first command (`_TxnState`).
- mongoengine: a document built from a stored dict without validation (`_from_son`), the
  declared fields of a model (`_fields`), every document class (`_document_registry`), the
  model a queryset reads (`_document`).
- Dramatiq: one run of the Redis broker's maintenance (its Lua dispatch script, whose
  arguments end with `_max_unpack_size()`); a worker's consumer thread that keeps the
  retries waiting in it when Redis drops (`dramatiq.worker.ConsumerThread`).
- Flask (werkzeug's proxies): the request and `g` themselves (`_get_current_object`, which
  Flask's documentation names for this, underscore and all).
- Flask-Limiter: the limits a request is checked against before its view (default,
  application, meta and blueprint limits, `_check_request_limit`), which none of our routes
  has.
- flask-smorest: what a view's decorators note for the OpenAPI document (`_apidoc`), the
  document of the routes a blueprint just added (`_docs`, `_endpoints`), and the callbacks
  that turn those notes into the document (`_prepare_doc_cbks`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import dramatiq.worker
import flask
import mongoengine
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import current_millis, iter_queue, q_name
from dramatiq.errors import BrokerConnectionError
from flask import Flask
from flask_limiter import Limiter
from mongoengine.base import _document_registry
from mongoengine.queryset import QuerySet
from pymongo.client_session import ClientSession
from pymongo.client_session_shared import _TxnState

D = TypeVar("D", bound=mongoengine.Document)

# pymongo ----------------------------------------------------------------------------------


def transaction_opening(session: ClientSession) -> bool:
    """Whether `session`'s transaction has sent no command yet: the first command carries
    `startTransaction`, so a batch of writes that opens a transaction may not be split."""
    return session._transaction.state == _TxnState.STARTING


# mongoengine ------------------------------------------------------------------------------


def from_son(model: type[D], son: dict[str, Any]) -> D:
    """A `model` instance from a stored document as pymongo read it, without validating
    it again (what a queryset does for every document it yields)."""
    return model._from_son(son)


def field_values(document: mongoengine.Document) -> dict[str, Any]:
    """`document`'s value of every field its model declares, by Python name."""
    return {name: getattr(document, name) for name in document._fields}


def db_field(model: type[mongoengine.Document], name: str) -> str:
    """The stored name of `model`'s field `name`."""
    return str(model._fields[name].db_field)


def field_of(model: type[mongoengine.Document], name: str) -> mongoengine.fields.BaseField:
    """`model`'s declared field `name` (its default, choices...)."""
    return model._fields[name]


def document_classes() -> Iterator[type[mongoengine.Document]]:
    """Every concrete document class imported so far."""
    for document in _document_registry.values():
        if issubclass(document, mongoengine.Document) and not document._meta.get("abstract"):
            yield document


def queryset_model(queryset: QuerySet) -> type[mongoengine.Document]:
    """The document class `queryset` reads."""
    return queryset._document


# Dramatiq ---------------------------------------------------------------------------------


def run_broker_maintenance(broker: RedisBroker, queue: str) -> None:
    """Give the unacked messages of `queue` whose worker's heartbeat stopped back to it.

    Dramatiq's dispatch script does this when its maintenance flag (the argument after the
    dead message TTL) is set; `qsize` is the one command of that script that changes
    nothing else."""
    broker.scripts["dispatch"](
        keys=[broker.namespace],
        args=[
            "qsize",
            current_millis(),
            queue,
            broker.broker_id,
            broker.heartbeat_timeout,
            broker.dead_message_ttl,
            1,
            broker._max_unpack_size(),
        ],
    )


class _RetriesKeptConsumerThread(dramatiq.worker.ConsumerThread):
    """A worker's consumer thread that keeps the messages waiting in it for their time (the
    retries taken from a delay queue) when its connection to Redis drops. Dramatiq's
    replaces them with an empty queue, and drops the one whose enqueue failed, while Redis
    still counts them as taken by this living worker: they were never run again."""

    @property
    def delay_queue(self) -> Any:
        return self._kept_delay_queue

    @delay_queue.setter
    def delay_queue(self, queue: Any) -> None:
        # Set once by Dramatiq's __init__; its later reset after a connection error is
        # ignored: the messages waiting are still this worker's in Redis.
        if not hasattr(self, "_kept_delay_queue"):
            self._kept_delay_queue = queue

    def handle_delayed_messages(self) -> None:
        """Dramatiq's, except that a message whose time came but which Redis could not take
        goes back to wait, rather than nowhere."""
        for item in iter_queue(self.delay_queue):
            message = item.message
            if item.priority > current_millis():
                self.delay_queue.put(item)
                self.delay_queue.task_done()
                break
            due = message.copy(queue_name=q_name(message.queue_name))
            del due.options["eta"]
            try:
                self.broker.enqueue(due)
            except Exception:
                self.delay_queue.put(item)
                self.delay_queue.task_done()
                raise
            self.post_process_message(message)
            self.delay_queue.task_done()

    def close(self) -> None:
        """Dramatiq's, except that while Redis is down the messages waiting stay waiting:
        its requeue takes them out of the queue before it fails, and the failure (Redis's
        own exception, which it does not catch) ended the thread."""
        with contextlib.suppress(BrokerConnectionError, redis.exceptions.RedisError):
            if self.consumer:
                waiting = list(iter_queue(self.delay_queue))
                try:
                    self.requeue_messages(item.message for item in waiting)
                except (BrokerConnectionError, redis.exceptions.RedisError):
                    for item in waiting:
                        self.delay_queue.put(item)
                        self.delay_queue.task_done()
                    raise
                self.consumer.close()


def keep_waiting_retries_across_redis_drops() -> None:
    """Make the workers started in this process use `_RetriesKeptConsumerThread`."""
    dramatiq.worker.ConsumerThread = _RetriesKeptConsumerThread  # type: ignore[misc]


# Flask ------------------------------------------------------------------------------------


def current_request() -> flask.Request:
    """The request being handled itself, not Flask's proxy for it: each use of the proxy is
    four Python calls, so a hook that reads the request many times takes it once."""
    return flask.request._get_current_object()  # type: ignore[attr-defined]


def current_g() -> Any:
    """The request's `g` itself (see `current_request`)."""
    return flask.g._get_current_object()


# Flask-Limiter ----------------------------------------------------------------------------


def limits_checked_before_views(limiter: Limiter) -> bool:
    """Whether `limiter` has a limit its before-request check applies: a default, an
    application or a meta limit, a blueprint's, or limits to fall back on in memory. A
    limit decorating a view (`limiter.limit`) is checked by the view's own wrapper."""
    manager = limiter.limit_manager
    return bool(
        manager.default_limits
        or manager.application_limits
        or manager._blueprint_limits
        or limiter._meta_limits
        or limiter._in_memory_fallback_enabled
    )


def skip_limiter_check_before_views(app: Flask, limiter: Limiter) -> None:
    """Take `limiter`'s before-request check out of `app`'s hooks; it resolves and
    evaluates the app-wide limits on every request (about 280 Python calls), nothing when
    there are none. Its after-request hook, which writes the X-RateLimit headers of a
    view's limit, stays."""
    hooks = app.before_request_funcs.get(None, [])
    # A limiter disabled by its settings (RATELIMIT_ENABLED=false) registered no hooks.
    if limiter._check_request_limit in hooks:
        hooks.remove(limiter._check_request_limit)


# flask-smorest ----------------------------------------------------------------------------

View = TypeVar("View", bound=Callable[..., Any])
DocCallback = Callable[..., dict[str, Any]]


def view_doc(view: Any) -> dict[str, Any]:
    """What flask-smorest's decorators (and ours) noted on `view` for the document."""
    return getattr(view, "_apidoc", {})


def note_on_view(view: View, key: str, value: Any) -> View:
    """Note `value` under `key` on `view`, for a documentation callback to read (flask-smorest
    passes the notes to every callback as `doc_info`)."""
    view._apidoc = {**view_doc(view), key: value}  # type: ignore[attr-defined]
    return view


def add_doc_callback(blueprint: Any, callback: DocCallback) -> None:
    """Have `blueprint` call `callback(doc, doc_info, *, spec, method, ...)` for each
    operation it documents, after its own callbacks."""
    blueprint._prepare_doc_cbks.append(callback)


def latest_route_docs(blueprint: Any) -> Iterable[tuple[str, dict[str, Any]]]:
    """(method, notes) of the route `blueprint.add_url_rule` just added."""
    return blueprint._docs[blueprint._endpoints[-1]].items()


class WithoutPaginationHeader:
    """Mixed into our `flask_smorest.Api`: lists page with cursors (`app.web.page_of`), not
    with flask-smorest's pagination, so its header and `PaginationMetadata` schema stay out
    of the document. flask-smorest registers them in a private method, with no setting to
    turn it off."""

    def _register_pagination_header(self) -> None:
        pass
