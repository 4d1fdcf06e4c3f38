"""Command budgets of the loyalty hot paths (tests/support.py says how they count): a
redemption, an owner's points and the rewards they may redeem. None of them reads the
owner's history: the account carries the tier figure, the points expiring soon and the
per-reward counters."""

from __future__ import annotations

from datetime import timedelta

from app.clock import utcnow
from loyalty import rewards
from tests.loyalty.conftest import earn, make_reward
from tests.support import READ_BUDGET, make_person, within_budget

API = "/api/v1"

# The caller, the reward, the account (tier, counters, balance, and the first lots with
# points, which the lots it spends are taken from unread); one command with the key's
# record, the stock, the account, the lots, the entry, the redemption and its domain event;
# the commit. (The issue allowed 8.) The key is not read first (`idempotent(service=...)`):
# a replay runs the same reads, fails on the key's record, and reads the answer stored
# there.
REDEMPTION = 5
REPLAY = REDEMPTION + 1
# A reward this process redeemed before is not read: its terms come from the process's copy,
# which the stock's write checks (loyalty/rewards.py, `_terms_seen`).
REDEMPTION_AGAIN = REDEMPTION - 1
# The caller and the account (the issue allowed 3).
POINTS = 2
# The caller, the account (tier), the page of rewards.
REWARDS = READ_BUDGET


def owner_with_history():
    """An owner with several lots, some expiring soon, and a redemption behind them."""
    owner = make_person("SZ")
    now = utcnow()
    for days_ago in (700, 400, 30, 1):
        earn(owner.id, 3_000, now=now - timedelta(days=days_ago))
    rewards.redeem(owner.user, str(make_reward(cost=500).pk))
    return owner


def test_redeeming_with_a_key(client):
    owner = owner_with_history()
    reward = make_reward(cost=4_000, stock=5, per_owner_limit=2)
    headers = {**owner.headers, "Idempotency-Key": "redeem-once"}
    with within_budget(REDEMPTION):
        answer = client.post(
            f"{API}/redemptions", json={"reward_id": str(reward.pk)}, headers=headers
        )
    assert answer.status_code == 201, answer.json
    with within_budget(REPLAY):
        replay = client.post(
            f"{API}/redemptions", json={"reward_id": str(reward.pk)}, headers=headers
        )
    assert replay.get_data() == answer.get_data()


def test_redeeming_a_reward_redeemed_before(client):
    reward = make_reward(cost=100, stock=5)
    rewards.redeem(owner_with_history().user, str(reward.pk))
    owner = owner_with_history()
    with within_budget(REDEMPTION_AGAIN):
        answer = client.post(
            f"{API}/redemptions", json={"reward_id": str(reward.pk)}, headers=owner.headers
        )
    assert answer.status_code == 201, answer.json


def test_an_owners_points(client):
    owner = owner_with_history()
    with within_budget(POINTS):
        points = client.get(f"{API}/me/points", headers=owner.headers)
    assert points.json["balance"] == 11_500
    assert [item["points"] for item in points.json["expiring"]] == [2_500]


def test_the_rewards_an_owner_may_redeem(client):
    owner = owner_with_history()
    make_reward(min_tier="silver")  # 6,000 points earned in 12 months: silver
    make_reward(min_tier="gold")
    with within_budget(REWARDS):
        listed = client.get(f"{API}/rewards", headers=owner.headers)
    assert [reward["min_tier"] for reward in listed.json["items"]] == ["silver", "member"]


# Ecosystem partners' hot paths (loyalty/partner_transactions.py). A debit: the partner by
# its key, the transaction id (a replay is answered there), then in one transaction the pay
# code, the account, the lots it spends, one command with the transaction record, the day's
# total (which holds the daily cap without a read), the pay code, the account, the lots and
# the entry, and the commit.
PARTNER_DEBIT = 7
PARTNER_DEBIT_REPLAY = 2
# A credit: the partner, the member, the transaction id, then the account (its tier figure
# current), one command with the record, the day's total, the account, the lot and the
# entry, and the commit.
PARTNER_CREDIT = 6


def test_a_partner_debit_with_a_pay_code(client, admin):
    from tests.loyalty.partners import pay_code, register_partner

    owner = owner_with_history()
    partner = register_partner(client, admin, daily_debit_cap=100_000)
    body = {"pay_code": pay_code(client, owner, 500), "partner_txn_id": "d-1", "points": 500}
    with within_budget(PARTNER_DEBIT) as commands:
        debit = partner.post(client, "/partner/points/debits", body)
    assert debit.status_code == 201, (debit.json, commands.names)
    with within_budget(PARTNER_DEBIT_REPLAY):
        replay = partner.post(client, "/partner/points/debits", body)
    assert replay.status_code == 200 and replay.json == debit.json


def test_a_partner_credit(client, admin):
    from tests.loyalty.partners import register_partner

    owner = owner_with_history()
    partner = register_partner(client, admin, daily_credit_cap=100_000)
    body = {"member_id": owner.id, "partner_txn_id": "c-1", "points": 50}
    with within_budget(PARTNER_CREDIT) as commands:
        credit = partner.post(client, "/partner/points/credits", body)
    assert credit.status_code == 201, (credit.json, commands.names)


def test_redeeming_a_reward_whose_stock_is_split_costs_the_same(client, admin):
    """The reward and its stock buckets are one read (a `$lookup`), the bucket's decrement
    rides in the one command of writes: no round trip more than a reward's own stock."""
    owner = owner_with_history()
    reward = rewards.create_reward(
        admin.caller,
        {"title": "Cap", "cost": 100, "stock": 40, "stock_buckets": 16, "fulfillment": "digital"},
    )
    headers = {**owner.headers, "Idempotency-Key": "redeem-split"}
    with within_budget(REDEMPTION):
        answer = client.post(
            f"{API}/redemptions", json={"reward_id": str(reward.pk)}, headers=headers
        )
    assert answer.status_code == 201, answer.json
