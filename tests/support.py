"""Helpers shared by the tests: polling with a deadline, counting MongoDB commands (the one
counter: `count_commands()` and the budgets' `within_budget()`), builders for people and
cities, and partner request signatures."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import itertools
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import requests
from bson import json_util
from itsdangerous import URLSafeSerializer
from pymongo import monitoring

from accounts import roles, services, sessions
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


def post_as_a_client_would(
    session: requests.Session,
    url: str,
    key: str,
    headers: dict[str, str],
    json: Any = None,
    attempts: int = 8,
) -> requests.Response:
    """POST as the API guide tells clients to: with an `Idempotency-Key`, and sent again
    with it after `Retry-After` and a random part of a second when the answer is 503 (a
    request past its database budget, which a loaded machine reaches under many concurrent
    requests; without the random part, they all come back together)."""
    for _ in range(attempts):
        response = session.post(
            url, headers={**headers, "Idempotency-Key": key}, json=json, timeout=120
        )
        if response.status_code != 503:
            break
        time.sleep(int(response.headers["Retry-After"]) + random.random())
    return response


# Connection set-up and clean-up, not round trips a code path chose to make.
_NOT_WORK = frozenset(
    {"hello", "isMaster", "ismaster", "saslStart", "saslContinue", "endSessions", "killCursors"}
)


@dataclass
class Commands:
    """The MongoDB commands started inside one `count_commands()` block, as "name target"
    ("find users", "commitTransaction admin")."""

    names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.names)


class CommandLog(monitoring.CommandListener):
    """pymongo command monitoring for the whole test process: conftest registers it before
    any client exists, so it sees the application's client too."""

    def __init__(self) -> None:
        self._open: list[Commands] = []
        self._lock = threading.Lock()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in _NOT_WORK:
            return
        target = event.command.get(event.command_name)
        name = f"{event.command_name} {target if isinstance(target, str) else event.database_name}"
        with self._lock:
            for commands in self._open:
                commands.names.append(name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    @contextlib.contextmanager
    def count(self) -> Iterator[Commands]:
        commands = Commands()
        with self._lock:
            self._open.append(commands)
        try:
            yield commands
        finally:
            with self._lock:
                self._open.remove(commands)


COMMAND_LOG = CommandLog()


def count_commands() -> contextlib.AbstractContextManager[Commands]:
    """Count the MongoDB commands a block makes, from any thread of this process:

    with count_commands() as commands:
        client.get("/api/v1/me", headers=person.headers)
    assert commands.names == ["find users", "find points_accounts"]
    """
    return COMMAND_LOG.count()


# Command budgets count the whole request, the one read that authenticates the caller
# included (a transaction's commit is a command). A domain's hot paths get a
# tests/<domain>/test_budgets.py (events' and loyalty's show the pattern): one test per path,
# realistic data, a warm process, the path's budget named beside it. A new domain starts
# from these and lowers them where it can; a path that needs more says why.
READ_BUDGET = 3  # the caller, then what the page shows
WRITE_BUDGET = 5  # the caller, the Idempotency-Key, a read, one command of writes, commit


@contextlib.contextmanager
def within_budget(budget: int) -> Iterator[Commands]:
    """Fail when the block makes more than `budget` MongoDB commands, naming them all (a
    transaction's commit is one; a transaction's first command carries its start):

    with within_budget(2):
        client.get("/api/v1/me", headers=person.headers)
    """
    with count_commands() as commands:
        yield commands
    assert len(commands) <= budget, (
        f"{len(commands)} MongoDB commands, over the budget of {budget}: {commands.names}"
    )


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
        roles.add_role_grant(user.pk, role, cities or [city])
        user.reload()
    return Person(user, sessions.start_session(user.pk, "tests")["access_token"])


def settled_in_city(person: Person, days: int) -> None:
    """Backdate when the person's city was set (and last changed, if it was), as if they
    had lived there `days` days."""
    person.user.reload()
    backdated = {"set__city_since": person.user.city_held_since - timedelta(days=days)}
    if person.user.city_changed_at:
        backdated["set__city_changed_at"] = person.user.city_changed_at - timedelta(days=days)
    User.objects(pk=person.user.pk).update_one(**backdated)
    person.user.reload()


def add_vehicle(
    client: Any, headers: dict[str, str], vin: str, model: str = "smart #1"
) -> dict[str, Any]:
    """A vehicle added through the API by the owner whose headers these are, awaiting
    review."""
    answer = client.post("/api/v1/me/vehicles", headers=headers, json={"vin": vin, "model": model})
    assert answer.status_code == 201, answer.json
    return answer.json


def partner_signature(secret: str, stamp: str, raw: bytes) -> str:
    """`X-Signature` as docs/api-guide.md defines it: the hex HMAC-SHA256, keyed with the
    partner's secret, of `<X-Timestamp>.<raw body>`."""
    return hmac.new(secret.encode(), stamp.encode() + b"." + raw, hashlib.sha256).hexdigest()


@contextlib.contextmanager
def calls_counted(*functions: Callable[..., Any]) -> Iterator[list[int]]:
    """A one-item list: how many times any of `functions` was called on this thread while
    the block ran (where the Flask test client runs a request), counted by a profile hook,
    so nothing is patched."""
    codes = {function.__code__ for function in functions}
    counted = [0]
    previous = sys.getprofile()  # an enclosing count's: it goes on counting

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code in codes:
            counted[0] += 1
        if previous is not None:
            previous(frame, event, arg)

    sys.setprofile(profile)
    try:
        yield counted
    finally:
        sys.setprofile(previous)


def pages_as_text(client: Any, url: str, person: Person, cursors: URLSafeSerializer) -> list[str]:
    """Each page of the list at `url` (a query string's, so the cursor follows with `&`),
    following its cursors, as comparable text: `person`'s id and each cursor (signed with
    the run's key) put by what it holds, for answers recorded in an earlier run."""
    pages, cursor = [], None
    while True:
        answer = client.get(url + (f"&cursor={cursor}" if cursor else ""), headers=person.headers)
        assert answer.status_code == 200, answer.json
        body = answer.get_data(as_text=True).replace(person.id, "<caller>")
        cursor = answer.json["next_cursor"]
        if cursor is not None:
            body = body.replace(cursor, json_util.dumps(cursors.loads(cursor)))
        pages.append(body)
        if cursor is None:
            return pages
