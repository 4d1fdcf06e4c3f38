"""Accounts, role grants, cities and vehicles over HTTP. Views validate, call one service
function and return a document for their response schema."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import current_app, request
from flask.views import MethodView
from flask_jwt_extended import get_jwt, jwt_required

from accounts import (
    credentials,
    errors,
    ownership,
    passwords,
    personal_data,
    roles,
    services,
    sessions,
)
from accounts.models import City, Vehicle
from accounts.schemas import (
    CityCreateSchema,
    CitySchema,
    LoginSchema,
    PasswordChangeSchema,
    PasswordResetConfirmSchema,
    PasswordResetRequestSchema,
    ProfileUpdateSchema,
    ReferralSchema,
    RegisteredSchema,
    RegisterSchema,
    RejectSchema,
    RoleGrantCreateSchema,
    RoleGrantSchema,
    SessionSchema,
    TokensSchema,
    UserSchema,
    VehicleCreateSchema,
    VehicleQueueArgsSchema,
    VehicleSchema,
)
from app import domains
from app.auth import Caller, caller
from app.errors import (
    AccountBanned,
    ContainsSensitiveWord,
    Forbidden,
    NotFound,
    SessionEnded,
    Unauthorized,
)
from app.extensions import client_ip, limiter
from app.idempotency import idempotent
from app.privacy import PersonalDataSchema, export_personal_data
from app.web import Blueprint, PageArgsSchema, page_of, paginate

accounts = Blueprint(
    "accounts",
    __name__,
    description="The caller's profile, password, sessions and data; role grants (admin)",
)
# Public: sign-up, login and password reset, for callers who have no token yet.
auth = Blueprint(
    "auth",
    __name__,
    description="Sign-up, login, token refresh, logout and password reset",
    public=True,
)
cities = Blueprint("cities", __name__, description="Markets the brand operates in")
vehicles = Blueprint("vehicles", __name__, description="Vehicles and ownership verification")
blueprints = (auth, accounts, cities, vehicles)


def _login_account_key() -> str:
    body = request.get_json(silent=True)
    if isinstance(body, dict):
        key = credentials.login_key(
            body.get("email") if isinstance(body.get("email"), str) else None,
            body.get("phone") if isinstance(body.get("phone"), str) else None,
        )
        if key:
            return key
    return "unknown"


def _limit(setting: str):
    return lambda: current_app.config[setting]


def _device(data: dict[str, Any]) -> str:
    """The name the client gave this device, else its User-Agent."""
    return data.pop("device", None) or request.user_agent.string or "unknown device"


# Shared by asking for a code and confirming one: a guess costs as much as a new code.
_PASSWORD_RESET_LIMITS: list[Callable[..., Any]] = [
    limiter.shared_limit(
        _limit("RATELIMIT_PASSWORD_RESET_PER_ACCOUNT"),
        scope="password-reset-account",
        key_func=_login_account_key,
    ),
    limiter.shared_limit(_limit("RATELIMIT_PASSWORD_RESET_PER_IP"), scope="password-reset-ip"),
]


def user_document(found: Caller) -> dict[str, Any]:
    user = sessions.account_of(found)
    return {
        "id": str(user.pk),
        "display_name": user.display_name,
        "email": user.email,
        "phone": user.phone,
        "avatar_url": user.avatar_url,
        "city_code": user.city_code,
        "city_since": user.city_held_since,
        "locale": user.locale,
        "roles": found.roles,
        "verified_owner": user.verified_owner,
        "referral_code": user.referral_code,
        "created_at": user.created_at,
        # Staff discovery: each grant's cities, the city partners the caller works for.
        **roles.staff_discovery(found),
        # The loyalty tier, from the domains that add to a profile.
        **domains.profile_fields(user.pk),
    }


@auth.route("/auth/register")
class Register(MethodView):
    decorators = [limiter.limit(_limit("RATELIMIT_REGISTER_PER_IP"))]

    @idempotent
    @auth.arguments(RegisterSchema)
    @auth.response(201, RegisteredSchema)
    @auth.refuses(
        errors.AccountExists,
        errors.InvalidPhone,
        errors.UnknownCity,
        errors.InvalidReferralCode,
        ContainsSensitiveWord,
    )
    def post(self, data):
        """Create an owner account

        With `email` or `phone` (phones without a country code are read in
        `DEFAULT_PHONE_REGION`), a password of 8+ characters, a display name and a
        `city_code` (`GET /cities`); a `referral_code` names the friend who invited the
        owner. Answers the account with the tokens of a first device session. 409
        `account_exists` when the email or phone is taken. Limited per client IP
        (`RATELIMIT_REGISTER_PER_IP`, 20 a minute).
        """
        device = _device(data)
        fingerprint = services.client_fingerprint(client_ip(), device)
        user = services.register(**data, fingerprint=fingerprint)
        return {"user": user_document(Caller(user, ())), **sessions.start_session(user.pk, device)}


@auth.route("/auth/login")
class Login(MethodView):
    decorators = [
        limiter.limit(
            _limit("RATELIMIT_LOGIN_PER_ACCOUNT"),
            key_func=_login_account_key,
            scope="login-account",
        ),
        limiter.limit(_limit("RATELIMIT_LOGIN_PER_IP"), scope="login-ip"),
    ]

    @auth.arguments(LoginSchema)
    @auth.response(200, TokensSchema)
    @auth.refuses(errors.InvalidCredentials, AccountBanned)
    def post(self, data):
        """Exchange credentials for the tokens of a new device session

        401 `invalid_credentials` alike for an unknown account and a wrong password. Limited
        per account (10 a minute) and per client IP (30 a minute); past either, 429 with
        `Retry-After`. An account keeps at most 10 sessions: a new login ends the oldest.
        """
        return sessions.log_in(device=_device(data), **data)


@auth.route("/auth/refresh")
class Refresh(MethodView):
    @jwt_required(refresh=True)  # the refresh token, not an access token
    @auth.response(200, TokensSchema)
    @auth.refuses(Unauthorized, SessionEnded, errors.RefreshTokenReused, AccountBanned)
    @auth.doc(security=Blueprint.SECURITY)
    def post(self):
        """Exchange the refresh token for new tokens; the one sent is spent

        Send the refresh token as the bearer. Answers a new access token and a new refresh
        token: keep the new one. A spent refresh token sent again is taken as stolen and
        ends the session (401 `refresh_token_reused`), except within
        `REFRESH_REUSE_GRACE_SECONDS` (10) of its exchange, when it answers the same new
        pair (parallel requests refreshing at once).
        """
        claims = get_jwt()
        return sessions.refresh_session(claims["sub"], claims.get("sid"), claims["jti"])


@accounts.route("/auth/logout", tags=["auth"])  # with the other tokens; needs a login
class Logout(MethodView):
    @accounts.response(204)
    def post(self):
        """End the current session"""
        sessions.end_session(caller().user.pk, caller().session_id)


@auth.route("/auth/password-reset")
class PasswordResetRequest(MethodView):
    decorators = _PASSWORD_RESET_LIMITS

    @auth.arguments(PasswordResetRequestSchema)
    @auth.response(202)
    def post(self, data):
        """Send a one-time code by push (the same answer whether or not the account exists)

        The 6-digit code is valid 10 minutes for 5 tries and replaces any earlier one.
        Asking and confirming share a limit per account (10 an hour) and per client IP (30
        an hour).
        """
        passwords.request_password_reset(**data)


@auth.route("/auth/password-reset/confirm")
class PasswordResetConfirm(MethodView):
    decorators = _PASSWORD_RESET_LIMITS

    @auth.arguments(PasswordResetConfirmSchema)
    @auth.response(204)
    @auth.refuses(errors.InvalidCode)
    def post(self, data):
        """Set a new password with the code; every session ends

        422 `invalid_code` for a wrong, used-up (5 tries) or expired (10 minutes) code.
        """
        passwords.reset_password(**data)


@accounts.route("/me/password")
class MyPassword(MethodView):
    decorators = [limiter.limit(_limit("RATELIMIT_LOGIN_PER_IP"), scope="password-change-ip")]

    @accounts.arguments(PasswordChangeSchema)
    @accounts.response(204)
    @accounts.refuses(errors.WrongPassword)
    def post(self, data):
        """Change the password; every other session ends"""
        passwords.change_password(caller(), **data)


@accounts.route("/me/sessions")
class MySessions(MethodView):
    @accounts.response(200, page_of(SessionSchema))
    def get(self):
        """The caller's live device sessions (at most 10, so one page)"""
        return {"items": sessions.live_sessions(caller()), "next_cursor": None}


@accounts.route("/me/sessions/<session_id>")
class MySession(MethodView):
    @accounts.response(204)
    def delete(self, session_id):
        """End one of the caller's sessions: its tokens stop working at once"""
        sessions.end_own_session(caller(), session_id)


@accounts.route("/me")
class Me(MethodView):
    @accounts.response(200, UserSchema)
    def get(self):
        """The caller's profile"""
        return user_document(caller())

    @accounts.arguments(ProfileUpdateSchema)
    @accounts.response(200, UserSchema)
    @accounts.refuses(errors.UnknownCity, errors.CityChangeTooSoon, ContainsSensitiveWord)
    def patch(self, changes):
        """Change display name, avatar, city or locale

        The first change of city is free; each later one waits 90 days after the last (409
        `city_change_too_soon` with `possible_from`). A reward limited to some cities waits
        30 days for an owner new to its city.
        """
        found = caller()
        services.update_profile(sessions.account_of(found), changes)
        return user_document(found)

    @accounts.response(204)
    def delete(self):
        """Erase the caller's personal data (ledger totals stay consistent)"""
        personal_data.erase_account(sessions.account_of(caller()))


@accounts.route("/me/referral")
class MyReferral(MethodView):
    @accounts.response(200, ReferralSchema)
    def get(self):
        """The caller's referral code and how many friends joined and verified a vehicle"""
        return services.referral_summary(sessions.account_of(caller()))


@accounts.route("/me/export")
class MyData(MethodView):
    @accounts.response(200, PersonalDataSchema)
    def get(self):
        """Everything the service keeps about the caller"""
        return export_personal_data(caller().user.pk)


@accounts.route("/admin/role-grants")
class RoleGrants(MethodView):
    @idempotent
    @accounts.arguments(RoleGrantCreateSchema)
    @accounts.response(201, RoleGrantSchema)
    @accounts.refuses(Forbidden, NotFound, errors.CityCodesRequired, errors.UnknownCity)
    def post(self, data):
        """Grant a role (admin)

        `circle_leader` and `ambassador` act in the grant's `city_codes` (at least one, else
        422 `city_codes_required`); `admin` in every city. A circle leader granted a city
        that a city partner runs works for that partner. The grant counts from the grantee's
        next request.
        """
        return roles.grant_role(caller(), **data)


@accounts.route("/admin/role-grants/<grant_id>")
class RoleGrantItem(MethodView):
    @accounts.response(204)
    @accounts.refuses(Forbidden)
    def delete(self, grant_id):
        """Revoke a role (admin)"""
        roles.revoke_role(caller(), grant_id)


@cities.route("/cities")
class Cities(MethodView):
    @cities.public
    @cities.response(200, page_of(CitySchema))
    @cities.arguments(PageArgsSchema, location="query")
    def get(self, args):
        """List cities"""
        return paginate(City.objects, args["cursor"], args["limit"], order=("code",))


@cities.route("/admin/cities")
class AdminCities(MethodView):
    @idempotent
    @cities.arguments(CityCreateSchema)
    @cities.response(201, CitySchema)
    @cities.refuses(Forbidden, errors.CityExists)
    def post(self, data):
        """Create a city (admin)"""
        caller().require_admin()
        return services.create_city(**data)


# Where cities were created before every admin write moved under /admin: still answered.
class CityCreationBeforeAdmin(AdminCities):
    pass


cities.add_url_rule(
    "/cities", view_func=CityCreationBeforeAdmin, deprecated_for="POST /admin/cities"
)


@vehicles.route("/me/vehicles")
class MyVehicles(MethodView):
    @vehicles.arguments(PageArgsSchema, location="query")
    @vehicles.response(200, page_of(VehicleSchema))
    def get(self, args):
        """The caller's vehicles"""
        return paginate(Vehicle.objects(owner_id=caller().user.pk), args["cursor"], args["limit"])

    @idempotent
    @vehicles.arguments(VehicleCreateSchema)
    @vehicles.response(201, VehicleSchema)
    @vehicles.refuses(errors.VinTaken, errors.InvalidVin, errors.DeliveryDateOutOfRange)
    def post(self, data):
        """Add a vehicle for verification

        A VIN is 17 characters of A-Z and 0-9 without I, O and Q (422 `invalid_vin`),
        registered once (409 `vin_taken`). The vehicle waits as `pending` until a circle
        leader of the owner's city, or an admin, verifies it: the owner's first verified
        vehicle makes them a verified owner and earns welcome points.
        """
        return ownership.add_vehicle(sessions.account_of(caller()), **data)


@vehicles.route("/vehicles")
class VehicleQueue(MethodView):
    @vehicles.arguments(VehicleQueueArgsSchema, location="query")
    @vehicles.response(200, page_of(VehicleSchema))
    @vehicles.refuses(Forbidden)
    def get(self, args):
        """Verification queue of the caller's cities (circle leaders, admins)"""
        queue = ownership.verification_queue(caller(), args["status"], args.get("city"))
        return paginate(queue, args["cursor"], args["limit"], order=("created_at", "id"))


@vehicles.route("/vehicles/<vehicle_id>/verify")
class VerifyVehicle(MethodView):
    @vehicles.response(200, VehicleSchema)
    @vehicles.refuses(errors.OwnVehicle, errors.OwnReferral, errors.VehicleNotPending)
    def post(self, vehicle_id):
        """Verify ownership (circle leader of the owner's city, admin)

        Outside the caller's cities the vehicle is not found (404). Nobody reviews their own
        vehicle (403 `own_vehicle`) or that of an owner they referred (403 `own_referral`).
        409 `not_pending` once reviewed.
        """
        return ownership.verify_vehicle(caller(), vehicle_id)


@vehicles.route("/vehicles/<vehicle_id>/reject")
class RejectVehicle(MethodView):
    @vehicles.arguments(RejectSchema)
    @vehicles.response(200, VehicleSchema)
    @vehicles.refuses(errors.OwnVehicle, errors.OwnReferral, errors.VehicleNotPending)
    def post(self, data, vehicle_id):
        """Reject ownership (circle leader of the owner's city, admin)"""
        return ownership.reject_vehicle(caller(), vehicle_id, data["reason"])
