"""Command budgets of a drop's hot paths (tests/support.py says how they count): entering,
an entry's retry, polling one's entry and reading the drop. Entering writes one document
and reads nothing shared: the drop's rules are kept by each process from its first entry."""

from __future__ import annotations

from tests.drops.conftest import API, entrants
from tests.support import READ_BUDGET, WRITE_BUDGET, within_budget

# The caller, the points account (tier, and points less those held), the insert of the
# owner's entry with its key: no transaction, no key record, no counter.
REWARD_ENTRY = WRITE_BUDGET - 2
# The caller and the insert.
EVENT_ENTRY = REWARD_ENTRY - 1
# The same reads; the insert fails on the owner's entry, which is read and answered.
RETRY = REWARD_ENTRY + 1
# The caller and the entry: what the job decided is written on it.
POLL = READ_BUDGET - 1
# The caller and the drop, its figures so far on it.
DROP_PAGE = READ_BUDGET - 1


def test_entering_a_reward_drop_retrying_and_polling(client, reward_drop):
    drop = reward_drop(mode="draw")
    first, owner = entrants(2, points=500)
    path = f"{API}/drops/{drop.pk}/entries"
    client.post(path, headers=first.headers)  # this process reads the drop's rules once
    headers = {**owner.headers, "Idempotency-Key": "enter-once"}
    with within_budget(REWARD_ENTRY):
        entered = client.post(path, headers=headers)
    assert entered.status_code == 202, entered.json
    with within_budget(RETRY):
        retry = client.post(path, headers=headers)
    assert retry.get_data() == entered.get_data()
    with within_budget(POLL):
        mine = client.get(f"{path}/me", headers=owner.headers)
    assert mine.json["status"] == "entered"
    with within_budget(DROP_PAGE):
        shown = client.get(f"{API}/drops/{drop.pk}", headers=owner.headers)
    assert shown.json["seed_hash"] == drop.seed_hash


def test_entering_an_event_drop(client, event_drop):
    drop = event_drop()
    first, owner = entrants(2)
    path = f"{API}/drops/{drop.pk}/entries"
    client.post(path, headers=first.headers)
    with within_budget(EVENT_ENTRY) as commands:
        entered = client.post(path, headers={**owner.headers, "Idempotency-Key": "k"})
    assert entered.status_code == 202, entered.json
    assert commands.names == ["find users", "insert drop_entries"]
