"""Helpers for the consoles' tests: signing a person in (a console session of their
account, as the sign-in form opens one, without hashing a password), the CSRF token a page
carries, and a page's MongoDB command count (`page_within_budget`)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from accounts import sessions
from app.clock import utcnow
from partners.budget import add_allocation
from partners.services import contract_partner
from tests.support import Person, make_city, within_budget

CONSOLE = "/console"
_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def sign_in(client: Any, person: Person) -> str:
    """Sign `person` in to the console on `client`; returns their console session's id."""
    session_id, _ = sessions.open_session(person.user.pk, "Console: tests")
    with client.session_transaction(f"{CONSOLE}/") as cookie:
        cookie.clear()
        cookie.update(uid=person.id, sid=session_id, at=utcnow().timestamp())
    return session_id


def csrf_token(client: Any, path: str = f"{CONSOLE}/sign-in") -> str:
    """The CSRF token a page of the console carries for this client's session."""
    page = client.get(path, follow_redirects=True)
    found = _CSRF.search(page.get_data(as_text=True))
    assert found, page.get_data(as_text=True)[:500]
    return found.group(1)


def post(client: Any, path: str, data: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """Submit a console form with its CSRF token."""
    return client.post(path, data={"csrf_token": csrf_token(client), **(data or {})}, **kwargs)


def page_within_budget(client: Any, path: str, budget: int, status: int = 200) -> Any:
    """Open a page (warmed once: what every process keeps, such as time zones, is read) and
    fail when it makes more than `budget` MongoDB commands, naming them."""
    client.get(path)
    with within_budget(budget) as commands:
        page = client.get(path)
    assert page.status_code == status, (path, page.status_code, page.get_data(as_text=True)[:300])
    page.commands = len(commands)
    page.command_names = commands.names
    return page


def cd_partner(name: str = "CD Motors", days_running: int = 10) -> Any:
    """A partner running CD (made if missing) for the last `days_running` days."""
    make_city("CD")
    today = utcnow().date()
    return contract_partner(
        name=name,
        contact="ops@cd.example.com",
        city_code="CD",
        contract_start=today - timedelta(days=days_running),
        contract_end=today + timedelta(days=300),
    )


def sz_partner(points: int = 20_000) -> Any:
    """SZ Motors, the partner running SZ since three months ago (its leaders work for it),
    with `points` of budget this month and next."""
    today = utcnow().date()
    partner = contract_partner(
        name="SZ Motors",
        contact="ops@szmotors.example.com",
        city_code="SZ",
        contract_start=today - timedelta(days=90),
        contract_end=today + timedelta(days=365),
    )
    for days in (0, 35):
        add_allocation(partner, (utcnow() + timedelta(days=days)).strftime("%Y-%m"), points)
    return partner
