"""Authentication (JWT) and the one authorization helper every route uses.

Roles are read from the database on each request rather than baked into the token, so a
revoked grant takes effect at once.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from flask import Flask, g, jsonify, request
from flask_jwt_extended import get_jwt_identity, verify_jwt_in_request

from accounts.models import ADMIN, RoleGrant, User
from app.config import uses_development_secret
from app.db import object_id
from app.errors import Forbidden, NotFound, Unauthorized, envelope
from app.extensions import jwt


@dataclass(frozen=True)
class Caller:
    user: User
    grants: tuple[RoleGrant, ...]

    @property
    def id(self) -> str:
        return str(self.user.pk)

    @property
    def is_admin(self) -> bool:
        return any(grant.role == ADMIN for grant in self.grants)

    @property
    def roles(self) -> list[str]:
        return sorted({"owner", *(grant.role for grant in self.grants)})

    def cities_for(self, *roles: str) -> set[str] | None:
        """Cities where the caller holds one of `roles`; None means every city (admin)."""
        if self.is_admin:
            return None
        return {code for grant in self.grants if grant.role in roles for code in grant.city_codes}

    def acts_in(self, city_code: str | None, *roles: str) -> bool:
        cities = self.cities_for(*roles)
        return cities is None or (city_code is not None and city_code in cities)

    def require(self, city_code: str | None, *roles: str, hide: bool = True) -> None:
        """Refuse unless the caller holds one of `roles` in `city_code`, or is admin.

        `hide=True` answers 404 so that a thing outside the caller's scope does not reveal
        that it exists; `hide=False` answers 403 where existence is no secret.
        """
        if self.acts_in(city_code, *roles):
            return
        if hide:
            raise NotFound()
        raise Forbidden()

    def require_self_or_admin(self, owner_id: Any) -> None:
        """An owner reaches only their own things (404 for anyone else's); admins all."""
        if not self.is_admin and str(owner_id) != self.id:
            raise NotFound()

    def require_admin(self) -> None:
        if not self.is_admin:
            raise Forbidden(message="Only admins may do this.")


def load_caller(user_id: Any) -> Caller | None:
    oid = object_id(user_id)
    user = User.objects(pk=oid, erased_at=None).first() if oid else None
    if user is None:
        return None
    return Caller(user, tuple(RoleGrant.objects(user_id=user.pk)))


def caller() -> Caller:
    """The authenticated caller of this request (after `login_required`)."""
    found = g.get("caller")
    if found is None:
        raise Unauthorized()
    return found


def login_required(view: Callable) -> Callable:
    """Require a valid access token for an active account."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        verify_jwt_in_request()
        found = load_caller(get_jwt_identity())
        if found is None:
            raise Unauthorized(message="The account no longer exists.")
        g.caller = found
        return view(*args, **kwargs)

    return wrapper


def init_app(app: Flask) -> None:
    def _unauthorized(message: str):
        return jsonify(envelope(401, message, "unauthorized")), 401

    jwt.unauthorized_loader(lambda reason: _unauthorized("Missing or malformed token."))
    jwt.invalid_token_loader(lambda reason: _unauthorized("Invalid token."))
    jwt.expired_token_loader(lambda header, payload: _unauthorized("Token expired."))
    jwt.revoked_token_loader(lambda header, payload: _unauthorized("Token revoked."))
    jwt.needs_fresh_token_loader(lambda header, payload: _unauthorized("Fresh token needed."))
    jwt.user_lookup_error_loader(lambda header, payload: _unauthorized("Unknown account."))
    # PyJWT checks `exp` only when a token carries one; a token without it would never expire.
    jwt.token_verification_loader(lambda header, payload: "exp" in payload)
    jwt.token_verification_failed_loader(
        lambda header, payload: _unauthorized("Token without an expiry.")
    )

    @app.before_request
    def _development_key_serves_loopback_only():
        # Anyone can sign tokens with the public development key, so an API running with it
        # answers this machine only, whatever address it was bound to.
        if uses_development_secret(app.config) and not _is_loopback(request.remote_addr):
            message = "This server runs with the development SECRET_KEY: loopback clients only."
            return jsonify(envelope(403, message, "development_key_loopback_only")), 403
        return None


def _is_loopback(address: str | None) -> bool:
    try:
        return ipaddress.ip_address(address or "").is_loopback
    except ValueError:
        return False
