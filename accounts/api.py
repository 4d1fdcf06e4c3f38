"""Accounts, role grants, cities and vehicles over HTTP. Views validate, call one service
function and return a document for their response schema."""

from __future__ import annotations

from typing import Any

from flask import current_app, request
from flask.views import MethodView
from flask_jwt_extended import (
    create_access_token,
    create_refresh_token,
    get_jwt_identity,
    jwt_required,
)

from accounts import ownership, services
from accounts.models import City, User, Vehicle
from accounts.schemas import (
    AccessTokenSchema,
    CityCreateSchema,
    CitySchema,
    LoginSchema,
    ProfileUpdateSchema,
    ReferralSchema,
    RegisteredSchema,
    RegisterSchema,
    RejectSchema,
    RoleGrantCreateSchema,
    RoleGrantSchema,
    TokensSchema,
    UserSchema,
    VehicleCreateSchema,
    VehicleQueueArgsSchema,
    VehicleSchema,
)
from app import domains
from app.auth import Caller, caller, load_caller, login_required
from app.errors import Unauthorized
from app.extensions import limiter
from app.privacy import export_personal_data
from app.web import Blueprint, PageArgsSchema, page_of, paginate

accounts = Blueprint("accounts", __name__, description="Sign-up, login, profile, roles")
cities = Blueprint("cities", __name__, description="Markets the brand operates in")
vehicles = Blueprint("vehicles", __name__, description="Vehicles and ownership verification")
blueprints = (accounts, cities, vehicles)


def _login_account_key() -> str:
    body = request.get_json(silent=True)
    if isinstance(body, dict):
        key = services.login_key(
            body.get("email") if isinstance(body.get("email"), str) else None,
            body.get("phone") if isinstance(body.get("phone"), str) else None,
        )
        if key:
            return key
    return "unknown"


def _limit(setting: str):
    return lambda: current_app.config[setting]


def user_document(found: Caller) -> dict[str, Any]:
    user = found.user
    return {
        "id": str(user.pk),
        "display_name": user.display_name,
        "email": user.email,
        "phone": user.phone,
        "avatar_url": user.avatar_url,
        "city_code": user.city_code,
        "locale": user.locale,
        "roles": found.roles,
        "verified_owner": user.verified_owner,
        "referral_code": user.referral_code,
        "created_at": user.created_at,
        # The loyalty tier, from the domains that add to a profile.
        **domains.profile_fields(user.pk),
    }


def tokens_for(user: User) -> dict[str, Any]:
    return {
        "access_token": create_access_token(identity=str(user.pk)),
        "refresh_token": create_refresh_token(identity=str(user.pk)),
        "token_type": "Bearer",
        "expires_in": int(current_app.config["JWT_ACCESS_TOKEN_EXPIRES"]),
    }


@accounts.route("/auth/register")
class Register(MethodView):
    decorators = [limiter.limit(_limit("RATELIMIT_REGISTER_PER_IP"))]

    @accounts.arguments(RegisterSchema)
    @accounts.response(201, RegisteredSchema)
    @accounts.alt_response(409, description="`account_exists`")
    def post(self, data):
        """Create an owner account"""
        user = services.register(**data)
        return {"user": user_document(Caller(user, ())), **tokens_for(user)}


@accounts.route("/auth/login")
class Login(MethodView):
    decorators = [
        limiter.limit(
            _limit("RATELIMIT_LOGIN_PER_ACCOUNT"),
            key_func=_login_account_key,
            scope="login-account",
        ),
        limiter.limit(_limit("RATELIMIT_LOGIN_PER_IP"), scope="login-ip"),
    ]

    @accounts.arguments(LoginSchema)
    @accounts.response(200, TokensSchema)
    @accounts.alt_response(401, description="`invalid_credentials`")
    @accounts.alt_response(429, description="`rate_limited`, with Retry-After")
    def post(self, data):
        """Exchange credentials for tokens"""
        return tokens_for(services.authenticate(**data))


@accounts.route("/auth/refresh")
class Refresh(MethodView):
    @jwt_required(refresh=True)
    @accounts.response(200, AccessTokenSchema)
    @accounts.doc(security=[{"bearer": []}])
    def post(self):
        """Exchange a refresh token for a new access token"""
        found = load_caller(get_jwt_identity())
        if found is None:
            raise Unauthorized(message="The account no longer exists.")
        return {
            "access_token": create_access_token(identity=found.id),
            "token_type": "Bearer",
            "expires_in": int(current_app.config["JWT_ACCESS_TOKEN_EXPIRES"]),
        }


@accounts.route("/me")
class Me(MethodView):
    decorators = [login_required]

    @accounts.response(200, UserSchema)
    @accounts.doc(security=[{"bearer": []}])
    def get(self):
        """The caller's profile"""
        return user_document(caller())

    @accounts.arguments(ProfileUpdateSchema)
    @accounts.response(200, UserSchema)
    @accounts.doc(security=[{"bearer": []}])
    def patch(self, changes):
        """Change display name, avatar, city or locale"""
        found = caller()
        services.update_profile(found.user, changes)
        return user_document(found)

    @accounts.response(204)
    @accounts.doc(security=[{"bearer": []}])
    def delete(self):
        """Erase the caller's personal data (ledger totals stay consistent)"""
        services.erase_account(caller().user)


@accounts.route("/me/referral")
class MyReferral(MethodView):
    decorators = [login_required]

    @accounts.response(200, ReferralSchema)
    @accounts.doc(security=[{"bearer": []}])
    def get(self):
        """The caller's referral code and how many friends joined and verified a vehicle"""
        return services.referral_summary(caller().user)


@accounts.route("/me/export")
class MyData(MethodView):
    decorators = [login_required]

    @accounts.response(200, description="One section per domain that keeps personal data")
    @accounts.doc(security=[{"bearer": []}])
    def get(self):
        """Everything the service keeps about the caller"""
        return export_personal_data(caller().user.pk)


@accounts.route("/admin/role-grants")
class RoleGrants(MethodView):
    decorators = [login_required]

    @accounts.arguments(RoleGrantCreateSchema)
    @accounts.response(201, RoleGrantSchema)
    @accounts.doc(security=[{"bearer": []}])
    def post(self, data):
        """Grant a role (admin)"""
        return services.grant_role(caller(), **data)


@accounts.route("/admin/role-grants/<grant_id>")
class RoleGrantItem(MethodView):
    decorators = [login_required]

    @accounts.response(204)
    @accounts.doc(security=[{"bearer": []}])
    def delete(self, grant_id):
        """Revoke a role (admin)"""
        services.revoke_role(caller(), grant_id)


@cities.route("/cities")
class Cities(MethodView):
    @cities.response(200, page_of(CitySchema))
    @cities.arguments(PageArgsSchema, location="query")
    def get(self, args):
        """List cities"""
        return paginate(City.objects, args["cursor"], args["limit"], order=("code",))

    @login_required
    @cities.arguments(CityCreateSchema)
    @cities.response(201, CitySchema)
    @cities.doc(security=[{"bearer": []}])
    def post(self, data):
        """Create a city (admin)"""
        caller().require_admin()
        return services.create_city(**data)


@vehicles.route("/me/vehicles")
class MyVehicles(MethodView):
    decorators = [login_required]

    @vehicles.arguments(PageArgsSchema, location="query")
    @vehicles.response(200, page_of(VehicleSchema))
    @vehicles.doc(security=[{"bearer": []}])
    def get(self, args):
        """The caller's vehicles"""
        return paginate(Vehicle.objects(owner_id=caller().user.pk), args["cursor"], args["limit"])

    @vehicles.arguments(VehicleCreateSchema)
    @vehicles.response(201, VehicleSchema)
    @vehicles.alt_response(409, description="`vin_taken`")
    @vehicles.doc(security=[{"bearer": []}])
    def post(self, data):
        """Add a vehicle for verification"""
        return ownership.add_vehicle(caller().user, **data)


@vehicles.route("/vehicles")
class VehicleQueue(MethodView):
    decorators = [login_required]

    @vehicles.arguments(VehicleQueueArgsSchema, location="query")
    @vehicles.response(200, page_of(VehicleSchema))
    @vehicles.doc(security=[{"bearer": []}])
    def get(self, args):
        """Verification queue of the caller's cities (circle leaders, admins)"""
        queue = ownership.verification_queue(caller(), args["status"], args.get("city"))
        return paginate(queue, args["cursor"], args["limit"], order=("created_at", "id"))


@vehicles.route("/vehicles/<vehicle_id>/verify")
class VerifyVehicle(MethodView):
    decorators = [login_required]

    @vehicles.response(200, VehicleSchema)
    @vehicles.alt_response(409, description="`not_pending`")
    @vehicles.doc(security=[{"bearer": []}])
    def post(self, vehicle_id):
        """Verify ownership (circle leader of the owner's city, admin)"""
        return ownership.verify_vehicle(caller(), vehicle_id)


@vehicles.route("/vehicles/<vehicle_id>/reject")
class RejectVehicle(MethodView):
    decorators = [login_required]

    @vehicles.arguments(RejectSchema)
    @vehicles.response(200, VehicleSchema)
    @vehicles.alt_response(409, description="`not_pending`")
    @vehicles.doc(security=[{"bearer": []}])
    def post(self, data, vehicle_id):
        """Reject ownership (circle leader of the owner's city, admin)"""
        return ownership.reject_vehicle(caller(), vehicle_id, data["reason"])
