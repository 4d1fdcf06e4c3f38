"""Command budgets of what every request shares (STYLE.md habit 14), counted with pymongo
command monitoring: authentication and the profile. The domains' hot paths have theirs in
tests/<domain>/test_budgets.py; tests/support.py says how budgets count. A change that adds
a round trip to one of these paths must say why."""

from __future__ import annotations

from tests.loyalty.conftest import earn
from tests.support import count_commands, make_person, within_budget

API = "/api/v1"

# What authenticating a request may cost: the one read of the account, which carries its
# grants and live sessions.
AUTHENTICATION = ["find users"]


def test_the_harness_counts_the_apps_commands_and_names_them(client):
    make_person()
    with count_commands() as commands:
        assert client.get(f"{API}/cities").status_code == 200
    assert commands.names == ["find cities"]


def test_an_authenticated_request_costs_one_read_before_its_own_work(client):
    # /me/sessions does no work of its own: everything it shows came with the caller.
    owner = make_person()
    leader = make_person(role="circle_leader", cities=["SZ", "CD"])
    for person in (owner, leader):
        with count_commands() as commands:
            response = client.get(f"{API}/me/sessions", headers=person.headers)
        assert response.status_code == 200
        assert commands.names == AUTHENTICATION


def test_the_profile_reads_the_account_and_the_points_account(client):
    # The tier is on the points account (loyalty's cached figure), not summed from the
    # ledger.
    owner = make_person(role="ambassador")
    earn(owner.id, 2_500)
    with within_budget(2) as commands:
        me = client.get(f"{API}/me", headers=owner.headers)
    assert (me.json["roles"], me.json["tier"]) == (["ambassador", "owner"], "silver")
    assert commands.names == [*AUTHENTICATION, "find points_accounts"]


def test_a_refused_token_costs_nothing(client):
    with count_commands() as commands:
        response = client.get(f"{API}/me", headers={"Authorization": "Bearer not-a-token"})
    assert response.status_code == 401
    assert commands.names == []
