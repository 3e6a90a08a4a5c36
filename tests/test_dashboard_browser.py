"""The dashboard in a real browser: Debian's headless Chromium driven by Playwright, against the
running HTTP app (uvicorn in this event loop) on the Cal.com sandbox.

Chromium comes from apt (`apt-get install chromium`, /usr/bin/chromium); Playwright never downloads
a browser. Locally these tests skip when Chromium is missing; in CI (CI=true) they fail instead.
Screenshots of each view go to test-artifacts/dashboard/; with UPDATE_SCREENSHOTS=1 docs/dashboard.md's
copies in docs/screenshots/ are refreshed too. Every flow runs on a desktop (1440×900) and on a
phone (390×844); on each page, dialog and drawer, axe-core (from npm: `npm ci`, package.json) audits
the page for WCAG 2.2 AA, and a serious or critical violation fails the test. The audit's counts go
to test-artifacts/dashboard/axe.json.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from pydantic import SecretStr

from appt_tools.core.service import AppointmentService
from appt_tools.runtime import CalcomTarget, open_service
from appt_tools.surfaces.auth import Credentials
from appt_tools.surfaces.http.app import HttpSettings
from calcom_sandbox import RunningSandbox
from dashboard_support import served
from helpers import Raw, booking_args, next_weekday

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
DOCS = ROOT / "docs" / "screenshots"
# The pictures in docs/dashboard.md: artifact name → docs name.
FOR_README = {
    "table.png": "table.png",
    "calendar.png": "calendar.png",
    "drawer-new.png": "drawer-new.png",
    "drawer-edit.png": "drawer-edit.png",
    "settings.png": "settings.png",
    "login.png": "login.png",
}
for _name in ("table", "calendar", "drawer-edit", "settings", "login", "drawer-new"):
    FOR_README[f"phone-{_name}.png"] = f"phone-{_name}.png"
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
CALCOM_KEY = "cal_live_browser_0123456789_secretkey"
HTTP_KEY = "k_live_0123456789abcdefghijBRWS"
WAIT_MS = 15_000


def _chromium_missing() -> bool:
    return not CHROMIUM.exists()


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: browser tests must run; .ci/run installs chromium and playwright)")
    pytest.skip(reason)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if _chromium_missing():
        _unavailable(f"{CHROMIUM} is missing: apt-get install -y chromium")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _unavailable("playwright is not installed: pip install -e '.[dev]'")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, timeout=30_000)
        try:
            yield launched
        finally:
            await launched.close()


async def _page(browser: Browser, viewport: dict[str, int] | None = None) -> tuple[Page, list[str]]:
    size = viewport or DESKTOP
    context = await browser.new_context(
        viewport={"width": size["width"], "height": size["height"]},
        timezone_id="America/New_York",
        is_mobile=size == PHONE,
        has_touch=size == PHONE,
    )
    context.set_default_timeout(WAIT_MS)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return page, errors


async def _shot(page: Page, name: str, *, full_page: bool = False) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / name), full_page=full_page)
    if os.environ.get("UPDATE_SCREENSHOTS") == "1" and name in FOR_README:
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ARTIFACTS / name, DOCS / FOR_README[name])


async def _audit(page: Page, name: str) -> None:
    """axe-core on the page as it is now: no serious or critical WCAG 2.2 AA violation. The counts of
    every impact go to test-artifacts/dashboard/axe.json under `name`."""
    if not AXE.exists():
        _unavailable(f"{AXE} is missing: npm ci (package.json)")
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        await page.evaluate(
            AXE.read_text(encoding="utf-8")
        )  # through the debugger: the page's CSP allows no inline script
    result = await page.evaluate(
        "tags => axe.run(document, { runOnly: { type: 'tag', values: tags }, resultTypes: ['violations'] })"
        ".then(r => r.violations.map(v => ({ id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5) })))",
        AXE_TAGS,
    )
    counts: dict[str, int] = {}
    for violation in result:
        counts[violation["impact"]] = counts.get(violation["impact"], 0) + 1
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / "axe.json"
    seen = json.loads(log.read_text()) if log.exists() else {}
    seen[name] = {"counts": counts, "violations": result}
    log.write_text(json.dumps(seen, indent=1, sort_keys=True))
    serious = [v for v in result if v["impact"] in ("serious", "critical")]
    assert serious == [], f"{name}: {json.dumps(serious, indent=1)}"


async def _fits(page: Page) -> None:
    """Nothing makes the page wider than the screen (no sideways scrolling)."""
    width = await page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"the page is {width[0]} px wide on a {width[1]} px screen"


async def _on_screen(page: Page, selector: str) -> None:
    box = await page.locator(selector).bounding_box()
    size = page.viewport_size
    assert box is not None and size is not None
    assert box["x"] >= 0 and box["y"] >= 0, box
    assert box["x"] + box["width"] <= size["width"] + 0.5 and box["y"] + box["height"] <= size["height"] + 0.5, box


async def _seed(service: AppointmentService, day: date) -> None:
    """A few appointments for the pictures: two on `day`, one the next weekday, one cancelled."""
    people = [
        ("Teeth cleaning", "Ana Ruiz", "ana@example.com", "new-client", "inbound", 2),
        ("Root canal consult", "Bo Chen", "bo@example.com", "vip", "outbound", 8),
        ("Check-up", "Cara Diaz", "cara@example.com", "", "inbound", 4),
        ("Whitening", "Dev Patel", "dev@example.com", "follow-up", "web", 10),
    ]
    ids = []
    for number, (title, name, mail, label, kind, index) in enumerate(people):
        on = day if number < 2 else day + timedelta(days=1 if day.weekday() < 4 else 3)
        slots = (await Raw(service).find_slots(day=on.isoformat())).slots
        args: dict[str, Any] = booking_args(
            slots[index].start.isoformat(),
            title=title,
            attendee_name=name,
            attendee_email=mail,
            label=label,
            call_type=kind,
            business_name="Acme Dental",
        )
        ids.append((await Raw(service).book(**args)).id)
    await Raw(service).cancel(ids[2])


def _saturday_after(day: date) -> date:
    return day + timedelta(days=(5 - day.weekday()) % 7 or 7)


async def _calendar_month(page: Page, month: str) -> None:
    for _ in range(3):
        if await page.get_attribute("#calendar", "data-month") == month:
            return
        await page.click("#next-month")
        await page.wait_for_function("m => document.querySelector('#calendar').dataset.month >= m", arg=month)
    assert await page.get_attribute("#calendar", "data-month") == month


async def _starts(page: Page) -> list[datetime]:
    values = await page.eval_on_selector_all("#table tbody tr[data-id]", "rows => rows.map(r => r.dataset.start)")
    return [datetime.fromisoformat(v) for v in values]


async def test_book_find_sort_calendar_reschedule_cancel(browser: Browser, service: AppointmentService) -> None:
    seed_day = next_weekday()
    await _seed(service, seed_day)
    saturday = _saturday_after(seed_day)
    monday, tuesday = saturday + timedelta(days=2), saturday + timedelta(days=3)
    async with served(service, HttpSettings(sandbox=True)) as base:
        page, errors = await _page(browser)
        await page.goto(base + "/?view=table")
        assert await page.locator("#table tbody tr[data-id]").count() == 4
        await _fits(page)
        await _audit(page, "desktop table")

        # A row's cancel asks first; "Keep it" changes nothing.
        await page.click("tr:has-text('Teeth cleaning') button.cancel")
        await page.wait_for_selector("#confirm[open]")
        assert "Teeth cleaning" in await page.inner_text("#confirm-text")
        await _audit(page, "desktop cancel dialog")
        await page.click("#confirm-no")
        # focus goes back to the trash icon it came from
        assert await page.evaluate("() => document.activeElement.getAttribute('aria-label')") == (
            "Cancel Teeth cleaning with Ana Ruiz, " + f"{seed_day:%b} {seed_day.day}"
        )
        assert await page.inner_text("tr:has-text('Teeth cleaning') .badge") == "Active"

        # Create through the drawer: a Saturday has nothing free, the next free day is offered.
        await page.click("#new-appointment")
        await page.wait_for_selector("#drawer:not([hidden])")
        await page.fill("input[name=title]", "Browser booking")
        await page.fill("input[name=attendee_name]", "Zoe Quinn")
        await page.fill("input[name=attendee_email]", "zoe@")
        await page.fill("input[name=to_number]", "+14155550100")
        await page.fill("input[name=from_number]", "+14155550199")
        await page.fill("textarea[name=description]", "Booked in the browser test")
        await page.fill("input[name=label]", "browser")
        await page.fill("#date", saturday.isoformat())
        await page.wait_for_selector("#next-free-day:not([hidden])")
        assert (await page.inner_text("#slots-message")).startswith("Nothing is free on Saturday")
        await _shot(page, "drawer-no-slots.png")
        await page.click("#next-free-day")
        await page.wait_for_selector("#slots .slot")
        assert await page.input_value("#date") == monday.isoformat()
        await page.click("#slots .slot:text-is('2:00 PM')")
        await page.fill("input[name=from_number]", "(415) 55")
        await page.click("#save")
        email_error = page.locator(".field-error[data-for=attendee_email]")
        await email_error.wait_for()
        assert "is not a valid e-mail address" in await email_error.inner_text()
        # every problem at once, each at its field
        assert "not a valid phone number" in await page.inner_text(".field-error[data-for=from_number]")
        assert await page.get_attribute("input[name=attendee_email]", "aria-invalid") == "true"
        await _audit(page, "desktop drawer, new, with errors")
        await _shot(page, "drawer-new.png")
        await page.fill("input[name=from_number]", "(415) 555-0199")  # a national number, read as a US one
        await page.fill("input[name=attendee_email]", "zoe.quinn@example.com")
        assert await email_error.inner_text() == ""
        await page.click("#save")
        await page.wait_for_selector("#toast:has-text('Booked for')")
        await page.wait_for_selector("#drawer", state="hidden")
        row = page.locator("tr:has-text('Zoe Quinn')")
        await row.wait_for()
        assert await row.locator(".badge").inner_text() == "Active"
        assert "+14155550199" in await row.inner_text() and "Web" in await row.inner_text()
        assert await row.locator("a.join").get_attribute("target") == "_blank"
        await _shot(page, "table.png")

        # Search as you type.
        await page.locator("#search").press_sequentially("Quinn", delay=40)
        await page.wait_for_selector("#total:text-is('1 appointment')")
        assert await page.locator("#table tbody tr[data-id]").count() == 1
        await _shot(page, "table-search.png")
        await page.fill("#search", "")
        await page.wait_for_selector("#total:text-is('5 appointments')")

        # Sort by date: the header reverses the order, and again restores it.
        await page.click("th[data-col=start] a.sort")
        await page.wait_for_selector("th[data-col=start][aria-sort=descending]")
        starts = await _starts(page)
        assert starts == sorted(starts, reverse=True) and len(starts) == 5
        await page.click("th[data-col=start] a.sort")
        await page.wait_for_selector("th[data-col=start][aria-sort=ascending]")
        starts = await _starts(page)
        assert starts == sorted(starts)

        # The calendar: the booking on its day, coloured by status.
        await page.click("#view-calendar")
        await page.wait_for_selector("#calendar")
        await _calendar_month(page, f"{monday:%Y-%m}")
        booked = page.locator(f".day[data-date='{monday.isoformat()}'] .appt:has-text('Browser booking')")
        await booked.wait_for()
        assert "2:00 PM" in await booked.inner_text() and "active" in (await booked.get_attribute("class") or "")
        await _fits(page)
        await _audit(page, "desktop calendar")
        await _shot(page, "calendar.png")
        await page.click(f".day[data-date='{monday.isoformat()}'] .date")
        await page.wait_for_selector("#day-panel:not([hidden])")
        day_list = await page.inner_text("#day-panel-list")
        assert "Browser booking" in day_list and "2:00 PM" in day_list and "Active" in day_list
        await _shot(page, "calendar-day.png")
        await page.click("#day-panel-close")

        # The view is remembered: / opens the calendar now.
        await page.goto(base + "/")
        assert page.url.endswith("/calendar")
        await _calendar_month(page, f"{monday:%Y-%m}")

        # Reschedule from the calendar: the drawer edits, the numbers are locked.
        await page.click(f".day[data-date='{monday.isoformat()}'] .appt:has-text('Browser booking')")
        await page.wait_for_selector("#drawer.editing:not([hidden])")
        await page.wait_for_selector("#slots .slot")
        assert await page.get_attribute("input[name=to_number]", "readonly") is not None
        assert await page.is_disabled("select[name=call_type]")
        assert await page.input_value("input[name=attendee_email]") == "zoe.quinn@example.com"
        await page.fill("input[name=title]", "Browser booking (moved)")
        await page.fill("#date", tuesday.isoformat())
        await page.wait_for_selector(f"#slots-message:has-text('{tuesday:%A}')")
        await page.click("#slots .slot:text-is('3:00 PM')")
        # the time picker with the keyboard: an arrow moves to (and picks) the next time
        await page.keyboard.press("ArrowRight")
        assert await page.get_attribute("#slots .slot[aria-checked=true]", "data-start") != await page.get_attribute(
            "#slots .slot:text-is('3:00 PM')", "data-start"
        )
        await page.keyboard.press("ArrowLeft")
        assert await page.inner_text("#slots .slot[aria-checked=true]") == "3:00 PM"
        assert await page.inner_text("#booking-uid") != "" and await page.is_visible("#copy-uid")
        await _audit(page, "desktop drawer, edit")
        await _shot(page, "drawer-edit.png")
        await page.click("#save")
        await page.wait_for_selector("#toast:has-text('Moved to')")
        moved = page.locator(f".day[data-date='{tuesday.isoformat()}'] .appt:has-text('Browser booking (moved)')")
        await moved.wait_for()
        assert "3:00 PM" in await moved.inner_text() and "rescheduled" in (await moved.get_attribute("class") or "")
        assert (
            await page.locator(f".day[data-date='{monday.isoformat()}'] .appt:has-text('Browser booking')").count() == 0
        )

        # Cancel it (after confirming): it leaves the calendar but stays in the table.
        await moved.click()
        await page.wait_for_selector("#drawer.editing:not([hidden])")
        await page.wait_for_selector("#drawer-cancel-appointment:visible")
        await page.click("#drawer-cancel-appointment")
        await page.wait_for_selector("#confirm[open]")
        await page.fill("#confirm-reason", "Owner cancelled in the browser test")
        await _shot(page, "confirm-cancel.png")
        await page.click("#confirm-yes")
        await page.wait_for_selector("#toast:has-text('Cancelled the appointment')")
        await page.wait_for_selector("#drawer", state="hidden")
        await page.wait_for_function("() => !document.querySelector('#calendar').innerText.includes('Browser booking')")
        await page.click("#view-table")
        await page.wait_for_selector("#table")
        cancelled = page.locator("tr:has-text('Zoe Quinn')")
        assert await cancelled.locator(".badge").inner_text() == "Cancelled"
        assert await cancelled.locator("button.cancel").count() == 0
        await page.select_option("#status-filter", "cancelled")
        await page.wait_for_selector("#total:text-is('2 appointments')")
        await _shot(page, "table-cancelled.png")
        assert errors == []

    stored = (await Raw(service).search(query="Zoe Quinn", status="cancelled")).items
    assert len(stored) == 1 and stored[0].cancellation_reason == "Owner cancelled in the browser test"
    assert stored[0].title == "Browser booking (moved)" and stored[0].call_type == "web"


@pytest.fixture
async def own_settings(sandbox: RunningSandbox, tmp_path: Path) -> AsyncIterator[AppointmentService]:
    """Nothing in the environment, so every setting is editable on the page."""
    target = CalcomTarget(base_url=sandbox.base_url, api_key=sandbox.api_key)
    url = f"sqlite+aiosqlite:///{tmp_path / 'settings.db'}"
    async with open_service(database_url=url, environ={}, calcom=target) as svc:
        yield svc


async def test_settings_save_and_never_show_the_key(browser: Browser, own_settings: AppointmentService) -> None:
    service = own_settings
    async with served(service, HttpSettings(sandbox=True)) as base:
        page, errors = await _page(browser)
        await page.goto(base + "/settings")
        await page.click("#refresh-event-types")
        await page.wait_for_selector("#refresh-result:has-text('Synced 10 event types')")
        await _audit(page, "desktop settings")
        await page.fill("#timezone", "Mars/Base")
        await page.click("#save-settings")
        tz_error = page.locator(".field-error[data-for=timezone]")
        await tz_error.wait_for()
        assert "unknown time zone" in await tz_error.inner_text()

        await page.fill("#calcom-api-key", CALCOM_KEY)
        await page.fill("#timezone", "America/Chicago")
        await page.select_option("#event-type-id", label="Quick call (15 min)")
        await page.fill("#business-name", "Acme Dental")
        await page.click("#save-settings")
        await page.wait_for_selector("#settings-saved:not([hidden])")
        assert (await page.inner_text("#settings-saved")).startswith("Saved.")
        assert await page.input_value("#calcom-api-key") == ""
        assert CALCOM_KEY not in await page.content()
        assert await page.inner_text("#stored-key-shown") == "cal_…tkey"

        await page.click("#test-connection")
        await page.wait_for_selector("#test-result .summary")
        assert await page.inner_text("#test-result .summary") == "Cal.com is connected and ready for bookings."
        assert await page.locator("#test-result .fail").count() == 0
        await _shot(page, "settings.png", full_page=True)

        await page.reload()
        assert CALCOM_KEY not in await page.content()
        assert await page.input_value("#timezone") == "America/Chicago"
        assert await page.input_value("#business-name") == "Acme Dental"
        assert errors == []
    stored = await service.store.get_settings()
    assert stored["calcom_api_key"] == CALCOM_KEY and stored["timezone"] == "America/Chicago"
    assert service.timezone == "America/Chicago" and service.settings.business_name == "Acme Dental"


async def test_sign_in_with_an_api_key(browser: Browser, service: AppointmentService) -> None:
    settings = HttpSettings(credentials=Credentials((SecretStr(HTTP_KEY),)))
    async with served(service, settings) as base:
        page, errors = await _page(browser)
        await page.goto(base + "/calendar")
        assert "/login" in page.url
        await page.fill("#api-key", "k_live_not_the_right_key_at_all")
        await page.click("#sign-in")
        await page.wait_for_selector("#login-error")
        await _audit(page, "desktop sign-in")
        await _shot(page, "login.png")
        await page.fill("#api-key", HTTP_KEY)
        await page.click("#sign-in")
        await page.wait_for_selector("#calendar")
        assert page.url.endswith("/calendar")
        cookies = await page.context.cookies()
        session = next(c for c in cookies if c["name"] == "appt_session")
        assert session["httpOnly"] and session["sameSite"] == "Strict" and HTTP_KEY not in session["value"]
        await page.click("button:has-text('Sign out')")
        await page.wait_for_selector("#api-key")
        assert errors == []


async def test_on_a_phone_every_view_fits_and_works(browser: Browser, service: AppointmentService) -> None:
    seed_day = next_weekday()
    await _seed(service, seed_day)
    async with served(service, HttpSettings(sandbox=True)) as base:
        page, errors = await _page(browser, PHONE)
        await page.goto(base + "/?view=table")

        # The table as cards, the toggle and "New appointment" on screen, the banners folded.
        card = page.locator("tr:has-text('Teeth cleaning')")
        await card.wait_for()
        await _fits(page)
        for control in ("#view-calendar", "#view-table", "#new-appointment", "#settings-link"):
            await _on_screen(page, control)
            box = await page.locator(control).bounding_box()
            assert box is not None and box["width"] >= 24 and box["height"] >= 24, control
        assert await page.locator("details.banner[open]").count() == 0
        assert await card.locator("td[data-col=title]").is_visible() and await card.locator(".badge").is_visible()
        await _audit(page, "phone table")
        await _shot(page, "phone-table.png")

        # The title opens the drawer, full screen; focus stays in it and comes back to the title.
        title = card.locator("button.title-link")
        await title.click()
        await page.wait_for_selector("#drawer.editing:not([hidden])")
        await page.wait_for_selector("#slots .slot")
        await _on_screen(page, "#drawer")
        box = await page.locator("#drawer").bounding_box()
        assert box is not None and box["width"] >= 389
        await _shot(page, "phone-drawer-edit.png")
        for _ in range(60):  # Tab round the drawer: it never leaves it
            await page.keyboard.press("Tab")
            assert await page.evaluate("() => !!document.activeElement.closest('#drawer')")
        await _audit(page, "phone drawer, edit")
        await page.keyboard.press("Escape")
        await page.wait_for_selector("#drawer", state="hidden")
        assert await page.evaluate("() => document.activeElement.classList.contains('title-link')")

        # A new appointment: every problem at once, each at its field, and the drawer on screen.
        await page.click("#new-appointment")
        await page.wait_for_selector("#drawer:not(.editing):not([hidden])")
        await page.click("#save")
        await page.wait_for_selector(".field-error[data-for=start]:not(:empty)")
        for field in ("attendee_name", "attendee_email", "to_number", "from_number", "start"):
            assert await page.inner_text(f".field-error[data-for={field}]") != "", field
        await _fits(page)
        await _audit(page, "phone drawer, new, with errors")
        await _shot(page, "phone-drawer-new.png")
        await page.keyboard.press("Escape")

        # Cancel from the card: the dialog fits; keeping it changes nothing.
        await card.locator("button.cancel").click()
        await page.wait_for_selector("#confirm[open]")
        await _on_screen(page, "#confirm")
        await _audit(page, "phone cancel dialog")
        await page.click("#confirm-no")

        # The calendar is an agenda on a phone; an appointment's title opens the drawer.
        await page.click("#view-calendar")
        await page.wait_for_selector("#calendar")
        await _calendar_month(page, f"{seed_day:%Y-%m}")
        item = page.locator(f".agenda-day[data-date='{seed_day.isoformat()}'] .agenda-item:has-text('Teeth cleaning')")
        await item.wait_for()
        assert await page.locator(".grid").is_hidden()
        assert "10:00 AM" in await item.inner_text() or "Active" in await item.inner_text()
        await _fits(page)
        await _audit(page, "phone calendar")
        await _shot(page, "phone-calendar.png")
        await item.locator("button.title-link").click()
        await page.wait_for_selector("#drawer.editing:not([hidden])")
        await _on_screen(page, "#drawer")
        await page.keyboard.press("Escape")

        # Settings fit too.
        await page.click("#settings-link")
        await page.wait_for_selector("#settings-form")
        await _fits(page)
        await _audit(page, "phone settings")
        await _shot(page, "phone-settings.png", full_page=True)
        assert errors == []


async def test_sign_in_on_a_phone(browser: Browser, service: AppointmentService) -> None:
    settings = HttpSettings(credentials=Credentials((SecretStr(HTTP_KEY),)))
    async with served(service, settings) as base:
        page, errors = await _page(browser, PHONE)
        await page.goto(base + "/")
        await page.fill("#api-key", "k_live_not_the_right_key_at_all")
        await page.click("#sign-in")
        await page.wait_for_selector("#login-error")
        await _fits(page)
        await _audit(page, "phone sign-in")
        await _shot(page, "phone-login.png")
        await page.fill("#api-key", HTTP_KEY)
        await page.click("#sign-in")
        await page.wait_for_selector("#table")
        await _fits(page)
        assert errors == []


async def test_the_drawer_asks_the_event_types_questions_and_pending_rows_are_confirmed(
    browser: Browser, service: AppointmentService
) -> None:
    day = next_weekday()
    intro = (await Raw(service).find_slots(day=day.isoformat(), event_type_id=1005)).slots
    await Raw(service).book(
        **booking_args(intro[4].start.isoformat(), title="Intro request", attendee_name="Pia Park", event_type_id=1005)
    )
    async with served(service, HttpSettings(sandbox=True)) as base:
        page, errors = await _page(browser)
        await page.goto(base + "/?view=table")
        pending = page.locator("tr:has-text('Pia Park')")
        assert await pending.locator(".badge").inner_text() == "Pending"
        assert "the link comes once the host confirms it" in await pending.inner_text()

        await page.click("#new-appointment")
        await page.wait_for_selector("#drawer:not([hidden])")
        assert await page.is_hidden("#questions")
        await page.select_option("#event-type", "1007")
        await page.wait_for_selector("#questions:not([hidden])")
        assert await page.inner_text("#questions") == (
            "Questions for the attendee\nWhat would you like to discuss?\nIs this your first session with us? (optional)"
        )
        await page.fill("input[name=attendee_name]", "Quin Ito")
        await page.fill("input[name=attendee_email]", "quin@example.com")
        await page.fill("input[name=to_number]", "+14155550100")
        await page.fill("input[name=from_number]", "+14155550188")
        await page.fill("#date", day.isoformat())
        await page.locator("#slots .slot").first.click()
        await page.click("#save")
        missing = page.locator(".field-error[data-for='answers.topic']")
        await missing.wait_for()
        assert "Ask the caller: What would you like to discuss?" in await missing.inner_text()
        await _audit(page, "desktop drawer, new, with a question unanswered")
        await page.fill("textarea[name='answers.topic']", "A bigger kitchen")
        await page.check("input[name='answers.first-visit']")
        await page.click("#save")
        await page.wait_for_selector("#toast:has-text('Booked for')")
        await page.wait_for_selector("#drawer", state="hidden")

        await page.click("tr:has-text('Quin Ito') button.edit")
        await page.wait_for_selector("#answers:not([hidden])")
        assert await page.inner_text("#answers-list") == (
            "What would you like to discuss?\nA bigger kitchen\nIs this your first session with us?\nYes"
        )
        assert await page.is_hidden("#drawer-confirm")
        await page.click("#drawer-close")

        await pending.locator("button[data-decide=confirm]").click()
        await page.wait_for_selector("#toast:has-text('Confirmed the appointment')")
        await page.wait_for_selector("tr:has-text('Pia Park') .badge:text-is('Active')")
        assert await page.locator("tr:has-text('Pia Park') button[data-decide]").count() == 0
        assert errors == []
