"""Authentication (JWT signed with rotating keys, one device session per login), the one
authorization helper every route uses, and the headers and operator checks that guard
every response.

Each authenticated request costs one read: the account, carrying its role grants and the
ids of its live sessions, which the domain that keeps accounts loads (its `caller_loader`
in app/domains.py). So a revoked grant, a ban, an erased account or an ended session takes
effect on the very next request, without a second round trip.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache, wraps
from typing import Any, Protocol

import jwt as pyjwt
from bson import ObjectId
from flask import Flask, Response, current_app, g, jsonify, request
from flask_jwt_extended import (
    JWTManager,
    create_access_token,
    create_refresh_token,
    get_jwt,
    get_jwt_header,
    verify_jwt_in_request,
)
from flask_jwt_extended.config import config as jwt_settings
from flask_jwt_extended.exceptions import JWTDecodeError

from app import compat, domains
from app.clock import utcnow
from app.config import uses_development_secret
from app.db import object_id
from app.errors import (
    AccountBanned,
    DevelopmentKeyLoopbackOnly,
    Forbidden,
    NotFound,
    SessionEnded,
    Unauthorized,
)
from app.operators import is_loopback

jwt = JWTManager()

# The one role that acts in every city.
ADMIN = "admin"


class Grant(Protocol):
    """A role the account holds in `city_codes` (none for an admin, who acts everywhere)."""

    role: str
    city_codes: list[str]


class LiveSession(Protocol):
    """A device session of the account; its access tokens carry its `sid`."""

    sid: str


class Account(Protocol):
    """What the base and the domains read of the account a request speaks for (accounts'
    `Owner` is the part other domains may rely on)."""

    pk: ObjectId
    display_name: str
    city_code: str
    # When `city_code` was set: at sign-up, or by the owner's last change of city.
    city_held_since: datetime
    verified_owner: bool
    created_at: datetime
    grants: Sequence[Grant]
    sessions: Sequence[LiveSession]
    muted_until: datetime | None
    # See accounts' `User.client_fingerprint`.
    client_fingerprint: str | None

    def banned(self, now: datetime) -> bool: ...

    def muted(self, now: datetime) -> bool: ...


@dataclass(frozen=True)
class Caller:
    user: Account
    grants: tuple[Grant, ...]
    # The device session the access token belongs to; None when code acts for an account
    # without a request (workers, seeds, tests of services).
    session_id: str | None = None

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

    def require_role(self, *roles: str) -> None:
        """Refuse (403) a caller who holds none of `roles` in any city, nor admin: who may
        call an operation is no secret. (Within the role, a thing of a city they do not hold
        it in is still hidden: `require`.)"""
        if not self.cities_for(*roles) and not self.is_admin:
            raise Forbidden()

    def require_self_or_admin(self, owner_id: Any) -> None:
        """An owner reaches only their own things (404 for anyone else's); admins all."""
        if not self.is_admin and str(owner_id) != self.id:
            raise NotFound()

    def require_admin(self) -> None:
        if not self.is_admin:
            raise Forbidden(message="Only admins may do this.")


def load_caller(user_id: Any, session_id: str | None = None) -> Caller | None:
    """The active account `user_id` as a caller, in one read; None when unknown or erased."""
    oid = object_id(user_id)
    user = domains.load_account(oid) if oid else None
    if user is None:
        return None
    return Caller(user, tuple(user.grants), session_id)


def caller_for_token(claims: dict[str, Any]) -> Caller:
    """The caller an access token speaks for, refused unless its account is active and not
    banned and its session is still live."""
    found = load_caller(claims.get("sub"), claims.get("sid"))
    if found is None:
        raise Unauthorized(message="The account no longer exists.")
    if found.user.banned(utcnow()):
        raise AccountBanned()
    if not any(session.sid == found.session_id for session in found.user.sessions):
        raise SessionEnded()
    return found


def caller() -> Caller:
    """The authenticated caller of this request (routes require a login unless public)."""
    found = g.get("caller")
    if found is None:
        raise Unauthorized()
    return found


def login_required(view: Callable) -> Callable:
    """Require a valid access token of a live session of an active account."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        g.caller = caller_for_token(_access_claims())
        return view(*args, **kwargs)

    return wrapper


# Access tokens this process has verified, by their Authorization header, with the id of the
# key that signed them. A client sends one token with every request for its lifetime, so a
# request with a token seen before decodes nothing. A token found here is still refused
# once expired or once its key is retired; the account, its sessions and bans are read on
# every request all the same.
_VERIFIED_TOKENS = 4096
_verified: dict[str, tuple[dict[str, Any], str]] = {}
_verified_lock = threading.Lock()
# What a bearer token may look like: three base64url parts (RFC 7515's compact form).
_COMPACT_JWT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def _access_claims() -> dict[str, Any]:
    """The claims of the request's access token, verified (401 otherwise)."""
    header = request.headers.get("Authorization", "")
    known = _verified.get(header)
    if known is not None:
        claims, kid = known
        if time.time() < claims["exp"] and kid in signing_keys():
            return claims
    verified = _decoded_once(header)
    if verified is None:
        # Whatever one decode did not accept, flask-jwt-extended verifies as it always has,
        # and refuses in its words (expired, invalid, malformed header...).
        verify_jwt_in_request()
        verified = get_jwt(), get_jwt_header().get("kid", "")
    with _verified_lock:
        if len(_verified) >= _VERIFIED_TOKENS:
            del _verified[next(iter(_verified))]  # the oldest
        _verified[header] = verified
    return verified[0]


def _decoded_once(header: str) -> tuple[dict[str, Any], str] | None:
    """The claims of an access token that the key its header names signed, and that key's
    id, in one decode (PyJWT's, with flask-jwt-extended's settings); None for anything else.

    flask-jwt-extended parses a token four times to verify it (its claims unverified, its
    header twice, then the verified decode): on a token's first request that was a tenth
    of the API's CPU. Tried with the signing key first, a token decodes once; one the
    previous key signed (while keys rotate) decodes twice. It is accepted only as the
    library would accept it, or this answers None and the library decides."""
    scheme, _, token = header.partition(" ")
    if scheme != jwt_settings.header_type or not _COMPACT_JWT.fullmatch(token):
        return None
    for kid, key in signing_keys().items():
        try:
            decoded = pyjwt.decode_complete(
                token,
                key,
                algorithms=jwt_settings.decode_algorithms,
                audience=jwt_settings.decode_audience,
                issuer=jwt_settings.decode_issuer,
                leeway=jwt_settings.leeway,
                options={
                    "verify_aud": jwt_settings.decode_audience is not None,
                    "verify_sub": jwt_settings.verify_sub,
                },
            )
        except pyjwt.InvalidSignatureError:
            continue
        except pyjwt.PyJWTError:
            return None
        claims = decoded["payload"]
        accepted = (
            decoded["header"].get("kid") == kid
            and claims.get("type") == "access"
            and jwt_settings.identity_claim_key in claims
            and "exp" in claims  # as `token_verification_loader` requires (init_app)
        )
        return (claims, kid) if accepted else None
    return None


# --- tokens and their signing keys --------------------------------------------------------


@cache
def key_id(secret: str) -> str:
    """A stable, public name for a signing key that reveals nothing of it."""
    return hmac.new(secret.encode(), b"jwt-key-id", hashlib.sha256).hexdigest()[:16]


def signing_keys() -> dict[str, str]:
    """Keys that verify tokens, by key id: SECRET_KEY, which also signs, and
    SECRET_KEY_PREVIOUS while tokens it signed may still be in use."""
    keys = (current_app.config["SECRET_KEY"], current_app.config.get("SECRET_KEY_PREVIOUS"))
    return {key_id(key): key for key in keys if key}


def issue_tokens(
    user_id: str, session_id: str, refresh_id: str, issued_at: datetime | None = None
) -> dict[str, Any]:
    """An access token and the session's refresh token, both naming the session.

    With `issued_at`, the pair is a function of its arguments alone (times from
    `issued_at`, the access token's id from `refresh_id`): a refresh answered again within
    its grace hands out the very tokens it answered first."""
    claims: dict[str, Any] = {"sid": session_id}
    access: dict[str, Any] = {}
    refresh: dict[str, Any] = {"jti": refresh_id}
    if issued_at is not None:
        config = current_app.config
        # flask-jwt-extended fills `csrf` (unused with header tokens) with a random value.
        csrf = hashlib.sha256(f"csrf:{refresh_id}".encode()).hexdigest()[:32]
        at = {"iat": issued_at, "nbf": issued_at, "csrf": csrf}
        access = {
            **at,
            "exp": issued_at + timedelta(seconds=int(config["JWT_ACCESS_TOKEN_EXPIRES"])),
            "jti": hashlib.sha256(f"access:{refresh_id}".encode()).hexdigest()[:32],
        }
        refresh |= {
            **at,
            "exp": issued_at + timedelta(seconds=int(config["JWT_REFRESH_TOKEN_EXPIRES"])),
        }
    return {
        "access_token": create_access_token(
            identity=user_id, additional_claims={**claims, **access}
        ),
        "refresh_token": create_refresh_token(
            identity=user_id, additional_claims={**claims, **refresh}
        ),
        "token_type": "Bearer",
        "expires_in": int(current_app.config["JWT_ACCESS_TOKEN_EXPIRES"]),
    }


def _decode_key(header: dict[str, Any], payload: dict[str, Any]) -> str:
    key = signing_keys().get(header.get("kid", ""))
    if key is None:
        raise JWTDecodeError("Unknown signing key.")
    return key


# --- operators and response headers -------------------------------------------------------


_YEAR = 365 * 24 * 3600


# Set on every answer, in place of any the view set.
_ALWAYS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
)


def _security_headers(response: Response) -> Response:
    headers = response.headers
    # The names present, looked up once: werkzeug's `setdefault` and `set` each lower-case
    # every header's name to find one (about 30 Python calls a header).
    present = {name.lower() for name, _ in headers}
    asked = compat.current_request()

    def put(name: str, value: str, *, replacing: bool = True) -> None:
        if name.lower() not in present:
            headers.add(name, value)
        elif replacing:
            headers[name] = value

    for name, value in _ALWAYS:
        put(name, value)
    # The interactive docs page loads Swagger UI's scripts and styles: it only may not be
    # framed. Everything else is data, which needs no sources at all.
    # A page that sets its own policy (the consoles') keeps it.
    if response.mimetype == "text/html":
        put("Content-Security-Policy", "frame-ancestors 'none'", replacing=False)
    else:
        put(
            "Content-Security-Policy",
            "default-src 'none'; frame-ancestors 'none'",
            replacing=False,
        )
    if asked.is_secure:
        put("Strict-Transport-Security", f"max-age={_YEAR}; includeSubDomains")
    if asked.path.startswith("/api/") or "HTTP_AUTHORIZATION" in asked.environ:
        put("Cache-Control", "no-store", replacing=False)
    return response


def init_app(app: Flask) -> None:
    def _unauthorized(message: str):
        return jsonify(Unauthorized(message=message).body()), 401

    jwt.encode_key_loader(lambda identity: current_app.config["SECRET_KEY"])
    jwt.additional_headers_loader(
        lambda identity: {"kid": key_id(current_app.config["SECRET_KEY"])}
    )
    jwt.decode_key_loader(_decode_key)
    jwt.unauthorized_loader(lambda reason: _unauthorized("Missing or malformed token."))
    jwt.invalid_token_loader(lambda reason: _unauthorized("Invalid token."))
    jwt.expired_token_loader(lambda header, payload: _unauthorized("Token expired."))
    jwt.revoked_token_loader(lambda header, payload: _unauthorized("Token revoked."))
    jwt.needs_fresh_token_loader(lambda header, payload: _unauthorized("Fresh token needed."))
    jwt.user_lookup_error_loader(lambda header, payload: _unauthorized("Unknown account."))
    app.after_request(_security_headers)

    # PyJWT checks `exp` only when a token carries one; a token without it would never expire.
    jwt.token_verification_loader(lambda header, payload: "exp" in payload)
    jwt.token_verification_failed_loader(
        lambda header, payload: _unauthorized("Token without an expiry.")
    )

    @app.before_request
    def _development_key_serves_loopback_only():
        # Anyone can sign tokens with the public development key, so an API running with it
        # answers this machine only, whatever address it was bound to.
        if uses_development_secret(app.config) and not is_loopback(request.remote_addr):
            raise DevelopmentKeyLoopbackOnly()
