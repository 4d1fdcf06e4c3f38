"""Dramatiq worker entry point: `dramatiq workers.main`.

The broker is configured by `create_app` before any actor module is imported; every
message then runs inside the Flask application context.
"""

from __future__ import annotations

from typing import cast

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from app import create_app
from app import handlers as registry
from app.broker import add_worker_middleware

app = create_app(serves_http=False)
# create_app configured the Redis broker.
add_worker_middleware(cast(RedisBroker, dramatiq.get_broker()), app)

import workers.tasks  # noqa: E402,F401 - registers the backbone's actors on the broker

registry.load_handler_modules(app.config["EXTRA_HANDLER_MODULES"])
