"""The drawer's fields, every one checked before anything is sent to Cal.com, so one submit shows
every problem at once, each at its field, in words for the business owner. Phone numbers are taken
in any common form and read in the business's country (its time zone's, see `country_of_zone`).

The service checks the same fields again (its rules are the ones that count); this only gathers its
complaints, which it would otherwise raise one at a time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from appt_tools import validation
from appt_tools.errors import InvalidArgument

# A field left empty, in the owner's words: what to put there.
MISSING = {
    "attendee_name": "Enter the attendee's name, e.g. Ana Ruiz.",
    "attendee_email": "Enter the attendee's e-mail address, e.g. ana@example.com: Cal.com sends the invitation there.",
    "start": "Choose a day, then one of its free times.",
}
NAMES = {
    "title": "The title",
    "attendee_name": "The name",
    "business_name": "The business name",
    "label": "The label",
    "description": "The description",
}


class FormProblems(InvalidArgument):
    """Several fields are wrong: `fields` maps each to what is wrong with it."""

    def __init__(self, fields: dict[str, str]) -> None:
        first = next(iter(fields))
        count = len(fields)
        summary = fields[first] if count == 1 else f"{count} fields need a look: each says what is wrong."
        super().__init__(first, summary)
        self.message = summary
        self.fields = fields


def checked(body: dict[str, Any], names: tuple[str, ...], region: str | None) -> dict[str, str]:
    """The `names` fields of `body`, cleaned (phone numbers as E.164); raises `FormProblems` naming
    every field that is wrong."""
    cleaned: dict[str, str] = {}
    problems: dict[str, str] = {}
    for name in names:
        raw = body.get(name)
        if raw is not None and not isinstance(raw, str):
            problems[name] = "This must be text."
            continue
        value = (raw or "").strip()
        if not value and name in MISSING:
            problems[name] = MISSING[name]
            continue
        try:
            cleaned[name] = _CHECKS.get(name, _text(name))(name, value, region)
        except InvalidArgument as exc:
            problems[name] = _owner_words(name, exc)
    if problems:
        raise FormProblems(problems)
    return cleaned


def _text(name: str) -> Callable[[str, str, str | None], str]:
    return lambda field, value, region: validation.text(field, value)


def _email(field: str, value: str, region: str | None) -> str:
    return validation.email(field, value)


def _phone(field: str, value: str, region: str | None) -> str:
    return validation.phone(field, value, region)


def _same(field: str, value: str, region: str | None) -> str:
    return value


_CHECKS: dict[str, Callable[[str, str, str | None], str]] = {
    "attendee_email": _email,
    "to_number": _phone,
    "from_number": _phone,
    "start": _same,
    "call_type": lambda field, value, region: validation.call_type(field, value or "web"),
}


def _owner_words(name: str, exc: InvalidArgument) -> str:
    detail = exc.message.removeprefix(f"{exc.field}: ")
    if detail.startswith("is ") and name in NAMES:  # "is 230 characters long; the limit is 200."
        detail = f"{NAMES[name]} {detail}"
    return detail[:1].upper() + detail[1:]
