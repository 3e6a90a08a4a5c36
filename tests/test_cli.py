"""The command line, run as a user runs it: a subprocess with its own environment."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2

from appt_tools.surfaces.cli import main
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
    assert _run(tmp_path, "settings", "set", "calcom_api_key", KEY).returncode == 0
    shown = _run(tmp_path, "settings", "show")
    assert shown.returncode == 0
    assert "Europe/Madrid" in shown.stdout
    assert KEY not in shown.stdout + shown.stderr
    assert re.search(r"calcom_api_key\s+cal_…CRET\s+\[stored\]", shown.stdout)


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
