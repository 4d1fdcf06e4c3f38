"""A drop's job as the workers really run it: entries arriving while passes run, passes of
two chains (a retried message, the sweep's) at once or one after another, a chain that dies
holding the lease, an entrant banned before their turn, and `drop.entries_decided`
delivered again and again. After every step: no place given beyond the quantity, every
winner's redemption made once, the stock and each owner's points and holds where the
decisions put them, nobody told twice. At the end: the places went in the drop's order
(arrival, or the revealed draw), and every entrant was told exactly once."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from accounts.models import User
from app.auth import load_caller
from app.clock import utcnow
from drops import allocation, draw, entries, errors, launch
from drops.models import DRAW, FIRST_COME, Drop, Entry
from drops.organiser_figures import told_of
from loyalty.models import PointsAccount, Redemption, Reward
from notifications.models import Notification
from tests.drops.conftest import close, drop_fields, entrants
from tests.events.conftest import as_caller, deliver
from tests.loyalty.conftest import assert_invariants
from tests.support import make_person

OWNERS = 6
QUANTITY = 3
STOCK = 10
COST = 40
POINTS = 100
TOLD = ("drop_won", "drop_lost", "drop_refused")


class DropMachine(RuleBasedStateMachine):
    @initialize(mode=st.sampled_from([FIRST_COME, DRAW]))
    def a_drop_opens(self, mode: str) -> None:
        admin = make_person("SZ", role="admin")
        reward = Reward(title="Cap", cost=COST, stock=STOCK, fulfillment="shipping").save()
        fields = drop_fields("reward", reward.pk, {"quantity": QUANTITY, "mode": mode})
        self.drop = launch.create_drop(load_caller(admin.id), **fields)
        self.people = entrants(OWNERS, points=POINTS)
        self.entered: set[int] = set()
        self.banned: set[int] = set()
        self.closed = False

    @precondition(lambda self: not self.closed)
    @rule(owner=st.integers(0, OWNERS - 1))
    def an_owner_enters(self, owner: int) -> None:
        if owner in self.banned:
            return  # refused at the door (403 `account_banned`), before the service
        person = self.people[owner]
        try:
            entries.enter(as_caller(person), str(self.drop.pk))
        except errors.AlreadyEntered:
            assert owner in self.entered
        else:
            assert owner not in self.entered
            self.entered.add(owner)

    @rule(owner=st.integers(0, OWNERS - 1))
    def an_owner_is_banned(self, owner: int) -> None:
        User.objects(pk=self.people[owner].user.pk).update_one(
            set__banned_until=utcnow() + timedelta(days=7)
        )
        self.banned.add(owner)

    @rule(chain=st.sampled_from(["a", "b"]))
    def a_pass_runs(self, chain: str) -> None:
        allocation.run(self.drop.pk, chain)

    @rule()
    def the_chain_holding_the_drop_dies(self) -> None:
        Drop.objects(pk=self.drop.pk).update_one(set__lease_until=utcnow() - timedelta(1))

    @rule()
    def the_decisions_are_told_again(self) -> None:
        deliver("drop.entries_decided")

    @precondition(lambda self: not self.closed)
    @rule()
    def the_drop_closes(self) -> None:
        close(self.drop)
        self.closed = True

    @invariant()
    def no_place_is_given_twice_nor_beyond_the_quantity(self) -> None:
        drop = Drop.objects.get(pk=self.drop.pk)
        won = list(Entry.objects(drop_id=drop.pk, status="won"))
        assert drop.allocated <= QUANTITY and len(won) <= drop.allocated
        made = {r.pk: r.user_id for r in Redemption.objects(reward_id=drop.target_id)}
        assert {entry.made_id: entry.user_id for entry in won} == made
        assert Reward.objects.get(pk=drop.target_id).stock == STOCK - len(won)

    @invariant()
    def points_and_holds_follow_the_decisions(self) -> None:
        statuses = {e.user_id: e.status for e in Entry.objects(drop_id=self.drop.pk)}
        for person in self.people:
            status = statuses.get(person.user.pk)
            balance = assert_invariants(person.id)
            assert balance == POINTS - (COST if status == "won" else 0)
            account = PointsAccount.objects.get(pk=person.user.pk)
            held = account.holds.get(f"drop:{self.drop.pk}", 0)
            assert (account.held or 0) == held
            assert held in ((0, COST) if status == "entered" else (0,))

    @invariant()
    def nobody_is_told_twice(self) -> None:
        told = self.told()
        assert set(told.values()) <= {1}
        assert told_of(self.drop.pk)[0] == len(told)

    def told(self) -> Counter:
        owners = [person.user.pk for person in self.people]
        return Counter(
            n.user_id for n in Notification.objects(user_id__in=owners, template__in=TOLD)
        )

    def check_the_end(self) -> None:
        """Close, let the job finish however it stood, tell everyone, and check the order."""
        if not self.closed:
            self.the_drop_closes()
        self.the_chain_holding_the_drop_dies()
        for _ in range(20):
            if allocation.run(self.drop.pk, "sweep") is None:
                break
        self.the_decisions_are_told_again()
        drop = Drop.objects.get(pk=self.drop.pk)
        assert drop.status == "decided"
        stored = [e.to_mongo().to_dict() for e in Entry.objects(drop_id=drop.pk)]
        if drop.mode == DRAW:
            assert draw.seed_hash(drop.seed) == drop.seed_hash
            order = draw.draw_order(drop.seed, stored)
        else:
            order = draw.arrival_order(stored)
        served = [entry["status"] for entry in order if entry["status"] != "refused"]
        places = min(QUANTITY, len(served))
        assert served == ["won"] * places + ["lost"] * (len(served) - places)
        assert all(e["reason"] == "entrant_unavailable" for e in order if e["status"] == "refused")
        assert self.told() == Counter(entry["user_id"] for entry in order)
        self.points_and_holds_follow_the_decisions()

    def teardown(self) -> None:
        if hasattr(self, "drop"):
            self.check_the_end()


@pytest.mark.slow
def test_a_drop_job_run_any_way_ends_as_its_order_says(app, monkeypatch):
    # Passes read every entry stored by now: the settle time waits for entries still in
    # flight in other API processes, and here every entry is stored before a pass runs.
    monkeypatch.setattr(allocation, "settle_time", lambda: timedelta(0))
    run_state_machine_as_test(
        DropMachine,
        settings=settings(
            max_examples=15,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
