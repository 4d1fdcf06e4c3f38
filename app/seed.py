"""The demo world: each domain adds its part, in dependency order."""

from __future__ import annotations

from collections.abc import Iterator


def seed_demo_world() -> Iterator[str]:
    from accounts.seed import seed_people

    yield from seed_people()

    from loyalty.seed import seed_rewards

    yield from seed_rewards()

    from events.seed import seed_events

    yield from seed_events()
