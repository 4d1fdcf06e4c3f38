"""The order a drop serves its entries in, which anyone can check.

First come: the order of arrival, as the API stamped each entry when it accepted it (its
clock, in microseconds; the entry's id breaks a tie).

Draw, committed and revealed: the drop's seed is 32 random bytes made when the drop is
created, and its SHA-256 (`seed_hash`) is published from then on, before the drop opens;
the seed itself is published once the draw is made, after the drop closed. An entry's
ticket is the SHA-256 of `<seed>:<entry id>` (hex), and entries are served lowest ticket
first. So nobody, the service included, can choose the seed after seeing who entered, and
anyone holding the seed and an entry id can recompute that entry's ticket and check that
the seed matches the hash published before the drop opened.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from typing import Any, TypeVar

Entry = TypeVar("Entry", bound=dict[str, Any])


def new_seed() -> tuple[str, str]:
    """A seed and its published hash."""
    seed = secrets.token_hex(32)
    return seed, seed_hash(seed)


def seed_hash(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


def ticket(seed: str, entry_id: Any) -> str:
    return hashlib.sha256(f"{seed}:{entry_id}".encode()).hexdigest()


def arrival_order(entries: Iterable[Entry]) -> list[Entry]:
    return sorted(entries, key=lambda entry: (entry["arrival"], str(entry["_id"])))


def draw_order(seed: str, entries: Iterable[Entry]) -> list[Entry]:
    return sorted(entries, key=lambda entry: ticket(seed, entry["_id"]))
