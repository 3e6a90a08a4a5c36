"""Input parsing shared by every surface: each function returns a clean value or raises
`InvalidArgument` naming the field, why it is wrong, and what a valid value looks like."""

from __future__ import annotations

import functools
import importlib.resources
import json
import re
import unicodedata
from datetime import date, datetime, timedelta
from typing import Any, NoReturn
from zoneinfo import ZoneInfo, available_timezones

from appt_tools.errors import InvalidArgument
from appt_tools.models import CALL_TYPES, CallType

MAX_TEXT = {"title": 200, "attendee_name": 120, "business_name": 200, "label": 60, "description": 5000}
# Fields whose text may run over several lines; everywhere else a line break is refused (it would
# reach Cal.com's e-mails and calendar titles as given).
MULTILINE = frozenset({"description", "reason"})
LINE_BREAKS = frozenset("\n\r\t")
# Control characters (NUL, ESC, CR, LF...), lone surrogates and Unicode line/paragraph separators.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
# Dates a booking system can mean: anything else is a typo or a probe (and year 9999 overflows).
FIRST_DAY = date(1970, 1, 1)
LAST_DAY = date(2199, 12, 31)
# The largest integer any argument may carry: beyond it JSON numbers lose precision anyway.
MAX_INTEGER = 2**53


# No request of ours nests deeper than a handful of levels (a Vapi message: 5); 32 leaves room and
# keeps every later walk of the document (pydantic, our own checks) far from Python's recursion limit.
MAX_JSON_DEPTH = 32


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def json_document(body: bytes) -> Any:
    """`body` parsed as JSON (no NaN or Infinity, at most `MAX_JSON_DEPTH` levels of arrays and objects);
    ValueError saying what is wrong otherwise (json.JSONDecodeError for a syntax error)."""
    too_deep = ValueError(f"it is nested too deep (more than {MAX_JSON_DEPTH} levels of arrays and objects)")
    try:
        data = json.loads(body, parse_constant=_refuse_constant)
    except RecursionError:
        raise too_deep from None
    level: list[Any] = [data]
    for _ in range(MAX_JSON_DEPTH + 1):
        level = [
            child
            for item in level
            if isinstance(item, (dict, list))
            for child in (item.values() if isinstance(item, dict) else item)
            if isinstance(child, (dict, list))
        ]
        if not level:
            return data
    raise too_deep


def zone(field: str, name: str) -> ZoneInfo:
    """An IANA time zone of a place, such as 'America/New_York' (see `zone_name`)."""
    return ZoneInfo(zone_name(field, name))


# Areas of the tz database whose zones follow a place's civil time (with its daylight saving), plus the
# backward links people still choose ('US/Eastern', 'Canada/Pacific'...), which follow the same rules.
PLACE_AREAS = frozenset(
    {"Africa", "America", "Antarctica", "Arctic", "Asia", "Atlantic", "Australia", "Europe", "Indian", "Pacific"}
    | {"US", "Canada", "Brazil", "Chile", "Mexico"}
)
UNIVERSAL = frozenset({"UTC", "Etc/UTC"})
# What people say, mapped only where the words name one set of rules (no guess between places that differ).
SPOKEN_ZONES = {
    "eastern": "America/New_York",
    "eastern time": "America/New_York",
    "us eastern": "America/New_York",
    "us central": "America/Chicago",
    "pacific": "America/Los_Angeles",
    "pacific time": "America/Los_Angeles",
    "us pacific": "America/Los_Angeles",
    "alaska": "America/Anchorage",
    "hawaii": "Pacific/Honolulu",
    "central european": "Europe/Berlin",
    "central european time": "Europe/Berlin",
    "uk": "Europe/London",
    "british": "Europe/London",
}
# Legacy names with fixed or obsolete rules, and what the person most likely meant.
_LEGACY_HINTS = {
    "EST": "'EST' has no daylight saving; for US Eastern time use America/New_York",
    "EST5EDT": "'EST5EDT' is a legacy rule, not a place; for US Eastern time use America/New_York",
    "CST6CDT": "'CST6CDT' is a legacy rule, not a place; for US Central time use America/Chicago",
    "MST": "'MST' has no daylight saving; use America/Denver for US Mountain time, or America/Phoenix for Arizona",
    "MST7MDT": "'MST7MDT' is a legacy rule, not a place; for US Mountain time use America/Denver",
    "PST8PDT": "'PST8PDT' is a legacy rule, not a place; for US Pacific time use America/Los_Angeles",
    "HST": "'HST' is a fixed offset; for Hawaii use Pacific/Honolulu",
    "CET": "'CET' is a legacy rule, not a place; for Central European time use e.g. Europe/Berlin or Europe/Paris",
    "MET": "'MET' is a legacy rule, not a place; for Central European time use e.g. Europe/Berlin",
    "EET": "'EET' is a legacy rule, not a place; use the city's zone, e.g. Europe/Athens or Europe/Helsinki",
    "WET": "'WET' is a legacy rule, not a place; use the city's zone, e.g. Europe/Lisbon",
    "GMT": "'GMT' never changes for summer time; for the UK use Europe/London, otherwise 'UTC'",
    "GREENWICH": "'Greenwich' never changes for summer time; for the UK use Europe/London, otherwise 'UTC'",
    "POSIXRULES": "'posixrules' is a file of the tz database, not a place; use e.g. America/New_York",
    "FACTORY": "'Factory' is a placeholder of the tz database, not a place; use e.g. America/New_York",
    "CENTRAL": "'Central' could be US Central or Central European time; use America/Chicago or Europe/Berlin",
    "MOUNTAIN": "'Mountain' is two sets of rules; use America/Denver, or America/Phoenix for Arizona (no daylight saving)",
    "MOUNTAIN TIME": "'Mountain' is two sets of rules; use America/Denver, or America/Phoenix for Arizona (no daylight saving)",
}
_EXAMPLES = "use the IANA name of a place, e.g. 'America/New_York' or 'Europe/London'"


def zone_name(field: str, name: str) -> str:
    """The IANA name of a place's time zone ('America/New_York'), or UTC. Names without civil rules are
    refused with what to use instead: fixed offsets and legacy abbreviations ('EST' has no daylight saving,
    so a caller who said "Eastern" would be an hour off all summer), 'Etc/GMT+5', bare offsets, 'posixrules',
    'Factory'. A few spoken names that mean one set of rules ('Eastern', 'Pacific', 'Central European')
    map to their zone; a wrongly cased name is corrected."""
    raw = name.strip() if isinstance(name, str) else ""
    if not raw:
        raise InvalidArgument(field, f"is empty; {_EXAMPLES}.")
    spoken = SPOKEN_ZONES.get(" ".join(raw.lower().replace("_", " ").split()))
    if spoken is not None:
        return spoken
    hint = _LEGACY_HINTS.get(raw.upper())
    if hint is not None:
        raise InvalidArgument(field, f"{hint}.")
    canonical = _zones_by_lower().get(raw.lower())
    if canonical is None or raw.startswith("/") or ".." in raw:
        if _looks_like_offset(raw):
            raise InvalidArgument(
                field,
                f"{name!r} is a fixed offset with no daylight saving; {_EXAMPLES}, whose offset changes with the season.",
            )
        raise InvalidArgument(field, f"unknown time zone {name!r}; {_EXAMPLES}.")
    area = canonical.split("/", 1)[0]
    if canonical in UNIVERSAL or ("/" in canonical and area in PLACE_AREAS):
        return canonical
    if canonical.startswith("Etc/") or _looks_like_offset(canonical):
        raise InvalidArgument(
            field,
            f"{name!r} is a fixed offset with no daylight saving (and 'Etc/GMT+5' means UTC-5); {_EXAMPLES}.",
        )
    target = _links().get(canonical)
    if target is not None and target.split("/", 1)[0] in PLACE_AREAS:
        raise InvalidArgument(field, f"{name!r} is a legacy alias; use {target!r}.")
    raise InvalidArgument(field, f"{name!r} is not a place's time zone; {_EXAMPLES}.")


def _looks_like_offset(text: str) -> bool:
    return re.fullmatch(r"(?i)(utc|gmt|etc/gmt|z)?\s*[+-−]\s*\d{1,2}(:?\d{2})?|[+-]\d{1,2}", text.strip()) is not None


@functools.cache
def _zones_by_lower() -> dict[str, str]:
    return {name.lower(): name for name in available_timezones()}


@functools.cache
def _links() -> dict[str, str]:
    """The tz database's links (alias → zone), from tzdata's `tzdata.zi`."""
    table = importlib.resources.files("tzdata.zoneinfo").joinpath("tzdata.zi").read_text(encoding="utf-8")
    links: dict[str, str] = {}
    for line in table.splitlines():
        if line.startswith("L "):
            _, target, alias = line.split()
            links[alias] = target
    return links


def rehearse() -> None:
    """Load what `email` and `phone_e164` import on first use (email_validator's tables, phonenumbers'
    metadata and patterns: about 50 ms together), so that the first booking does not wait for it. A server
    runs this in a worker thread once it has started; imports stay off the path to its first tools/list."""
    email("attendee_email", "ana@example.com")
    phone_e164("from_number", "+14155550123")


def email(field: str, value: str) -> str:
    """A deliverable-looking address, normalised (domain lower-cased)."""
    # Imported on first use, not at start: `appt-tools serve` answers its first tools/list sooner (cold start).
    from email_validator import EmailNotValidError, validate_email

    try:
        return validate_email(value.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise InvalidArgument(
            field, f"{value!r} is not a valid e-mail address ({exc}); e.g. 'ana@example.com'."
        ) from None


def phone_e164(field: str, value: str) -> str:
    """A phone number already in E.164 form: '+', country code, number, no spaces, e.g. '+14155550123'."""
    import phonenumbers  # on first use, like email_validator above

    hint = "use E.164: '+', the country code and the number, no spaces, e.g. '+14155550123'."
    raw = value.strip()
    if not raw.startswith("+") or not raw[1:].isdigit():
        raise InvalidArgument(field, f"{value!r} is not in E.164 form; {hint}")
    try:
        parsed = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        raise InvalidArgument(field, f"{value!r} is not a phone number; {hint}") from None
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidArgument(field, f"{value!r} is not a valid number for its country code; {hint}")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def phone(field: str, value: str, region: str | None) -> str:
    """A phone number in any common form, as E.164: '+14155550134' or '+1 415-555-0134' as they are,
    a national number such as '(415) 555-0134' read in `region` (ISO 3166, e.g. 'US')."""
    import phonenumbers

    raw = value.strip()
    example = _example(region)
    if not raw:
        raise InvalidArgument(field, f"enter a phone number, e.g. {example}.")
    if raw.startswith("00"):
        raw = "+" + raw[2:]
    if not raw.startswith("+") and region is None:
        raise InvalidArgument(
            field,
            f"{value!r} has no country code and the business's country is not known; start with '+' and the country code, e.g. '+14155550134'.",
        )
    try:
        parsed = phonenumbers.parse(raw, None if raw.startswith("+") else region)
    except phonenumbers.NumberParseException:
        raise InvalidArgument(field, f"{value!r} is not a phone number; e.g. {example}.") from None
    if not phonenumbers.is_valid_number(parsed):
        where = "" if raw.startswith("+") else f" in {region}"
        raise InvalidArgument(field, f"{value!r} is not a valid phone number{where}; check the digits, e.g. {example}.")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def country_of_phone(e164: str) -> str | None:
    """The region (ISO 3166, e.g. 'US') of a number already in E.164 form, to read a national form of it."""
    import phonenumbers

    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(e164, None))
    except phonenumbers.NumberParseException:
        return None
    return region if region and region != "ZZ" else None


def _example(region: str | None) -> str:
    import phonenumbers

    sample = phonenumbers.example_number(region) if region else None
    if sample is None:
        return "'+14155550134'"
    national = phonenumbers.format_number(sample, phonenumbers.PhoneNumberFormat.NATIONAL)
    return f"'{national}' or '{phonenumbers.format_number(sample, phonenumbers.PhoneNumberFormat.E164)}'"


def country_of_zone(name: str) -> str | None:
    """The country (ISO 3166 code, e.g. 'US') of an IANA time zone, from the tz database's
    zone.tab; None for zones of no one country ('UTC', 'Etc/GMT+5') and unknown names."""
    return _zone_countries().get(name)


@functools.cache
def _zone_countries() -> dict[str, str]:
    table = importlib.resources.files("tzdata.zoneinfo").joinpath("zone.tab").read_text(encoding="utf-8")
    countries: dict[str, str] = {}
    for line in table.splitlines():
        if line and not line.startswith("#"):
            code, _, zone_name, *_ = line.split("\t")
            countries[zone_name] = code
    # Links the table leaves out but people still choose (see tzdata's 'backward' file).
    for link, target in _LINKS.items():
        if target in countries:
            countries.setdefault(link, countries[target])
    return countries


def country_name(code: str | None) -> str | None:
    """'US' → 'United States', from the tz database's iso3166.tab."""
    return _country_names().get(code or "")


@functools.cache
def _country_names() -> dict[str, str]:
    table = importlib.resources.files("tzdata.zoneinfo").joinpath("iso3166.tab").read_text(encoding="utf-8")
    return dict(line.split("\t", 1) for line in table.splitlines() if line and not line.startswith("#"))


_LINKS = {
    "US/Eastern": "America/New_York",
    "US/Central": "America/Chicago",
    "US/Mountain": "America/Denver",
    "US/Pacific": "America/Los_Angeles",
    "US/Alaska": "America/Anchorage",
    "US/Hawaii": "Pacific/Honolulu",
    "US/Arizona": "America/Phoenix",
    "Canada/Eastern": "America/Toronto",
    "Canada/Pacific": "America/Vancouver",
    "Europe/Kiev": "Europe/Kyiv",
    "Asia/Calcutta": "Asia/Kolkata",
    "Australia/ACT": "Australia/Sydney",
    "GB": "Europe/London",
}


def call_type(field: str, value: str) -> CallType:
    for known in CALL_TYPES:
        if value == known:
            return known
    raise InvalidArgument(field, f"{value!r} is not a call type; use one of {', '.join(CALL_TYPES)}.")


def plain_string(field: str, value: str) -> str:
    """Any string argument: no NUL and no lone surrogate (neither can be stored or sent on)."""
    for char in value:
        if char == "\x00" or unicodedata.category(char) == "Cs":
            raise InvalidArgument(
                field, f"contains {_named(char)}, which text may not hold; send plain text, e.g. 'Ana Ruiz'."
            )
    return value


def integer(field: str, value: int) -> int:
    """Any integer argument: a JSON integer (not a boolean) no larger than 2^53 either way."""
    if abs(value) > MAX_INTEGER:
        raise InvalidArgument(field, f"is too large ({len(str(abs(value)))} digits); use a whole number such as 1.")
    return value


def text(field: str, value: str | None, *, required: bool = False) -> str:
    """Free text: no control characters (line breaks and tabs only in a description or a reason), no
    lone surrogates, within the field's length limit."""
    cleaned = (value or "").strip()
    allowed = LINE_BREAKS if field in MULTILINE else frozenset()
    for char in cleaned:
        if char not in allowed and unicodedata.category(char) in _REFUSED_CATEGORIES:
            where = "a description or reason" if allowed else "one line of text"
            raise InvalidArgument(
                field,
                f"contains {_named(char)}, which {where} may not hold; send plain text, e.g. 'Ana Ruiz'.",
            )
    if required and not cleaned:
        raise InvalidArgument(field, "must not be empty.")
    limit = MAX_TEXT.get(field, 500)
    if len(cleaned) > limit:
        raise InvalidArgument(field, f"is {len(cleaned)} characters long; the limit is {limit}.")
    return cleaned


def _named(char: str) -> str:
    names = {
        "\x00": "a NUL character",
        "\n": "a line break",
        "\r": "a line break",
        "\t": "a tab",
        "\x1b": "an escape character",
    }
    if char in names:
        return names[char]
    if unicodedata.category(char) == "Cs":
        return "a lone surrogate (invalid Unicode)"
    return f"the control character U+{ord(char):04X}"


def date_in_range(field: str, value: date, raw: str) -> None:
    if not FIRST_DAY <= value <= LAST_DAY:
        raise InvalidArgument(
            field,
            f"{raw!r} is outside the dates this system handles ({FIRST_DAY.isoformat()} to "
            f"{LAST_DAY.isoformat()}); use a real date, e.g. '2026-11-24'.",
        )


def instant(field: str, value: str, tz_name: str | None) -> datetime:
    """An ISO 8601 date-time. With an offset ('2026-11-24T15:00:00-05:00' or '…Z') it is exact;
    without one it is read in `tz_name`; with neither it is refused rather than guessed."""
    raw = value.strip()
    try:
        parsed = datetime.fromisoformat(raw.replace("z", "Z"))
    except ValueError:
        raise InvalidArgument(
            field,
            f"{value!r} is not an ISO 8601 date-time; use e.g. '2026-11-24T15:00:00-05:00' or '2026-11-24T20:00:00Z'.",
        ) from None
    date_in_range(field, parsed.date(), value)
    if parsed.tzinfo is None:
        if tz_name is None:
            raise InvalidArgument(
                field,
                f"{value!r} has no UTC offset and no time zone was given; add an offset "
                "('2026-11-24T15:00:00-05:00') or pass timezone (e.g. 'America/New_York').",
            )
        parsed = parsed.replace(tzinfo=zone("timezone", tz_name))
        if parsed.replace(fold=1).utcoffset() != parsed.utcoffset() and _skipped(parsed):
            raise InvalidArgument(
                field, f"{value!r} does not exist in {tz_name} (the clocks skip it for daylight saving)."
            )
    return parsed


def _skipped(local: datetime) -> bool:
    """True for a wall time inside a spring-forward gap (it does not survive a UTC round trip)."""
    tz = local.tzinfo
    assert tz is not None
    back = local.astimezone(ZoneInfo("UTC")).astimezone(tz)
    return back.replace(tzinfo=None) != local.replace(tzinfo=None)


def day(field: str, value: str) -> date:
    try:
        parsed = date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidArgument(field, f"{value!r} is not a date; use YYYY-MM-DD, e.g. '2026-11-24'.") from None
    date_in_range(field, parsed, value)
    return parsed


def whole_number(field: str, raw: str | None) -> int | None:
    """A query parameter holding a whole number: ASCII digits only ('²' passes `str.isdigit`), at most
    nine of them; None when absent or empty."""
    if raw is None or not raw.strip():
        return None
    value = raw.strip()
    if not (value.isascii() and value.isdigit()) or len(value) > 9:
        raise InvalidArgument(field, f"{value[:20]!r} is not a whole number; use digits only, e.g. 1.")
    return int(value)


def in_future(field: str, when: datetime, now: datetime, *, tz_name: str) -> None:
    if when <= now:
        shown = when.astimezone(ZoneInfo(tz_name)).strftime("%Y-%m-%d %H:%M")
        raise InvalidArgument(field, f"{shown} ({tz_name}) is in the past; choose a time after now.")


def duration(field: str, value: int | None) -> int | None:
    if value is None:
        return None
    if value < 5 or value > 24 * 60:
        raise InvalidArgument(field, f"{value} minutes is out of range; use 5 to 1440, e.g. 30.")
    return value


def window(start: datetime, end: datetime, *, max_days: int = 31) -> None:
    if end <= start:
        raise InvalidArgument("end", "must be after start.")
    if end - start > timedelta(days=max_days):
        raise InvalidArgument("end", f"the range is longer than {max_days} days; ask for a shorter one.")


def idempotency_key(value: str | None) -> str | None:
    """A caller's idempotency key: 1 to 200 printable characters, e.g. a call id plus a step."""
    if value is None:
        return None
    key = value.strip()
    if not key or len(key) > 200 or not key.isprintable():
        raise InvalidArgument(
            "idempotency_key", "must be 1 to 200 printable characters, e.g. 'call-7f3a-book-1' (one per request)."
        )
    return key


# The attendee languages Cal.com's booking input takes (`attendee.language`, NOTES §3.2): its e-mails
# and invite arrive in this language.
LANGUAGES = (
    "ar", "ca", "de", "es", "eu", "he", "id", "ja", "lv", "pl", "ro", "sr", "th", "vi", "az", "cs", "el",
    "es-419", "fi", "hr", "it", "km", "nl", "pt", "ru", "sv", "tr", "zh-CN", "bg", "da", "en", "et", "fr",
    "hu", "iw", "ko", "no", "pt-BR", "sk", "ta", "uk", "zh-TW", "bn",
)  # fmt: skip


def language(field: str, value: str) -> str:
    """One of Cal.com's locales, matched without regard to case or '_' for '-' (e.g. 'pt_br' is 'pt-BR')."""
    wanted = value.strip().replace("_", "-").casefold()
    for code in LANGUAGES:
        if code.casefold() == wanted:
            return code
    raise InvalidArgument(
        field,
        f"{value!r} is not a language Cal.com can write invites in; use a code such as 'en', 'es', 'fr' "
        f"or 'pt-BR' (one of {', '.join(sorted(LANGUAGES))}).",
    )
