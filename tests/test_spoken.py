from datetime import UTC, datetime

from appt_tools.speech import spoken


def test_when_reads_like_speech_in_the_business_zone():
    at = datetime(2026, 11, 24, 20, 0, tzinfo=UTC)
    assert spoken.when(at, "America/New_York") == "Tuesday, November 24 at 3 PM"


def test_noon_and_midnight_are_twelve():
    assert spoken.clock(datetime(2026, 1, 1, 12, 0, tzinfo=UTC), "UTC") == "12 PM"
    assert spoken.clock(datetime(2026, 1, 1, 0, 30, tzinfo=UTC), "UTC") == "12:30 AM"


def test_choices_group_times_on_the_same_day():
    times = [datetime(2026, 11, 24, h, m, tzinfo=UTC) for h, m in ((20, 30), (21, 0))]
    times.append(datetime(2026, 11, 25, 14, 0, tzinfo=UTC))
    assert spoken.choices(times, "America/New_York") == (
        "Tuesday, November 24 at 3:30 PM, 4 PM or Wednesday, November 25 at 9 AM"
    )


def test_iso_carries_the_local_offset():
    assert spoken.iso(datetime(2026, 7, 1, 13, 0, tzinfo=UTC), "America/New_York") == "2026-07-01T09:00:00-04:00"
