"""Accounts: users, role grants, cities and vehicles."""

from __future__ import annotations

import secrets
from datetime import datetime

from mongoengine import (
    BooleanField,
    DateField,
    DateTimeField,
    Document,
    EmbeddedDocument,
    EmbeddedDocumentField,
    EmbeddedDocumentListField,
    IntField,
    ListField,
    ObjectIdField,
    StringField,
)
from mongoengine.queryset import QuerySet

from app.auth import ADMIN
from app.clock import utcnow

OWNER = "owner"
CIRCLE_LEADER = "circle_leader"
AMBASSADOR = "ambassador"
# ADMIN, the role that acts in every city, is the base's (`app.auth`): its authorisation
# knows it.
GRANTABLE_ROLES = (CIRCLE_LEADER, AMBASSADOR, ADMIN)
LOCALES = ("zh-CN", "en")

# Where a city gives no time zone (every market so far is on China time).
DEFAULT_TIMEZONE = "Asia/Shanghai"

# Live device sessions kept per account; a new login beyond this ends the oldest.
MAX_SESSIONS = 10

VEHICLE_PENDING = "pending"
VEHICLE_VERIFIED = "verified"
VEHICLE_REJECTED = "rejected"


def new_referral_code() -> str:
    # 8 characters of an unambiguous alphabet: easy to read out, ~10^12 codes.
    alphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
    return "".join(secrets.choice(alphabet) for _ in range(8))


class City(Document):
    code = StringField(required=True, unique=True, regex=r"^[A-Z]{2,8}\Z")
    name = StringField(required=True, max_length=100)
    province = StringField(required=True, max_length=100)
    timezone = StringField(required=True, default=DEFAULT_TIMEZONE)
    created_at = DateTimeField(default=utcnow)

    meta = {"collection": "cities", "indexes": []}


class Grant(EmbeddedDocument):
    """A copy of one RoleGrant on its user, written in the same transaction as the grant,
    so the caller's roles come with the one read of the account each request makes."""

    grant_id = ObjectIdField(required=True)
    role = StringField(required=True, choices=GRANTABLE_ROLES)
    city_codes = ListField(StringField(), default=list)


class DeviceSession(EmbeddedDocument):
    """One login on one device. Its access tokens carry `sid`; its one valid refresh
    token is the one whose id hashes to `refresh_hash`, and each refresh replaces it."""

    sid = StringField(required=True)
    device = StringField(max_length=200)
    refresh_hash = StringField(required=True)
    created_at = DateTimeField(required=True)
    last_used_at = DateTimeField(required=True)
    # The refresh token spent last, and when: presented again within the grace
    # (REFRESH_REUSE_GRACE_SECONDS) it is a concurrent refresh, not a theft.
    previous_refresh_hash = StringField()
    rotated_at = DateTimeField()


class PasswordReset(EmbeddedDocument):
    """The one pending password-reset code: only its keyed hash is kept."""

    code_hash = StringField(required=True)
    expires_at = DateTimeField(required=True)
    tries_left = IntField(required=True)


# The accounts that count: an erased account keeps its row (ledger totals and event figures
# point at it) but is nobody any more. For queries through pymongo (inside a transaction).
NOT_ERASED = {"erased_at": None}


class UserQuerySet(QuerySet):
    def active(self) -> QuerySet:
        """Accounts that were not erased."""
        return self.filter(__raw__=NOT_ERASED)


class User(Document):
    email = StringField(unique=True, sparse=True)
    phone = StringField(unique=True, sparse=True)
    password_hash = StringField(required=True)
    display_name = StringField(required=True, max_length=50)
    avatar_url = StringField(max_length=500)
    city_code = StringField(required=True)
    # When the owner's city was set (sign-up, or the last change): a city's own rewards
    # wait for owners new to it. Accounts from before it was kept read it as sign-up.
    city_since = DateTimeField()
    # The owner's last change of city (none at sign-up, so a wrong city picked at sign-up
    # is mended at once): the next change waits CITY_CHANGE_INTERVAL.
    city_changed_at = DateTimeField()
    locale = StringField(default="zh-CN", choices=LOCALES)
    verified_owner = BooleanField(default=False)
    referral_code = StringField(required=True, unique=True, default=new_referral_code)
    referred_by = ObjectIdField()
    created_at = DateTimeField(default=utcnow)
    erased_at = DateTimeField()
    # Set by moderation: until then the account can neither log in nor use its tokens.
    banned_until = DateTimeField()
    # Set by moderation (community's copy, read with the caller): until then the owner
    # neither posts, comments, likes nor joins clubs, and their reports weigh nothing.
    muted_until = DateTimeField()
    # A keyed hash of the IP and device name the account signed up from, kept
    # CLIENT_FINGERPRINT_DAYS: accounts from one client count once among the reporters of
    # one post (`community.reports`).
    client_fingerprint = StringField()
    grants = EmbeddedDocumentListField(Grant)
    # Bounded by MAX_SESSIONS, oldest first; an ended session is removed.
    sessions = EmbeddedDocumentListField(DeviceSession)
    password_reset = EmbeddedDocumentField(PasswordReset)

    @property
    def city_held_since(self) -> datetime:
        return self.city_since or self.created_at

    meta = {
        "collection": "users",
        "queryset_class": UserQuerySet,
        "indexes": [
            ("city_code", "created_at"),
            ("city_code", "verified_owner"),
            ("referred_by", "verified_owner"),
        ],
    }

    @property
    def active(self) -> bool:
        return self.erased_at is None

    def banned(self, now: datetime) -> bool:
        return self.banned_until is not None and self.banned_until > now

    def muted(self, now: datetime) -> bool:
        return self.muted_until is not None and self.muted_until > now


class RoleGrant(Document):
    """The record of a grant (its id is the API's); `User.grants` holds its copy."""

    user_id = ObjectIdField(required=True)
    role = StringField(required=True, choices=GRANTABLE_ROLES)
    city_codes = ListField(StringField(), default=list)
    granted_by = ObjectIdField()
    created_at = DateTimeField(default=utcnow)

    meta = {"collection": "role_grants", "indexes": ["user_id", "city_codes"]}


class Vehicle(Document):
    owner_id = ObjectIdField(required=True)
    vin = StringField(required=True, unique=True)
    model = StringField(required=True, max_length=100)
    delivered_on = DateField()
    # The owner's city when the vehicle was added: it routes the verification to that
    # city's circle leaders.
    city_code = StringField(required=True)
    status = StringField(
        required=True,
        default=VEHICLE_PENDING,
        choices=(VEHICLE_PENDING, VEHICLE_VERIFIED, VEHICLE_REJECTED),
    )
    reviewed_by = ObjectIdField()
    reviewed_at = DateTimeField()
    rejection_reason = StringField(max_length=500)
    created_at = DateTimeField(default=utcnow)

    meta = {
        "collection": "vehicles",
        "indexes": [
            ("owner_id", "-created_at"),
            ("status", "city_code", "created_at"),
        ],
    }
