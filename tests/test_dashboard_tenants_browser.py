"""The business switcher in a real browser (headless Chromium through Playwright, as
tests/test_dashboard_browser.py): an operator key signs in, switches business with the keyboard alone, on
a desktop and on a phone-width screen, and the table, the calendar and the drawer then show the chosen
business; axe-core finds no serious or critical violation with the switcher in the header."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from helpers import next_weekday
from test_dashboard_browser import DESKTOP, PHONE, _audit, _fits, _on_screen, _page, _shot, browser
from test_dashboard_tenants import OPERATOR, Deployment, deployment

if TYPE_CHECKING:
    from playwright.async_api import Browser

pytestmark = pytest.mark.browser

__all__ = ["browser", "deployment"]  # the fixtures, shared


@pytest.mark.parametrize("size", ["desktop", "phone"])
async def test_an_operator_switches_business_with_the_keyboard(
    browser: Browser, deployment: Deployment, size: str
) -> None:
    page, errors = await _page(browser, PHONE if size == "phone" else DESKTOP)
    await page.goto(deployment.base + "/?view=table")
    await page.fill("#api-key", OPERATOR)
    await page.click("#sign-in")
    await page.wait_for_selector("#tenant-switch")
    assert await page.input_value("#tenant-switch") == "default"
    assert await page.locator("text=Bolt massage").count() == 0
    if size == "phone":
        await _fits(page)
        await _on_screen(page, "#tenant-switch")
        await _on_screen(page, "#tenant-switch-go")
    await _audit(page, f"{size} business switcher")

    # The select is a native one (arrow keys, a phone's picker); from it, Tab reaches "Switch", Enter submits.
    await page.focus("#tenant-switch")
    await page.select_option("#tenant-switch", "bolt")
    await page.keyboard.press("Tab")
    assert await page.evaluate("() => document.activeElement.id") == "tenant-switch-go"
    await page.keyboard.press("Enter")
    await page.wait_for_selector("text=Bolt massage")
    assert await page.input_value("#tenant-switch") == "bolt"
    assert await page.locator("text=Acme cleaning").count() == 0
    await _shot(page, f"{size}-tenant-switched.png")

    # The choice is kept in the session: the calendar and the drawer show the same business.
    await page.goto(deployment.base + f"/calendar?month={next_weekday():%Y-%m}")
    await page.wait_for_selector("#calendar")
    assert await page.input_value("#tenant-switch") == "bolt"
    assert await page.locator("#calendar >> text=Bolt massage").count() >= 1
    assert await page.locator("text=Acme cleaning").count() == 0
    if size == "phone":
        await _fits(page)
    assert errors == []
