"""Random earns, redemptions, cancellations, admin reversals, clock jumps with expiry, and
replays against the real service, compared after every step with a small reference model of
lots."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from app.auth import load_caller
from app.errors import Conflict
from loyalty import adjustments, balances, expiry, ledger, points_account, reconciliation, rewards
from loyalty.models import LedgerEntry, Lot, PointsAccount, Redemption, Reward
from tests.loyalty.conftest import T0, assert_invariants, earn, make_reward
from tests.support import make_person

COST = 7
STOCK = 6


@dataclass
class ModelLot:
    seq: int
    expires_at: datetime
    remaining: int
    # The earn entry that opened the lot, its points, and whether an admin reversed it.
    entry_id: str
    amount: int
    earned_at: datetime
    reversed: bool = False


@dataclass
class Model:
    now: datetime = T0
    lots: list[ModelLot] = field(default_factory=list)
    stock: int = STOCK
    keys: set[str] = field(default_factory=set)
    # Pending redemptions: (service id, quantity, [(lot seq, points)]).
    pending: list[tuple[str, int, list[tuple[int, int]]]] = field(default_factory=list)

    @property
    def balance(self) -> int:
        return sum(lot.remaining for lot in self.lots)

    def spend(self, points: int) -> list[tuple[int, int]]:
        taken = []
        for lot in sorted(self.lots, key=lambda lot: (lot.expires_at, lot.seq)):
            take = min(points, lot.remaining)
            if take:
                lot.remaining -= take
                taken.append((lot.seq, take))
                points -= take
        return taken


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        # Each example starts from an empty ledger: the expiry job sweeps every account.
        for document in (LedgerEntry, Lot, PointsAccount, Redemption, Reward):
            document._get_collection().delete_many({})
        self.owner = make_person("SZ")
        self.admin = load_caller(make_person("SZ", role="admin").id)
        self.reward = make_reward(cost=COST, stock=STOCK)
        self.model = Model()

    @rule(points=st.integers(1, 40), key=st.sampled_from(["a", "b", "c", "d", "e", "f"]))
    def earn(self, points: int, key: str) -> None:
        entry = earn(self.owner.id, points, now=self.model.now, key=f"{self.owner.id}:{key}")
        if key in self.model.keys:
            return  # a replay: the first entry, nothing new
        self.model.keys.add(key)
        self.model.lots.append(
            ModelLot(
                len(self.model.lots),
                ledger.add_months(self.model.now, 24),
                points,
                str(entry["_id"]),
                points,
                self.model.now,
            )
        )
        assert entry["amount"] == points

    @rule(quantity=st.integers(1, 3))
    def redeem(self, quantity: int) -> None:
        try:
            redemption = rewards.redeem(
                self.owner.user, str(self.reward.pk), quantity, now=self.model.now
            )
        except Conflict as refused:
            expected = "out_of_stock" if self.model.stock < quantity else "insufficient_points"
            assert refused.error == expected
            assert self.model.stock < quantity or self.model.balance < COST * quantity
            return
        assert self.model.stock >= quantity and self.model.balance >= COST * quantity
        self.model.stock -= quantity
        self.model.pending.append((str(redemption.pk), quantity, self.model.spend(COST * quantity)))

    @precondition(lambda self: self.model.pending)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, len(self.model.pending) - 1))
        redemption_id, quantity, taken = self.model.pending.pop(index)
        rewards.cancel_redemption(load_caller(self.owner.id), redemption_id, now=self.model.now)
        self.model.stock += quantity
        for seq, points in taken:
            self.model.lots[seq].remaining += points

    @precondition(lambda self: self.model.lots)
    @rule(data=st.data())
    def reverse(self, data: st.DataObject) -> None:
        lot = data.draw(st.sampled_from(self.model.lots))
        try:
            adjustments.reverse_entry(self.admin, lot.entry_id, "Mistake", now=self.model.now)
        except Conflict as refused:
            assert refused.error == ("already_reversed" if lot.reversed else "insufficient_points")
            assert lot.reversed or self.model.balance < lot.amount
            return
        assert not lot.reversed and self.model.balance >= lot.amount
        lot.reversed = True
        # What is left of its own lot first, then oldest expiry first.
        own = min(lot.remaining, lot.amount)
        lot.remaining -= own
        self.model.spend(lot.amount - own)

    @rule(days=st.integers(1, 400))
    def time_passes_and_lots_expire(self, days: int) -> None:
        self.model.now += timedelta(days=days)
        expired = expiry.expire_due(now=self.model.now)
        due = [lot for lot in self.model.lots if lot.expires_at <= self.model.now and lot.remaining]
        assert expired == len(due)
        for lot in due:
            lot.remaining = 0

    @invariant()
    def matches_the_model(self) -> None:
        assert assert_invariants(self.owner.id) == self.model.balance
        lots = Lot.objects(account_id=self.owner.user.pk).order_by("id")
        assert [lot.remaining for lot in lots] == [lot.remaining for lot in self.model.lots]
        assert Reward.objects.get(pk=self.reward.pk).stock == self.model.stock

    @invariant()
    def cached_figures_match_the_history(self) -> None:
        # What the account caches (tier figure, points expiring soon) is what the history
        # says at the model's time, and reconciliation finds nothing to repair.
        now = self.model.now
        horizon = now + points_account.EXPIRING_WINDOW
        expiring: dict[datetime, int] = {}
        for lot in self.model.lots:
            if lot.remaining and lot.expires_at <= horizon:
                expiring[lot.expires_at] = expiring.get(lot.expires_at, 0) + lot.remaining
        summary = balances.points_summary(self.owner.id, now=now)
        assert summary["tier_points"] == sum(
            lot.amount
            for lot in self.model.lots
            if not lot.reversed and lot.earned_at > now - points_account.TIER_WINDOW
        )
        assert summary["expiring"] == [
            {"points": points, "expires_at": date} for date, points in sorted(expiring.items())
        ]
        assert reconciliation.check_account(self.owner.user.pk, now)[1] is None


@pytest.mark.slow
def test_ledger_matches_a_reference_model(app):
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=25,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
