"""Bootstrap data for accounts: the first admin and the demo world's people."""

from __future__ import annotations

from datetime import timedelta

from accounts import credentials, ownership, roles, services
from accounts.models import (
    ADMIN,
    AMBASSADOR,
    CIRCLE_LEADER,
    DEFAULT_TIMEZONE,
    City,
    RoleGrant,
    User,
    Vehicle,
)
from app.auth import Caller, load_caller
from app.clock import utcnow

DEMO_CITIES = (
    ("SZ", "Shenzhen", "Guangdong"),
    ("CD", "Chengdu", "Sichuan"),
    ("GZ", "Guangzhou", "Guangdong"),
    ("XN", "Xining", "Qinghai"),
)
DEMO_PASSWORD = "demo-password-1"
_DEMO_VINS = ("LSJA24U69MS0", "LSJA24U69MS1")
DEMO_ACCOUNT_AGE = timedelta(days=120)


def ensure_city(code: str, name: str, province: str) -> City:
    return City.objects(code=code).first() or services.create_city(
        code, name, province, DEFAULT_TIMEZONE
    )


def ensure_admin(email: str, password: str, city_code: str) -> tuple[User, bool]:
    """Create an admin, or reset the password and admin grant of an existing account."""
    if not City.objects(code=city_code).first():
        name = dict((c, n) for c, n, _ in DEMO_CITIES).get(city_code, city_code)
        ensure_city(city_code, name, "-")
    user = User.objects(email=credentials.normalise_email(email)).first()
    created = user is None
    if created:
        user = services.register(
            email=email, password=password, display_name="Admin", city_code=city_code
        )
    else:
        User.objects(pk=user.pk).update_one(
            set__password_hash=credentials.hash_password(password), unset__erased_at=True
        )
    if not RoleGrant.objects(user_id=user.pk, role=ADMIN).first():
        roles.add_role_grant(user.pk, ADMIN, [])
    return user, created


def _ensure_user(email: str, name: str, city_code: str) -> User:
    """A demo account, made as an established one: signed up and settled in its city
    DEMO_ACCOUNT_AGE ago, past the new-account limits (3 posts a day) and a city's 30 days
    before its own rewards, as the owners a demo stands for would be."""
    found = User.objects(email=email).first()
    if found is not None:
        return found
    user = services.register(
        email=email, password=DEMO_PASSWORD, display_name=name, city_code=city_code
    )
    since = utcnow() - DEMO_ACCOUNT_AGE
    User.objects(pk=user.pk).update_one(set__created_at=since, set__city_since=since)
    user.reload()
    return user


def demo_leader(city_code: str) -> Caller | None:
    """The demo circle leader of a city, as a caller: other domains' demo data is theirs."""
    leader = User.objects(email=f"circle-leader.{city_code.lower()}@demo.example").first()
    return load_caller(leader.pk) if leader else None


def demo_owner(city_code: str, number: int) -> Caller | None:
    """Demo owner `number` (1 or 2) of a city, as a caller."""
    owner = User.objects(email=f"owner{number}.{city_code.lower()}@demo.example").first()
    return load_caller(owner.pk) if owner else None


def seed_people() -> list[str]:
    """Cities, a circle leader and an ambassador per city, and owners with vehicles; the
    lines name every demo account, so that one can sign in as any of them."""
    lines = []
    accounts = []
    for index, (code, name, province) in enumerate(DEMO_CITIES):
        ensure_city(code, name, province)
        slug = code.lower()
        for role in (CIRCLE_LEADER, AMBASSADOR):
            staff = _ensure_user(
                f"{role.replace('_', '-')}.{slug}@demo.example",
                f"{name} {role.replace('_', ' ')}",
                code,
            )
            if not RoleGrant.objects(user_id=staff.pk, role=role).first():
                roles.add_role_grant(staff.pk, role, [code])
            accounts.append((staff.email, role, code))
        for number, vin_prefix in enumerate(_DEMO_VINS, start=1):
            owner = _ensure_user(
                f"owner{number}.{slug}@demo.example", f"{name} owner {number}", code
            )
            vin = f"{vin_prefix}{index:05d}"
            if not Vehicle.objects(vin=vin).first():
                ownership.add_vehicle(owner, vin, "smart #1" if number == 1 else "smart #3", None)
            accounts.append((owner.email, "owner", code))
        lines.append(f"city {code}: leader, ambassador, 2 owners with pending vehicles")
    lines.append(f"demo accounts, all with the password {DEMO_PASSWORD!r}:")
    width = max(len(email) for email, _, _ in accounts)
    lines += [f"  {email:<{width}}  {role} in {code}" for email, role, code in accounts]
    lines.append("staff (leaders, ambassadors, admins) sign in to the console at /console/")
    return lines
