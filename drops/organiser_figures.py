"""A drop's figures for its organiser: how fast entries came, where the places went, who
was refused and why, and how long owners waited after the close to be told."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bson import ObjectId

from app.auth import Caller
from drops.launch import organised_drop, phase
from drops.models import DECIDED, Told


def drop_figures(caller: Caller, drop_id: str) -> dict[str, Any]:
    """The figures so far; the job updates them as it counts and decides entries."""
    drop = organised_drop(caller, drop_id)
    refused = {reason: count for reason, count in drop.refused.items() if count}
    decided = drop.won + drop.lost + sum(refused.values())
    span = (
        (drop.last_entry_at - drop.first_entry_at).total_seconds()
        if drop.first_entry_at and drop.last_entry_at
        else 0.0
    )
    told, last_told_at = told_of(drop.pk)
    told_after = (
        (last_told_at - drop.closes_at).total_seconds()
        if last_told_at and drop.status == DECIDED and told >= decided
        else None
    )
    return {
        "id": drop.pk,
        "phase": phase(drop),
        "quantity": drop.quantity,
        "entries": drop.entries,
        "entries_per_second": {
            "mean": round(drop.entries / span, 1) if span >= 1 else float(drop.entries),
            "peak": drop.peak_per_second,
            "peak_at": drop.peak_second_at,
        },
        "first_entry_at": drop.first_entry_at,
        "last_entry_at": drop.last_entry_at,
        "allocated": drop.allocated,
        "won": drop.won,
        "lost": drop.lost,
        "refused": sum(refused.values()),
        "refused_by_reason": refused,
        "waiting": max(drop.entries - decided, 0),
        "told": told,
        "closes_at": drop.closes_at,
        "decided_at": drop.decided_at,
        "last_told_at": last_told_at,
        "seconds_from_close_to_last_told": told_after,
    }


def told_of(drop_id: ObjectId) -> tuple[int, datetime | None]:
    """Entrants told so far, and when the last of them was."""
    rows = Told._get_collection().aggregate(
        [
            {"$match": {"drop_id": drop_id}},
            {"$group": {"_id": None, "told": {"$sum": "$count"}, "last": {"$max": "$at"}}},
        ]
    )
    row = next(rows, None)
    return (row["told"], row["last"]) if row else (0, None)
