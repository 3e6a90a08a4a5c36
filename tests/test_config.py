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


def test_http_api_keys_vapi_and_retell_secrets_come_from_the_environment_and_stay_secret():
    keys = "k_live_0123456789abcdefghijKEY1, k_live_0123456789abcdefghijKEY2"
    settings = config.resolve(
        {"http_api_keys": "k_live_storedstoredstoredKEY3"},
        {
            "APPT_TOOLS_HTTP_API_KEYS": keys,
            "APPT_TOOLS_VAPI_SECRET": "vapi-secret-0123456789",
            "APPT_TOOLS_RETELL_API_KEY": "key_retell_0123456789",
        },
    )
    assert [k.get_secret_value() for k in settings.http_api_keys] == [k.strip() for k in keys.split(",")]
    assert settings.sources["http_api_keys"] == "environment"
    dumped = repr(settings) + settings.model_dump_json()
    for secret in ("0123456789abcdefghij", "vapi-secret", "key_retell"):
        assert secret not in dumped
    assert settings.shown("http_api_keys") == "…KEY1, …KEY2"
    assert settings.shown("vapi_secret") == settings.shown("retell_api_key") == "****"


def test_stored_http_api_keys_are_used_when_the_environment_has_none():
    settings = config.resolve({"http_api_keys": "k_live_storedstoredstoredKEY3"}, {})
    assert [k.get_secret_value() for k in settings.http_api_keys] == ["k_live_storedstoredstoredKEY3"]
    assert settings.sources["http_api_keys"] == "stored"
    assert config.resolve({}, {}).http_api_keys == ()
    assert config.resolve({}, {}).shown("http_api_keys") == "(not set)"


@pytest.mark.parametrize(
    "value", ["", " , ", "tiny_key", "k_live_0123456789abcdefghijKEY1,tiny", "has a space in it, ok?"]
)
def test_weak_or_empty_http_api_keys_are_refused_without_repeating_them(value):
    with pytest.raises(InvalidArgument) as err:
        config.parse_setting("http_api_keys", value)
    assert err.value.field == "http_api_keys"
    assert all(part.strip() not in err.value.message for part in value.split(",") if part.strip())


def test_every_secret_setting_is_listed_as_secret():
    assert set(config.SECRET_KEYS) <= set(config.SETTING_KEYS)
    for key in config.SECRET_KEYS:
        with pytest.raises(InvalidArgument):
            config.parse_setting(key, "  ")


def test_calcom_timeout_is_a_bounded_number_of_seconds():
    assert config.resolve({}, {"APPT_TOOLS_CALCOM_TIMEOUT": "4.5"}).calcom_timeout == 4.5
    assert config.resolve({}, {}).calcom_timeout == config.DEFAULT_CALCOM_TIMEOUT
    for bad in ("0", "120", "soon"):
        with pytest.raises(InvalidArgument) as err:
            config.parse_setting("calcom_timeout", bad)
        assert err.value.field == "calcom_timeout"


def test_rate_limit_and_stateless_http_are_parsed_and_bounded():
    settings = config.resolve(
        {"calcom_rate_limit": "40"}, {"APPT_TOOLS_HTTP_STATELESS": "yes", "APPT_TOOLS_CALCOM_RATE_LIMIT": "60"}
    )
    assert (settings.calcom_rate_limit, settings.http_stateless) == (60, True)
    assert config.resolve({}, {}).calcom_rate_limit == 120 and not config.resolve({}, {}).http_stateless
    for key, value in (("calcom_rate_limit", "0"), ("calcom_rate_limit", "ten"), ("http_stateless", "maybe")):
        with pytest.raises(InvalidArgument) as err:
            config.parse_setting(key, value)
        assert err.value.field == key


async def test_the_client_paces_itself_to_the_configured_rate(tmp_path):
    from appt_tools.runtime import CalcomTarget, open_service

    env = {"APPT_TOOLS_CALCOM_RATE_LIMIT": "30"}
    target = CalcomTarget(base_url="http://127.0.0.1:9", api_key="cal_test_key")
    async with open_service(database_url=f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", environ=env, calcom=target) as s:
        assert s.calcom.rate_limit == 30
