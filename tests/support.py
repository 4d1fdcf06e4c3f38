"""Helpers shared by the tests: polling with a deadline, and builders for people and cities."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from accounts import services
from accounts.models import City, User

_sequence = itertools.count(1)


def wait_until(
    predicate: Callable[[], Any],
    timeout: float = 30.0,
    interval: float = 0.05,
    message: str = "condition",
) -> Any:
    """Poll `predicate` until it returns something truthy, or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def make_city(code: str = "SZ", name: str | None = None, timezone: str = "Asia/Shanghai") -> City:
    return City.objects(code=code).first() or services.create_city(
        code, name or code, "Province", timezone
    )


@dataclass
class Person:
    user: User
    token: str

    @property
    def id(self) -> str:
        return str(self.user.pk)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def make_person(
    city: str = "SZ",
    role: str | None = None,
    cities: list[str] | None = None,
    verified_owner: bool = False,
    **fields: Any,
) -> Person:
    """A user with the access token of a live session; `role` grants
    circle_leader/ambassador (in `cities`, default the home city) or admin."""
    make_city(city)
    number = next(_sequence)
    user = services.register(
        email=fields.pop("email", f"user{number}@example.com"),
        password=fields.pop("password", "password-123"),
        display_name=fields.pop("display_name", f"User {number}"),
        city_code=city,
        **fields,
    )
    if verified_owner:
        User.objects(pk=user.pk).update_one(set__verified_owner=True)
        user.reload()
    if role:
        for code in cities or []:
            make_city(code)
        services.add_role_grant(user.pk, role, cities or [city])
        user.reload()
    return Person(user, services.start_session(user.pk, "tests")["access_token"])
