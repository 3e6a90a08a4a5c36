"""`appt-tools tenants …` and `settings --tenant`, run as a user runs them: a subprocess on a real
database file, with its own environment."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from test_cli import KEY, _run

OTHER_KEY = "cal_live_fedcba9876543210OTHERK"


def _ok(tmp_path: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    done = _run(tmp_path, *args, stdin=stdin)
    assert done.returncode == 0, done.stderr
    return done


def _rows(listing: str) -> dict[str, list[str]]:
    """`tenants list` as slug → the rest of its columns (split on two or more spaces)."""
    rows = {}
    for line in listing.splitlines()[1:]:
        slug, *rest = re.split(r"\s{2,}", line.strip())
        rows[slug] = rest
    return rows


def test_add_list_show_and_the_key_never_printed(tmp_path):
    added = _ok(tmp_path, "tenants", "add", "acme", "--name", "Acme Dental", "--numbers", "+14155550100, +14155550101")
    assert "added tenant 'acme' (Acme Dental), answering on +14155550100, +14155550101" in added.stderr
    assert "settings set --tenant acme calcom_api_key" in added.stderr  # the next step
    _ok(tmp_path, "tenants", "add", "bolt", "--name", "Bolt Garage")
    stored = _ok(tmp_path, "settings", "set", "--tenant", "acme", "calcom_api_key", stdin=KEY + "\n")
    assert stored.stderr.strip() == "stored calcom_api_key for tenant 'acme': (not set) → cal_…CRET"

    listing = _ok(tmp_path, "tenants", "list")
    rows = _rows(listing.stdout)
    assert list(rows) == ["acme", "bolt", "default"]
    assert rows["acme"] == ["Acme Dental", "set", "+14155550100, +14155550101"]
    assert rows["bolt"] == ["Bolt Garage", "not set", "-"]
    shown = _ok(tmp_path, "tenants", "show", "acme")
    assert "name              Acme Dental" in shown.stdout
    assert re.search(r"calcom_api_key\s+cal_…CRET\s+\[stored\]", shown.stdout)
    for done in (added, stored, listing, shown):
        assert KEY not in done.stdout + done.stderr


def test_settings_are_per_tenant_and_the_default_tenant_is_unchanged(tmp_path):
    _ok(tmp_path, "tenants", "add", "acme", "--name", "Acme Dental")
    _ok(tmp_path, "settings", "set", "timezone", "Europe/Madrid")  # no --tenant: the default tenant, as always
    _ok(tmp_path, "settings", "set", "--tenant", "acme", "timezone", "Asia/Tokyo")
    _ok(tmp_path, "settings", "set", "--tenant", "acme", "calcom_api_key", stdin=KEY)
    assert re.search(r"timezone\s+Europe/Madrid\s+\[stored\]", _ok(tmp_path, "settings", "show").stdout)
    assert re.search(r"calcom_api_key\s+\(not set\)\s+\[default\]", _ok(tmp_path, "settings", "show").stdout)
    acme = _ok(tmp_path, "settings", "show", "--tenant", "acme").stdout
    assert re.search(r"timezone\s+Asia/Tokyo\s+\[stored\]", acme)
    assert re.search(r"calcom_api_key\s+cal_…CRET\s+\[stored\]", acme)
    assert re.search(r"timezone\s+Europe/Madrid", _ok(tmp_path, "settings", "show", "--tenant", "default").stdout)
    removed = _ok(tmp_path, "settings", "unset", "--tenant", "acme", "timezone")
    assert removed.stderr.strip() == "removed stored timezone for tenant 'acme': Asia/Tokyo → (not set)"
    assert re.search(r"timezone\s+Europe/Madrid\s+\[stored\]", _ok(tmp_path, "settings", "show").stdout)


def test_a_business_setting_from_the_environment_is_the_default_tenants_a_deployment_one_everyones(tmp_path):
    _ok(tmp_path, "tenants", "add", "acme", "--name", "Acme Dental")
    env = {"APPT_TOOLS_TIMEZONE": "America/Chicago", "APPT_TOOLS_CALCOM_TIMEOUT": "7"}
    default = _run(tmp_path, "settings", "show", env=env).stdout
    assert re.search(r"timezone\s+America/Chicago\s+\[environment\]", default)
    acme = _run(tmp_path, "settings", "show", "--tenant", "acme", env=env).stdout
    assert re.search(r"timezone\s+\(not set\)\s+\[default\]", acme)
    assert re.search(r"calcom_timeout\s+7(\.0)?\s+\[environment\]", acme)


def test_a_secret_for_a_tenant_on_the_command_line_is_refused_naming_the_tenant_form(tmp_path):
    _ok(tmp_path, "tenants", "add", "acme", "--name", "Acme Dental")
    refused = _run(tmp_path, "settings", "set", "--tenant", "acme", "calcom_api_key", KEY)
    assert refused.returncode == 2
    assert "appt-tools settings set --tenant acme calcom_api_key" in refused.stderr
    assert KEY not in refused.stdout + refused.stderr
    assert "(not set)" in next(
        line
        for line in _ok(tmp_path, "settings", "show", "--tenant", "acme").stdout.splitlines()
        if line.startswith("calcom_api_key")
    )


def test_an_unknown_slug_is_refused_with_the_slugs_there_are(tmp_path):
    _ok(tmp_path, "tenants", "add", "acme", "--name", "Acme Dental")
    _ok(tmp_path, "tenants", "add", "bolt", "--name", "Bolt Garage")
    for args in (
        ("tenants", "show", "acmee"),
        ("tenants", "set", "acmee", "--name", "X"),
        ("tenants", "remove", "acmee"),
        ("settings", "show", "--tenant", "acmee"),
        ("settings", "set", "--tenant", "acmee", "timezone", "Asia/Tokyo"),
    ):
        refused = _run(tmp_path, *args)
        assert refused.returncode == 2, args
        assert "There is no tenant 'acmee'. The tenants are: acme, bolt, default." in refused.stderr, args
        assert "Traceback" not in refused.stderr


def test_event_types_and_appointments_take_tenant(tmp_path):
    _ok(tmp_path, "tenants", "add", "acme", "--name", "Acme Dental")
    listed = _ok(tmp_path, "event-types", "list", "--tenant", "acme")
    assert "no event types synced yet" in listed.stderr
    unknown = _run(tmp_path, "event-types", "list", "--tenant", "acmee")
    assert unknown.returncode == 2 and "acmee" in unknown.stderr and "Traceback" not in unknown.stderr
    missing = _run(tmp_path, "appointments", "confirm", "apt_000000000000", "--tenant", "acme")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr


def test_a_number_already_taken_names_its_tenant_and_nothing_changes(tmp_path):
    _ok(tmp_path, "tenants", "add", "acme", "--name", "Acme Dental", "--numbers", "+14155550100")
    clash = _run(tmp_path, "tenants", "add", "bolt", "--name", "Bolt Garage", "--numbers", "+14155550100")
    assert clash.returncode == 2
    assert "+14155550100 already belongs to tenant 'acme'" in clash.stderr
    assert "bolt" not in _rows(_ok(tmp_path, "tenants", "list").stdout)
    _ok(tmp_path, "tenants", "add", "bolt", "--name", "Bolt Garage", "--numbers", "+14155550199")
    moved = _run(tmp_path, "tenants", "set", "bolt", "--numbers", "+14155550199,+14155550100")
    assert moved.returncode == 2 and "already belongs to tenant 'acme'" in moved.stderr
    assert _rows(_ok(tmp_path, "tenants", "list").stdout)["bolt"][-1] == "+14155550199"


def test_bad_slug_name_and_number_are_clear(tmp_path):
    bad_slug = _run(tmp_path, "tenants", "add", "Acme Dental", "--name", "Acme")
    assert (
        bad_slug.returncode == 2 and "not a valid tenant slug" in bad_slug.stderr and "acme-dental" in bad_slug.stderr
    )
    bad_number = _run(tmp_path, "tenants", "add", "acme", "--name", "Acme", "--numbers", "555-0100")
    assert bad_number.returncode == 2 and "numbers" in bad_number.stderr and "+" in bad_number.stderr
    nothing = _run(tmp_path, "tenants", "set", "default")
    assert nothing.returncode == 2 and "--name" in nothing.stderr
    taken = _run(tmp_path, "tenants", "add", "default", "--name", "Again")
    assert taken.returncode == 2 and "already the slug of a tenant" in taken.stderr


def test_set_renames_and_renumbers(tmp_path):
    _ok(tmp_path, "tenants", "add", "acme", "--name", "Acme Dental", "--numbers", "+14155550100")
    renamed = _ok(tmp_path, "tenants", "set", "acme", "--name", "Acme Dental Care", "--numbers", "+14155550101")
    assert "name 'Acme Dental' → 'Acme Dental Care'" in renamed.stderr
    assert "numbers +14155550100 → +14155550101" in renamed.stderr
    assert _rows(_ok(tmp_path, "tenants", "list").stdout)["acme"] == ["Acme Dental Care", "not set", "+14155550101"]
    cleared = _ok(tmp_path, "tenants", "set", "acme", "--numbers", "")
    assert "numbers +14155550101 → (none)" in cleared.stderr


def test_remove_keeps_the_data_and_purge_asks_for_the_slug_typed_back(tmp_path):
    _ok(tmp_path, "tenants", "add", "acme", "--name", "Acme Dental", "--numbers", "+14155550100")
    _ok(tmp_path, "settings", "set", "--tenant", "acme", "calcom_api_key", stdin=KEY)
    removed = _ok(tmp_path, "tenants", "remove", "acme")
    assert "its appointments and settings are kept" in removed.stderr and "--purge" in removed.stderr
    assert "acme" not in _rows(_ok(tmp_path, "tenants", "list").stdout)
    gone = _run(tmp_path, "tenants", "show", "acme")
    assert gone.returncode == 2 and "it was removed; its data is kept" in gone.stderr
    # The number is free again; the slug is still held by the removed tenant's data.
    _ok(tmp_path, "tenants", "add", "bolt", "--name", "Bolt Garage", "--numbers", "+14155550100")
    held = _run(tmp_path, "tenants", "add", "acme", "--name", "Acme again")
    assert held.returncode == 2 and "purge it to reuse the slug" in held.stderr

    wrong = _run(tmp_path, "tenants", "remove", "acme", "--purge", stdin="acm\n")
    assert wrong.returncode == 2 and "nothing was deleted" in wrong.stderr
    assert "Type its slug to confirm" in wrong.stderr
    still = _run(tmp_path, "tenants", "add", "acme", "--name", "Acme again")
    assert still.returncode == 2  # the data is still there
    purged = _ok(tmp_path, "tenants", "remove", "acme", "--purge", stdin="acme\n")
    assert "purged tenant 'acme'" in purged.stderr
    _ok(tmp_path, "tenants", "add", "acme", "--name", "Acme again")  # the slug is free: nothing of it left
    fresh = _ok(tmp_path, "settings", "show", "--tenant", "acme").stdout
    assert re.search(r"calcom_api_key\s+\(not set\)\s+\[default\]", fresh)  # the old key went with the purge


def test_the_default_tenant_cannot_be_removed(tmp_path):
    refused = _run(tmp_path, "tenants", "remove", "default")
    assert refused.returncode == 2 and "default tenant" in refused.stderr
    assert "default" in _rows(_ok(tmp_path, "tenants", "list").stdout)


def test_tenants_help_explains_the_purge_confirmation():
    shown = subprocess.run(
        [sys.executable, "-m", "appt_tools", "tenants", "remove", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "type the slug" in shown.stdout
