from datetime import UTC, datetime

import pytest

from appt_tools import validation
from appt_tools.errors import InvalidArgument


def test_e164_numbers_are_accepted_and_normalised():
    assert validation.phone_e164("to_number", " +14155550123 ") == "+14155550123"
    assert validation.phone_e164("to_number", "+442079460958") == "+442079460958"


@pytest.mark.parametrize("raw", ["4155550123", "+1 415 555 0123", "(415) 555-0123", "+1415555", "+00000000000", ""])
def test_phone_numbers_not_in_e164_name_the_field_and_the_format(raw):
    with pytest.raises(InvalidArgument) as err:
        validation.phone_e164("from_number", raw)
    assert err.value.field == "from_number"
    assert "E.164" in err.value.message


@pytest.mark.parametrize("raw", ["ana", "ana@", "@example.com", "ana@@example.com", "ana example@x.com"])
def test_malformed_email_is_refused(raw):
    with pytest.raises(InvalidArgument) as err:
        validation.email("attendee_email", raw)
    assert err.value.field == "attendee_email"


def test_email_domain_is_normalised():
    assert validation.email("attendee_email", "Ana@Example.COM") == "Ana@example.com"


@pytest.mark.parametrize("raw", ["Mars/Olympus", "EST5EDT/../etc", "", "/etc/passwd"])
def test_unknown_time_zone_is_refused(raw):
    with pytest.raises(InvalidArgument) as err:
        validation.zone("timezone", raw)
    assert err.value.field == "timezone"


def test_instant_with_offset_is_exact():
    at = validation.instant("start", "2030-03-05T15:00:00-05:00", None)
    assert at.astimezone(UTC) == datetime(2030, 3, 5, 20, 0, tzinfo=UTC)


def test_instant_with_z_is_utc():
    assert validation.instant("start", "2030-03-05T20:00:00Z", None) == datetime(2030, 3, 5, 20, tzinfo=UTC)


def test_naive_instant_is_read_in_the_given_zone_across_dst():
    summer = validation.instant("start", "2030-07-01T09:00:00", "America/New_York")
    winter = validation.instant("start", "2030-12-01T09:00:00", "America/New_York")
    assert summer.astimezone(UTC).hour == 13
    assert winter.astimezone(UTC).hour == 14


def test_naive_instant_without_zone_is_refused_not_guessed():
    with pytest.raises(InvalidArgument) as err:
        validation.instant("start", "2030-07-01T09:00:00", None)
    assert err.value.field == "start"
    assert "offset" in err.value.message


def test_a_wall_time_skipped_by_daylight_saving_is_refused():
    with pytest.raises(InvalidArgument):
        validation.instant("start", "2030-03-10T02:30:00", "America/New_York")


def test_garbage_instant_is_refused():
    with pytest.raises(InvalidArgument):
        validation.instant("start", "tomorrow at 3", "UTC")


def test_call_type_must_be_known():
    assert validation.call_type("call_type", "outbound") == "outbound"
    with pytest.raises(InvalidArgument) as err:
        validation.call_type("call_type", "sms")
    assert "inbound" in err.value.message


def test_oversized_text_is_refused_with_the_limit():
    with pytest.raises(InvalidArgument) as err:
        validation.text("title", "x" * 201)
    assert "200" in err.value.message


@pytest.mark.parametrize(
    ("typed", "region", "e164"),
    [
        ("(415) 555-0134", "US", "+14155550134"),
        ("415.555.0134", "US", "+14155550134"),
        ("+1 415-555-0134", "US", "+14155550134"),
        ("+14155550134", None, "+14155550134"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("0044 20 7946 0958", "US", "+442079460958"),
    ],
)
def test_phone_numbers_in_any_common_form_become_e164(typed: str, region: str | None, e164: str) -> None:
    assert validation.phone("to_number", typed, region) == e164


@pytest.mark.parametrize(
    ("typed", "region", "says"),
    [
        ("", "US", "enter a phone number, e.g. '(201) 555-0123'"),
        ("555-01", "US", "is not a valid phone number in US"),
        ("call me", "US", "is not a phone number"),
        ("(415) 555-0134", None, "has no country code and the business's country is not known"),
    ],
)
def test_a_phone_number_that_cannot_be_read_says_why_and_gives_an_example(
    typed: str, region: str | None, says: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        validation.phone("to_number", typed, region)
    assert caught.value.field == "to_number" and says in caught.value.message


def test_a_time_zone_gives_its_country() -> None:
    assert validation.country_of_zone("America/Los_Angeles") == "US"
    assert validation.country_of_zone("Europe/Paris") == "FR"
    assert validation.country_of_zone("US/Pacific") == "US"
    assert validation.country_of_zone("UTC") is None
    assert validation.country_name("US") == "United States"
