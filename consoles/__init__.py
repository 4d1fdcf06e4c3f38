"""The staff consoles: server-rendered pages of the same Flask app under /console, for
circle leaders (events, the door, vehicles, feedback, budget and scorecard) and, on the
same base, ambassadors and admins. Pages call the domains' services, never the HTTP API;
browser code is small and vendored (`consoles.vendor`). The base is `consoles.web`."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

TRANSLATIONS = Path(__file__).resolve().parent / "translations"


def init_app(app: Flask) -> None:
    """Wire the consoles into the app (called by `app.create_app` through
    `app.domains.FRONT_ENDS`)."""
    from consoles import i18n, web

    previous = app.config.get("SECRET_KEY_PREVIOUS")
    app.config.update(
        # The cookie names one of the account's device sessions (consoles/auth.py), for the
        # console's paths only, and never reaches scripts or other sites.
        SESSION_COOKIE_NAME="console_session",
        SESSION_COOKIE_PATH="/console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=app.config["ENVIRONMENT"] != "development",
        # A SECRET_KEY rotation keeps everyone signed in, as it keeps their tokens.
        SECRET_KEY_FALLBACKS=[previous] if previous else [],
        # CSRF is checked on the console's forms only (`consoles.web`): the JSON API has
        # bearer tokens, which a browser never sends by itself.
        WTF_CSRF_CHECK_DEFAULT=False,
        # Bound to the session instead: a door offline for hours still uploads its scans.
        WTF_CSRF_TIME_LIMIT=None,
        BABEL_TRANSLATION_DIRECTORIES=str(TRANSLATIONS),
        BABEL_DEFAULT_LOCALE=i18n.DEFAULT_LOCALE,
    )
    web.csrf.init_app(app)
    i18n.init_app(app)
    # The pages, each registering itself on the blueprint, in the order of the navigation.
    from consoles import home  # noqa: F401, I001
    from consoles import events, door, people, partner  # noqa: F401
    from consoles import review  # noqa: F401
    from consoles import cities, catalogue, points, operations, words  # noqa: F401

    app.register_blueprint(web.console)
