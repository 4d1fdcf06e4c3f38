"""Demo data for loyalty: the default earning rules and a small rewards catalog."""

from __future__ import annotations

from loyalty.models import Reward
from loyalty.rules import ensure_default_rules

DEMO_REWARDS = (
    {
        "title": "smart keychain",
        "cost": 300,
        "stock": 200,
        "per_owner_limit": 2,
        "fulfillment": "pickup",
    },
    {
        "title": "Coffee voucher",
        "cost": 150,
        "stock": 1000,
        "per_owner_limit": 10,
        "fulfillment": "digital",
    },
    {
        "title": "Free charging, 100 kWh",
        "cost": 2000,
        "stock": 100,
        "per_owner_limit": 1,
        "fulfillment": "digital",
        "min_tier": "silver",
    },
    {
        "title": "Track day in Chengdu",
        "cost": 12000,
        "stock": 10,
        "per_owner_limit": 1,
        "fulfillment": "pickup",
        "min_tier": "gold",
        "city_codes": ["CD"],
    },
)


def seed_rewards() -> list[str]:
    ensure_default_rules()
    for reward in DEMO_REWARDS:
        if not Reward.objects(title=reward["title"]).first():
            Reward(**reward).save()
    return [f"loyalty: default earning rules, {len(DEMO_REWARDS)} rewards"]
