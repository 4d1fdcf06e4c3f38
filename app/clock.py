"""The one clock: timezone-aware UTC, as every stored time is."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Now, to the millisecond: what MongoDB stores, so that a document rendered before its
    write (an answer made inside the transaction) reads the same as once read back."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
