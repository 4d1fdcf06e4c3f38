"""Fixtures of the consoles' tests: events' builders (a leader of SZ, events made through
the services)."""

from __future__ import annotations

from tests.events.conftest import leader, make_event

__all__ = ["leader", "make_event"]
