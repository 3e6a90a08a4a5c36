import pytest

from appt_tools import config
from appt_tools.errors import InvalidArgument


def test_environment_wins_over_stored_settings():
    settings = config.resolve(
        {"timezone": "Europe/London", "event_type_id": "7"},
        {"APPT_TOOLS_TIMEZONE": "America/Chicago"},
    )
    assert settings.timezone == "America/Chicago"
    assert settings.event_type_id == 7
    assert settings.sources["timezone"] == "environment"
    assert settings.sources["event_type_id"] == "stored"
    assert settings.sources["duration_minutes"] == "default"


def test_api_key_is_secret_and_masked():
    settings = config.resolve({}, {"APPT_TOOLS_CALCOM_API_KEY": "cal_live_abcdefghijklmnop"})
    assert "abcdefghijkl" not in repr(settings)
    assert "abcdefghijkl" not in settings.model_dump_json()
    assert settings.masked_key() == "cal_…mnop"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("timezone", "Nowhere/Land"),
        ("event_type_id", "abc"),
        ("duration_minutes", "-5"),
        ("calcom_base_url", "ftp://x"),
    ],
)
def test_bad_setting_values_are_refused_by_name(key, value):
    with pytest.raises(InvalidArgument) as err:
        config.parse_setting(key, value)
    assert err.value.field == key


def test_database_url_defaults_to_the_user_data_directory():
    assert config.database_url({}).startswith("sqlite+aiosqlite:///")
    assert config.database_url({"APPT_TOOLS_DATABASE_URL": "sqlite+aiosqlite:///x.db"}) == "sqlite+aiosqlite:///x.db"
