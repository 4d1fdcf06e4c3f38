"""Fixtures of the consoles' tests: events' builders (a leader of SZ, events made through
the services) and the browser harness (tests/consoles/browser.py)."""

from __future__ import annotations

from tests.community.conftest import make_club
from tests.consoles.browser import (
    browser,
    console_url,
    playwright_driver,
    screenshot,
    screenshot_dir,
)
from tests.events.conftest import leader, make_event

__all__ = [
    "browser",
    "console_url",
    "leader",
    "make_club",
    "make_event",
    "playwright_driver",
    "screenshot",
    "screenshot_dir",
]
