"""The command line, run as a user runs it: a subprocess with its own environment."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, time
from importlib import metadata
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx2
import pytest

from appt_tools.surfaces.cli import build_parser, main
from helpers import free_port, wait_for_port

KEY = "cal_live_0123456789abcdefSECRET"


def _run(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("APPT_TOOLS_")}
    base["APPT_TOOLS_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    return subprocess.run(
        [sys.executable, "-m", "appt_tools", *args],
        env={**base, **(env or {})},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_settings_set_stores_values_and_show_masks_the_key(tmp_path):
    assert _run(tmp_path, "settings", "set", "timezone", "Europe/Madrid").returncode == 0
    assert _run(tmp_path, "settings", "set", "calcom_api_key", stdin=KEY + "\n").returncode == 0
    shown = _run(tmp_path, "settings", "show")
    assert shown.returncode == 0
    assert "Europe/Madrid" in shown.stdout
    assert KEY not in shown.stdout + shown.stderr
    assert re.search(r"calcom_api_key\s+cal_…CRET\s+\[stored\]", shown.stdout)


def test_settings_set_prints_only_what_changed_with_secrets_masked(tmp_path):
    first = _run(tmp_path, "settings", "set", "timezone", "Europe/Madrid")
    assert (first.returncode, first.stdout) == (0, "")  # not the whole table
    assert first.stderr.strip() == "stored timezone: (not set) → Europe/Madrid"
    assert _run(tmp_path, "settings", "set", "timezone", "Asia/Tokyo").stderr.strip() == (
        "stored timezone: Europe/Madrid → Asia/Tokyo"
    )
    secret = _run(tmp_path, "settings", "set", "calcom_api_key", stdin=KEY)
    assert secret.stderr.strip() == "stored calcom_api_key: (not set) → cal_…CRET"
    assert KEY not in secret.stdout + secret.stderr
    removed = _run(tmp_path, "settings", "unset", "timezone")
    assert removed.stderr.strip() == "removed stored timezone: Asia/Tokyo → (not set)"


@pytest.mark.parametrize("key", ["calcom_api_key", "http_api_keys", "vapi_secret", "retell_api_key"])
def test_a_secret_on_the_command_line_is_refused_with_the_ways_to_pass_it(tmp_path, key):
    refused = _run(tmp_path, "settings", "set", key, KEY + "_0123456789")
    assert refused.returncode == 2
    assert "not taken from the command line" in refused.stderr and "nothing was stored" in refused.stderr
    assert f"APPT_TOOLS_{key.upper()}" in refused.stderr and "printf %s" in refused.stderr
    assert KEY not in refused.stdout + refused.stderr
    assert "[default]" in next(
        line for line in _run(tmp_path, "settings", "show").stdout.splitlines() if line.startswith(key)
    )


def test_a_secret_with_a_control_character_is_refused_without_echoing_it(tmp_path):
    refused = _run(tmp_path, "settings", "set", "calcom_api_key", stdin="cal_live_abc\x00def")
    assert refused.returncode != 0 and "printable ASCII" in refused.stderr
    assert "cal_live_abc" not in refused.stdout + refused.stderr


def test_settings_set_says_when_the_environment_still_wins(tmp_path):
    stored = _run(tmp_path, "settings", "set", "timezone", "Europe/Madrid", env={"APPT_TOOLS_TIMEZONE": "UTC"})
    assert stored.returncode == 0
    assert "(not set) → Europe/Madrid" in stored.stderr
    assert "APPT_TOOLS_TIMEZONE is set in the environment and wins" in stored.stderr


def test_an_event_type_id_before_any_sync_is_refused_with_the_next_step(tmp_path):
    refused = _run(tmp_path, "settings", "set", "event_type_id", "1002")
    assert refused.returncode == 2
    assert "no event types are synced yet" in refused.stderr and "event-types refresh" in refused.stderr
    assert re.search(r"event_type_id\s+\(not set\)", _run(tmp_path, "settings", "show").stdout)


def test_an_event_type_id_the_synced_list_lacks_is_refused_naming_the_ones_it_has(tmp_path):
    port = free_port()
    with _sandbox_process(port) as sandbox:
        base = f"http://127.0.0.1:{port}"
        info = _sandbox_info(port, sandbox)
        env = {"APPT_TOOLS_CALCOM_API_KEY": str(info["apiKey"]), "APPT_TOOLS_CALCOM_BASE_URL": base}
        assert _run(tmp_path, "event-types", "refresh", env=env).returncode == 0
    refused = _run(tmp_path, "settings", "set", "event_type_id", "999")
    assert refused.returncode == 2
    assert "event type 999 is not in the synced list" in refused.stderr
    assert "1001 Consultation (30 min)" in refused.stderr and "1002 Quick call (15 min)" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert re.search(r"event_type_id\s+\(not set\)", _run(tmp_path, "settings", "show").stdout)
    chosen = _run(tmp_path, "settings", "set", "event_type_id", "1002")
    assert (chosen.returncode, chosen.stderr.strip()) == (0, "stored event_type_id: (not set) → 1002")


def test_version_prints_the_installed_version(tmp_path):
    shown = _run(tmp_path, "--version")
    assert (shown.returncode, shown.stdout) == (0, f"appt-tools {metadata.version('appt-tools')}\n")


def test_help_shows_the_default_of_every_option():
    def parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
        yield parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child in action.choices.values():
                    yield from parsers(child)

    checked = 0
    for parser in parsers(build_parser()):
        shown = " ".join(parser.format_help().split())
        for action in parser._actions:
            if action.option_strings and action.default not in (None, argparse.SUPPRESS):
                assert f"(default: {action.default})" in shown, (parser.prog, action.dest)
                checked += 1
    assert checked >= 10  # serve's, sandbox's, reconcile's, schemas export's


def test_a_busy_port_is_one_clear_line_and_nothing_starts(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for args in (("serve", "--transport", "http", "--sandbox"), ("sandbox",)):
            refused = _run(tmp_path, *args, "--port", str(port))
            assert refused.returncode == 2
            assert refused.stderr.count("\n") == 1, refused.stderr  # one line: no traceback, no "SANDBOX MODE"
            assert f"port {port} on 127.0.0.1 is already in use" in refused.stderr
            assert f"--port {port + 1}" in refused.stderr


def test_an_invalid_port_is_one_clear_line(tmp_path):
    for port in ("70000", "-1"):
        refused = _run(tmp_path, "serve", "--transport", "http", "--port", port)
        assert refused.returncode == 2
        assert refused.stderr == f"error: --port {port} is not a port: use 1-65535, or 0 for any free port.\n"
    not_a_number = _run(tmp_path, "serve", "--port", "eighty")
    assert not_a_number.returncode == 2
    assert not_a_number.stderr.count("\n") == 1 and "invalid int value: 'eighty'" in not_a_number.stderr


def test_serving_on_is_printed_once_the_port_accepts_connections(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPT_TOOLS_")}
    env["APPT_TOOLS_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}"
    command = [sys.executable, "-m", "appt_tools", "serve", "--transport", "http", "--sandbox", "--port", "0"]
    with subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as server:
        try:
            assert server.stderr is not None
            for line in server.stderr:  # bounded: the server exits (and stderr closes) on any failure
                if found := re.match(r"serving on http://127\.0\.0\.1:(\d+): ", line):
                    break
            else:
                pytest.fail("the server never said where it serves")
            # Asked at once, without waiting: the port printed is the real one, and it answers.
            health = httpx2.get(f"http://127.0.0.1:{found.group(1)}/healthz", timeout=5)
            assert health.status_code == 200 and health.json()["sandbox"] is True
        finally:
            server.terminate()
            server.wait(timeout=10)


def test_the_environment_overrides_stored_settings(tmp_path):
    _run(tmp_path, "settings", "set", "timezone", "Europe/Madrid")
    shown = _run(tmp_path, "settings", "show", env={"APPT_TOOLS_TIMEZONE": "Asia/Tokyo"})
    assert re.search(r"timezone\s+Asia/Tokyo\s+\[environment\]", shown.stdout)


def test_a_bad_setting_is_refused_and_not_stored(tmp_path):
    refused = _run(tmp_path, "settings", "set", "timezone", "Mars/Base")
    assert refused.returncode == 2
    assert "timezone" in refused.stderr and "IANA" in refused.stderr
    assert "Mars/Base" not in _run(tmp_path, "settings", "show").stdout


@contextmanager
def _sandbox_process(port: int) -> Iterator[subprocess.Popen[str]]:
    """`appt-tools sandbox --port N` as a user starts it; always stopped on the way out."""
    with subprocess.Popen(
        [sys.executable, "-m", "appt_tools", "sandbox", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        try:
            yield process
        finally:
            process.terminate()
            process.wait(timeout=10)


def test_sandbox_command_prints_its_key_and_event_type_ids(tmp_path):
    port = free_port()
    with _sandbox_process(port) as sandbox:
        info = _sandbox_info(port, sandbox)
        sandbox.terminate()
        printed, _ = sandbox.communicate(timeout=10)
    assert info["apiKey"] in printed
    for event_type in info["eventTypes"]:  # type: ignore[attr-defined]
        assert str(event_type["id"]) in printed


def test_event_types_refresh_and_list_against_the_sandbox(tmp_path):
    port = free_port()
    with _sandbox_process(port) as sandbox:
        base = f"http://127.0.0.1:{port}"
        info = _sandbox_info(port, sandbox)
        env = {"APPT_TOOLS_CALCOM_API_KEY": str(info["apiKey"]), "APPT_TOOLS_CALCOM_BASE_URL": base}
        refreshed = _run(tmp_path, "event-types", "refresh", env=env)
        assert refreshed.returncode == 0, refreshed.stderr
        assert "Consultation" in refreshed.stdout
        listed = _run(tmp_path, "event-types", "list", env=env)
        assert listed.stdout == refreshed.stdout
        assert str(info["apiKey"]) not in refreshed.stdout + refreshed.stderr


def test_a_wrong_api_key_is_a_clear_error_without_the_key(tmp_path):
    port = free_port()
    with _sandbox_process(port) as sandbox:
        base = f"http://127.0.0.1:{port}"
        _sandbox_info(port, sandbox)
        env = {"APPT_TOOLS_CALCOM_API_KEY": KEY, "APPT_TOOLS_CALCOM_BASE_URL": base}
        refused = _run(tmp_path, "event-types", "refresh", env=env)
        assert refused.returncode == 2
        assert "calcom_auth_failed" in refused.stderr
        assert KEY not in refused.stderr + refused.stdout


def test_schemas_export_check_reports_drift(tmp_path, capsys):
    assert main(["schemas", "export", "--dir", str(tmp_path)]) == 0
    assert main(["schemas", "export", "--dir", str(tmp_path), "--check"]) == 0
    (tmp_path / "cancel.json").write_text("{}\n")
    assert main(["schemas", "export", "--dir", str(tmp_path), "--check"]) == 1
    assert "cancel" in capsys.readouterr().err


def _sandbox_info(port: int, sandbox: subprocess.Popen[str]) -> dict[str, object]:
    """The started sandbox's /_sandbox/info (its key and event types), once it listens."""
    asyncio.run(wait_for_port(port, sandbox, seconds=20))
    data: dict[str, object] = httpx2.get(f"http://127.0.0.1:{port}/_sandbox/info", timeout=5).json()["data"]
    return data


def test_the_demo_runs_the_whole_flow_through_a_real_mcp_session(tmp_path):
    demo = _run(tmp_path, "demo")
    assert demo.returncode == 0, demo.stderr
    for step in ("find_slots", "book_appointment", "search_appointments", "reschedule", "cancel"):
        assert f"→ {step}(" in demo.stdout
    assert "You're booked for" in demo.stdout
    assert re.search(r"scheduled .* rescheduled .* cancelled", demo.stdout.replace("\n", " "))


def test_webhooks_register_list_and_remove_against_the_sandbox(tmp_path):
    from appt_tools.store import Store

    port = free_port()
    with _sandbox_process(port) as sandbox:
        base = f"http://127.0.0.1:{port}"
        info = _sandbox_info(port, sandbox)
        env = {"APPT_TOOLS_CALCOM_API_KEY": str(info["apiKey"]), "APPT_TOOLS_CALCOM_BASE_URL": base}
        url = "http://127.0.0.1:8000/webhooks/calcom"

        wrong = _run(tmp_path, "webhooks", "register", "--url", "http://example.com/webhooks/calcom", env=env)
        assert wrong.returncode == 2 and "https" in wrong.stderr

        first = _run(tmp_path, "webhooks", "register", "--url", url, env=env)
        assert first.returncode == 0, first.stderr
        assert first.stdout.startswith("created webhook ")
        assert "BOOKING_REQUESTED" in first.stdout and "BOOKING_REJECTED" in first.stdout
        second = _run(tmp_path, "webhooks", "register", "--url", url, env=env)
        assert second.stdout.startswith("updated webhook ")

        hooks = httpx2.get(f"{base}/v2/webhooks", headers={"Authorization": f"Bearer {info['apiKey']}"}).json()["data"]
        assert [h["subscriberUrl"] for h in hooks] == [url]
        stored = asyncio.run(_stored_settings(tmp_path, Store))
        assert hooks[0]["secret"] == stored["calcom_webhook_secret"] and len(stored["calcom_webhook_secret"]) >= 40

        listed = _run(tmp_path, "webhooks", "list", env=env)
        assert url in listed.stdout and "[active]" in listed.stdout
        removed = _run(tmp_path, "webhooks", "remove", url, env=env)
        assert removed.returncode == 0 and "removed webhook" in removed.stdout
        assert "no Cal.com webhooks" in _run(tmp_path, "webhooks", "list", env=env).stderr
        unknown = _run(tmp_path, "webhooks", "remove", url, env=env)
        assert unknown.returncode == 2 and "no Cal.com webhook has id or URL" in unknown.stderr


async def _stored_settings(tmp_path: Path, store_cls: type) -> dict[str, str]:
    async with store_cls.from_url(f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}") as store:
        settings: dict[str, str] = await store.get_settings()
        return settings


def test_appointments_confirm_and_decline_settle_pending_bookings_in_cal_com(tmp_path):
    from appt_tools.core.requests import BookingDraft
    from appt_tools.runtime import CalcomTarget, open_service
    from helpers import next_weekday

    async def book_two(base: str, key: str) -> list[str]:
        target = CalcomTarget(base_url=base, api_key=key)
        db = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
        async with open_service(database_url=db, environ={}, calcom=target) as service:
            made = []
            for hour in (10, 11):
                start = datetime.combine(next_weekday(), time(hour), ZoneInfo("America/New_York"))
                draft = BookingDraft(
                    start=start,
                    attendee_name="Ana Ruiz",
                    attendee_email=f"ana{hour}@example.com",
                    to_number="+14155550100",
                    from_number="+14155550123",
                    call_type="inbound",
                    event_type_id=1005,
                )
                made.append((await service.book(draft)).id)
            return made

    port = free_port()
    with _sandbox_process(port) as sandbox:
        base = f"http://127.0.0.1:{port}"
        info = _sandbox_info(port, sandbox)
        env = {"APPT_TOOLS_CALCOM_API_KEY": str(info["apiKey"]), "APPT_TOOLS_CALCOM_BASE_URL": base}
        first, second = asyncio.run(book_two(base, str(info["apiKey"])))

        confirmed = _run(tmp_path, "appointments", "confirm", first, env=env)
        assert confirmed.returncode == 0, confirmed.stderr
        assert f"confirmed {first}" in confirmed.stdout and "now active" in confirmed.stdout
        declined = _run(tmp_path, "appointments", "decline", second, "--reason", "Fully booked", env=env)
        assert declined.returncode == 0, declined.stderr
        assert "now cancelled" in declined.stdout
        again = _run(tmp_path, "appointments", "confirm", first, env=env)
        assert again.returncode == 2 and "not_pending" in again.stderr

        outbox = httpx2.get(f"{base}/_sandbox/outbox").json()["data"]
    kinds = {(m["to"], m["kind"]) for m in outbox}
    assert ("ana10@example.com", "scheduled") in kinds
    assert ("ana11@example.com", "declined") in kinds
