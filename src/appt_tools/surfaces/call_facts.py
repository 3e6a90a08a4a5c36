"""The call's own facts, as the voice platform sent them: the number that was called, the number that
called, and the direction. They are the platform's to state, not the model's to type: a tool argument
the model left out is filled from them, and one that disagrees is replaced (the appointment's history
records both, see `Tools.book_appointment`).

A voice route (`surfaces/http/voice.py`) reads them from the platform's request and runs the tool
inside `CallFacts.active`; the tools read `current()`. Outside a voice call there are none.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from appt_tools import validation
from appt_tools.errors import InvalidArgument
from appt_tools.models import CallType

# The tool arguments a call's facts stand for.
FACT_ARGUMENTS = ("to_number", "from_number", "call_type")


@dataclass
class CallFacts:
    platform: str  # "Vapi", "Retell", "ElevenLabs": named in the history
    to_number: str | None = None  # E.164, or None when the platform did not say (a web call)
    from_number: str | None = None
    call_type: CallType | None = None
    # What the model said that the platform contradicted: (argument, model's value, platform's value).
    overruled: list[tuple[str, str, str]] = field(default_factory=list)

    @classmethod
    def of(cls, platform: str, *, to_number: Any, from_number: Any, call_type: CallType | None) -> CallFacts:
        """Facts from a platform's raw values: a number that is not a valid E.164 number ('anonymous',
        a SIP URI, '') counts as not known."""
        return cls(platform, _e164(to_number), _e164(from_number), call_type)

    @property
    def caller_number(self) -> str | None:
        """The other party's number (the customer): who called in, or who we called out to."""
        return self.to_number if self.call_type == "outbound" else self.from_number

    def values(self) -> dict[str, str]:
        known = {"to_number": self.to_number, "from_number": self.from_number, "call_type": self.call_type}
        return {key: value for key, value in known.items() if value is not None}

    def apply(self, arguments: Mapping[str, Any], accepted: Mapping[str, Any]) -> dict[str, Any]:
        """`arguments` with the facts filled in where the tool takes them (`accepted`: its properties):
        a missing one is added, a disagreeing one replaced and remembered in `overruled`."""
        merged = dict(arguments)
        for key, fact in self.values().items():
            if key not in accepted:
                continue
            given = merged.get(key)
            if given not in (None, "") and not _same(key, given, fact):
                self.overruled.append((key, str(given), fact))
            merged[key] = fact  # the call's own form, also where the model wrote the same number otherwise
        return merged

    def history_note(self) -> str:
        """The history's record of what was overruled (empty when nothing was)."""
        said = "; ".join(
            f"{key}: the assistant said {given!r}, the call's is {fact!r}" for key, given, fact in self.overruled
        )
        return f"{self.platform} call data kept over the assistant's values ({said})." if said else ""

    @contextmanager
    def active(self) -> Iterator[CallFacts]:
        token = _CURRENT.set(self)
        try:
            yield self
        finally:
            _CURRENT.reset(token)


_CURRENT: ContextVar[CallFacts | None] = ContextVar("call_facts", default=None)


def current() -> CallFacts | None:
    """The facts of the call the running tool serves, if a voice platform sent them."""
    return _CURRENT.get()


def _e164(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return validation.phone_e164("number", value)
    except InvalidArgument:
        return None


def _same(key: str, given: Any, fact: str) -> bool:
    if key == "call_type":
        return bool(given == fact)
    if not isinstance(given, str):
        return False
    try:
        return validation.phone("number", given, validation.country_of_phone(fact)) == fact
    except InvalidArgument:
        return False
