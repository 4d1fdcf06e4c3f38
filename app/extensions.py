"""Extension singletons, bare until `create_app` wires them in its fixed order (the JWT
manager is `app.auth.jwt`: authentication owns it)."""

from __future__ import annotations

from flask import request
from flask_cors import CORS
from flask_limiter import Limiter

from app.web import Api


def client_ip() -> str:
    # ProxyFix (configured from TRUSTED_PROXIES) has already put the client's address here.
    return request.remote_addr or "unknown"


api = Api()
cors = CORS()
limiter = Limiter(key_func=client_ip, default_limits=[])
