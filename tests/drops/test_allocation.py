"""The drop's job through the services: first come in the order of arrival, a draw in the
order its revealed seed gives, refusals passing their place on, points held and released,
and no place given twice however the job's passes run."""

from __future__ import annotations

from datetime import timedelta

from app.clock import utcnow
from drops import allocation, draw
from drops.models import Drop, Entry
from drops.organiser_figures import told_of
from loyalty import holds
from loyalty.models import PointsAccount, Redemption, Reward
from notifications.models import Notification
from tests.drops.conftest import close, enter_all, entrants, outcomes, run_job
from tests.loyalty.conftest import assert_invariants


def test_first_come_serves_entries_in_the_order_they_arrived(reward_drop):
    drop = reward_drop(stock=20, cost=100, quantity=5)
    people = entrants(12, points=150)
    enter_all(drop, people)
    close(drop)
    run_job(drop)

    arrived = [entry.user_id for entry in Entry.objects(drop_id=drop.pk).order_by("arrival")]
    decided = outcomes(drop)
    assert [decided[user] for user in arrived] == ["won"] * 5 + ["lost"] * 7
    assert Redemption.objects(reward_id=drop.target_id).count() == 5
    reward = Reward.objects.get(pk=drop.target_id)
    assert reward.stock == 15 and reward.drop_id is None  # released to everyone again
    for person in people:
        assert assert_invariants(person.id) == (50 if person.user.pk in arrived[:5] else 150)
    assert (drop.status, drop.won, drop.lost, drop.allocated) == ("decided", 5, 7, 5)
    assert told_of(drop.pk)[0] == 12
    assert Notification.objects(template="drop_won").count() == 5
    assert Notification.objects(template="drop_lost").count() == 7
    positions = {e.user_id: e.position for e in Entry.objects(drop_id=drop.pk, status="won")}
    assert sorted(positions.values()) == [1, 2, 3, 4, 5]


def test_a_draw_serves_the_order_its_published_seed_gives(reward_drop):
    drop = reward_drop(stock=20, cost=100, quantity=4, mode="draw")
    published = drop.seed_hash
    people = entrants(10, points=100)
    enter_all(drop, people)
    # Entries settled while the drop is open: the job holds their points.
    Entry.objects(drop_id=drop.pk).update(dec__arrival=30_000_000)
    run_job(drop, passes=1)
    key = f"drop:{drop.pk}"
    held = {
        a.pk: a.holds.get(key) for a in PointsAccount.objects(pk__in=[p.user.pk for p in people])
    }
    assert set(held.values()) == {100}
    close(drop)
    run_job(drop)

    assert drop.seed is not None and draw.seed_hash(drop.seed) == published
    entries = [e.to_mongo().to_dict() for e in Entry.objects(drop_id=drop.pk)]
    order = [e["user_id"] for e in draw.draw_order(drop.seed, entries)]
    decided = outcomes(drop)
    assert [decided[user] for user in order] == ["won"] * 4 + ["lost"] * 6
    for account in PointsAccount.objects(pk__in=[p.user.pk for p in people]):
        assert not account.holds and not account.held  # spent by the winners, released
        assert assert_invariants(account.pk) == (0 if account.pk in order[:4] else 100)


def test_a_refused_entry_passes_its_place_to_the_next_in_order(reward_drop):
    drop = reward_drop(stock=20, cost=100, quantity=2)
    first, spender, banned, fourth, fifth = entrants(5, points=100)
    enter_all(drop, [first, spender, banned, fourth, fifth])
    # Before their turn: one spends the points elsewhere, one is banned.
    PointsAccount.objects(pk=spender.user.pk).update_one(set__balance=0)
    banned.user.update(set__banned_until=utcnow() + timedelta(days=3))
    close(drop)
    run_job(drop)

    assert outcomes(drop) == {
        first.user.pk: "won",
        spender.user.pk: "refused",
        banned.user.pk: "refused",
        fourth.user.pk: "won",
        fifth.user.pk: "lost",
    }
    reasons = {e.user_id: e.reason for e in Entry.objects(drop_id=drop.pk, status="refused")}
    assert reasons == {
        spender.user.pk: "insufficient_points",
        banned.user.pk: "entrant_unavailable",
    }
    assert Drop.objects.get(pk=drop.pk).refused == {
        "insufficient_points": 1,
        "entrant_unavailable": 1,
    }
    told = {n.user_id: n.data["reason"] for n in Notification.objects(template="drop_refused")}
    assert told == reasons


def test_passes_out_of_time_hand_over_and_the_drop_still_ends_right(reward_drop, monkeypatch):
    """A pass that runs out of time stops after a batch and the next goes on from there:
    here every pass is out of time at once, and batches are tiny."""
    monkeypatch.setattr(allocation, "PASS_SECONDS", -1.0)
    monkeypatch.setattr(allocation, "BATCH", 2)
    monkeypatch.setattr(allocation, "TOLD_PER_EVENT", 3)
    monkeypatch.setattr(holds, "CHUNK", 4)
    drop = reward_drop(stock=20, cost=100, quantity=5, mode="draw")
    people = entrants(14, points=100)
    enter_all(drop, people)
    close(drop)
    run_job(drop, passes=200)

    assert drop.status == "decided"
    assert sorted(outcomes(drop).values()) == ["lost"] * 9 + ["won"] * 5
    assert Redemption.objects(reward_id=drop.target_id).count() == 5
    assert not PointsAccount.objects(pk__in=[p.user.pk for p in people], held__gt=0).count()
