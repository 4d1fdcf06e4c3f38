"""The browser-test harness of the consoles: headless Chromium from Debian's `chromium`
package driven by Playwright (never a downloaded browser), contexts at phone and desktop
sizes in zh-CN or en, signing in through the form, and screenshots written to
SCREENSHOTS (var/screenshots/consoles/, named in the README) for a person to look at.

    def test_x(browser, console_url, screenshot):
        page = new_page(browser, "zh-CN", PHONE)
        sign_in_page(page, console_url, person)
        screenshot(page, "home")
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "var" / "screenshots" / "consoles"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 860}
SIZES = {"phone": PHONE, "desktop": DESKTOP}
LOCALES = {"zh-CN": "zh-CN", "en": "en-US"}


def launch(playwright: Any, *extra_args: str) -> Any:
    if not Path(CHROMIUM).exists():
        missing = f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)"
        # A machine with only Python and make runs the rest of the suite; CI runs them all.
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    return playwright.chromium.launch(
        executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra_args], headless=True
    )


@pytest.fixture(scope="session")
def playwright_driver() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright_driver: Any) -> Iterator[Any]:
    chromium = launch(playwright_driver)
    try:
        yield chromium
    finally:
        chromium.close()


def new_page(browser: Any, language: str, viewport: dict[str, int], **options: Any) -> Any:
    """A page in a context of its own (its own cookies, storage and service workers: one
    device), speaking `language` at `viewport` size."""
    context = browser.new_context(
        locale=LOCALES[language],
        viewport=viewport,
        timezone_id="Asia/Shanghai",
        **options,
    )
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    return page


def sign_in_page(page: Any, base_url: str, email: str, password: str = "password-123") -> None:
    """Sign in through the console's form; lands on the person's home page."""
    page.goto(f"{base_url}/console/")
    page.fill("input[name=account]", email)
    page.fill("input[name=password]", password)
    page.click("form.card button[type=submit]")
    page.wait_for_url("**/console/*")
    assert "/sign-in" not in page.url, page.content()[:2000]


@pytest.fixture
def console_url(live_server: str) -> str:
    # localhost, not 127.0.0.1: the browser counts it a secure context for its cookies,
    # service workers and WebCrypto, as it counts HTTPS.
    return live_server.replace("127.0.0.1", "localhost")


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)
    return SCREENSHOTS


@pytest.fixture
def screenshot(screenshot_dir: Path) -> Callable[..., Path]:
    """`screenshot(page, "door-offline")` writes <language>-<size>-door-offline.png."""

    def take(page: Any, name: str) -> Path:
        width = page.viewport_size["width"]
        size = "phone" if width < 700 else "desktop"
        # A click that submits a form may still be navigating: the locator waits for the
        # next document, where evaluating at once could meet none.
        page.wait_for_load_state()
        language = page.locator("html").get_attribute("lang") or "x"
        path = screenshot_dir / f"{language}-{size}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
