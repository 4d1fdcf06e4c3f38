"""Application factory: extensions are wired in one fixed order, configuration is validated
before anything connects."""

from __future__ import annotations

from collections.abc import Callable
from inspect import iscoroutinefunction
from typing import Any

from flask import Blueprint, Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from swagger_ui_bundle import swagger_ui_path
from werkzeug.middleware.proxy_fix import ProxyFix

from app import compat, contract, domains
from app import config as app_config
from app.request_bodies import JSONProvider

# Swagger UI's files come with the `swagger-ui-bundle` package and are served by the app,
# so `/api/v1/docs` works offline and loads nothing from a third party.
SWAGGER_UI_URL = "/api/v1/docs/swagger-ui/"


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions (the consoles' sign-in), opened empty without a word
    when a request sends no cookie at all, as every API call does (bearer tokens): Flask
    builds its signing serializer first, about 100 Python calls, on every request."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if app.secret_key and "HTTP_COOKIE" not in request.environ:
            return self.session_class()
        return super().open_session(app, request)


class App(Flask):
    """Flask, deciding once per function whether a hook or view is a coroutine function,
    and opening no session for a request without cookies (`CookieSessions`).

    Flask's `ensure_sync` (its documented override point for running async code) asks
    `inspect.iscoroutinefunction` for every hook, view and error handler each time it calls
    one, about 17 times and 150 Python calls per hot request; the answer never changes.
    """

    # More functions than a process has routes and hooks: a callable made anew for each
    # request is then asked afresh rather than kept forever.
    SYNC_FUNCTIONS_KEPT = 4096
    session_interface = CookieSessions()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sync_functions: set[Any] = set()

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        # A method is known by its function: a view class's methods are bound to a new
        # instance on each request, which the set must not keep alive.
        known = getattr(func, "__func__", func)
        if known in self._sync_functions:
            return func
        if iscoroutinefunction(func):
            return self.async_to_sync(func)
        if len(self._sync_functions) < self.SYNC_FUNCTIONS_KEPT:
            self._sync_functions.add(known)
        return func


def create_app(override: dict[str, Any] | None = None, *, serves_http: bool = True) -> Flask:
    """The application: its settings, extensions, database and broker, the domains' commands
    and metrics. A process that serves HTTP (the API, `flask` commands) also gets the routes,
    the OpenAPI document and the consoles; the worker, dispatcher and scheduler pass
    `serves_http=False` and start without them (building the document was four fifths of a
    process's start-up CPU)."""
    settings = app_config.load()
    settings.update(override or {})
    app_config.validate(settings)

    app = App(__name__)
    app.json = JSONProvider(app)
    app.config.update(settings)
    app.config.update(
        API_TITLE="Owner community and loyalty API",
        API_VERSION="v1",
        OPENAPI_VERSION="3.1.0",
        OPENAPI_URL_PREFIX="/api/v1",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        OPENAPI_SWAGGER_UI_URL=SWAGGER_UI_URL,
        # Swagger UI would send the document to an outside validator (and show its badge).
        OPENAPI_SWAGGER_UI_CONFIG={"validatorUrl": None},
        API_SPEC_OPTIONS={
            "info": {"description": contract.DESCRIPTION},
            "servers": contract.SERVERS,
        },
        JWT_SECRET_KEY=settings["SECRET_KEY"],
        JWT_TOKEN_LOCATION=["headers"],
        RATELIMIT_STORAGE_URI=settings["REDIS_URL"],
        RATELIMIT_HEADERS_ENABLED=True,
        # A Redis outage must not lock everyone out of login: limits pause, requests pass.
        RATELIMIT_SWALLOW_ERRORS=True,
        RATELIMIT_KEY_PREFIX="ratelimit",
        # A Redis that hangs rather than refuses must not hold requests either.
        RATELIMIT_STORAGE_OPTIONS={
            "socket_timeout": settings["REDIS_TIMEOUT_MS"] / 1000,
            "socket_connect_timeout": settings["REDIS_TIMEOUT_MS"] / 1000,
        },
    )
    if settings["TRUSTED_PROXIES"]:
        # Flask's documented way to add WSGI middleware (its type says "method").
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=settings["TRUSTED_PROXIES"], x_proto=settings["TRUSTED_PROXIES"]
        )

    from app import admission, auth, db, errors, observability
    from app.auth import jwt
    from app.broker import configure_broker
    from app.extensions import api, cors, limiter

    observability.init_app(app)
    admission.init_app(app)
    db.connect(settings["MONGODB_URI"])
    db.init_app(app)
    configure_broker(settings["REDIS_URL"], settings["DRAMATIQ_HEARTBEAT_TIMEOUT_MS"])
    jwt.init_app(app)
    limiter.init_app(app)
    if settings["CORS_ORIGINS"]:
        # Bearer tokens, not cookies: no credentials. Preflights are answered for an hour.
        cors.init_app(
            app,
            resources={r"/api/*": {"origins": list(settings["CORS_ORIGINS"])}},
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"],
            expose_headers=[
                "X-Request-ID",
                "Idempotent-Replayed",
                "Retry-After",
                "X-RateLimit-Limit",
                "X-RateLimit-Remaining",
                "X-RateLimit-Reset",
            ],
            max_age=3600,
        )
    if serves_http:
        # Before errors.init_app: flask-smorest registers an error handler of its own, ours
        # replace it.
        _init_api(app, api)
    errors.init_app(app)
    auth.init_app(app)
    _install_domains(app)
    if serves_http:
        _serve_http(app, api)
    if not compat.limits_checked_before_views(limiter):
        # Every limit is a view's (app/extensions.py: no default limits), and a view's limit
        # is checked as the view is called: the check before each request would find none.
        compat.skip_limiter_check_before_views(app, limiter)
    from app import cli

    cli.init_app(app)
    db.ensure_indexes()
    return app


def _install_domains(app: Flask) -> None:
    """What the installed domains bring every process (app/domains.py): their metrics
    collectors for /metrics and their operator commands."""
    app.extensions["metrics_collectors"] = domains.metrics_collectors()
    for command in domains.commands():
        app.cli.add_command(command)


def _init_api(app: Flask, api: Any) -> None:
    api.init_app(
        app,
        spec_kwargs={
            "components": {
                "securitySchemes": {
                    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
                }
            }
        },
    )


def _serve_http(app: Flask, api: Any) -> None:
    """The routes: the domains' blueprints under /api/v1 (and with them the OpenAPI
    document), the front ends (the consoles), health and Swagger UI's files."""
    from app import health

    for blueprint in domains.blueprints():
        api.register_blueprint(blueprint, url_prefix=f"/api/v1{blueprint.url_prefix or ''}")
    api.require_response_fields()
    for front_end in domains.FRONT_ENDS:
        domains.resolve(front_end)(app)
    app.register_blueprint(health.blueprint)
    app.register_blueprint(
        Blueprint(
            "swagger_ui",
            __name__,
            static_folder=swagger_ui_path,
            static_url_path=SWAGGER_UI_URL.rstrip("/"),
        )
    )
