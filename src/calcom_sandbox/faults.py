"""Fault injection: what a test can make the sandbox's v2 endpoints do wrong, and when.

A `Fault` names a kind, the endpoint it hits (`"POST /v2/bookings"`, `"GET /v2/slots"`, `"/v2/bookings"`
for any method, `"*"` for all), a phase and how many requests it spoils:

    latency     answer `seconds` late (1 s); the operation still happens
    status      500 (Nest's plain body), or 502 / 503 / 504 as a proxy in front would answer
    timeout     hold the answer `seconds` (60 s), then close the connection: the client times out first
    drop        close the connection without an answer
    rate_limit  429 ThrottlerException, and the credential stays blocked `seconds` (the limiter's 60 s)
    malformed   a body that is `truncated` JSON (default), `not_json`, or JSON of the `wrong_shape`

    phase  before  the request is not carried out
           after   it is carried out (booked, cancelled, rescheduled…), then the answer is spoiled

`times` is how many matching requests it spoils (1 = one-shot, None = until cleared). The same faults
can be asked for per request with the header `X-Sandbox-Fault: <kind>[;phase=after][;status=503]
[;seconds=2][;body=not_json]`. Every fault that fires is logged as a `FaultEvent`.

This module is the model only; `app.py` applies faults to requests and `answers.py` renders them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal, get_args

FaultKind = Literal["latency", "status", "timeout", "drop", "rate_limit", "malformed"]
Phase = Literal["before", "after"]
Malformation = Literal["truncated", "not_json", "wrong_shape"]
Source = Literal["rule", "header"]

KINDS: Final[tuple[str, ...]] = get_args(FaultKind)
PHASES: Final[tuple[str, ...]] = get_args(Phase)
MALFORMATIONS: Final[tuple[str, ...]] = get_args(Malformation)
STATUSES: Final = (500, 502, 503, 504)
DEFAULT_SECONDS: Final[Mapping[str, float]] = {"latency": 1.0, "timeout": 60.0}
HEADER: Final = "X-Sandbox-Fault"
_FIELDS: Final = ("kind", "endpoint", "phase", "times", "status", "seconds", "body")
_METHODS: Final = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


@dataclass(frozen=True)
class Fault:
    """One kind of misbehaviour, where and how often (see the module docstring). Invalid values raise
    ValueError with a message fit for a 400."""

    kind: FaultKind
    endpoint: str = "*"
    phase: Phase = "before"
    times: int | None = 1
    status: int | None = None
    seconds: float | None = None
    body: Malformation | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.phase not in PHASES:
            raise ValueError(f"phase must be before or after, not {self.phase!r}")
        if self.times is not None and (isinstance(self.times, bool) or not isinstance(self.times, int)):
            raise ValueError("times must be a whole number or null")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be at least 1 (or null: until cleared)")
        if self.status is not None and (self.kind != "status" or self.status not in STATUSES):
            raise ValueError(f"status is for the status kind and one of {', '.join(map(str, STATUSES))}")
        if self.seconds is not None:
            if self.kind not in ("latency", "timeout", "rate_limit"):
                raise ValueError("seconds is for the latency, timeout and rate_limit kinds")
            if isinstance(self.seconds, bool) or not isinstance(self.seconds, int | float) or self.seconds < 0:
                raise ValueError("seconds must be a number of seconds, 0 or more")
        if self.body is not None and (self.kind != "malformed" or self.body not in MALFORMATIONS):
            raise ValueError(f"body is for the malformed kind and one of {', '.join(MALFORMATIONS)}")
        _endpoint(self.endpoint)

    @property
    def answer_status(self) -> int:
        return self.status or 500

    @property
    def hold_seconds(self) -> float:
        return float(self.seconds if self.seconds is not None else DEFAULT_SECONDS.get(self.kind, 0.0))

    @property
    def malformation(self) -> Malformation:
        return self.body or "truncated"

    def matches(self, method: str, path: str) -> bool:
        want_method, want_path = _endpoint(self.endpoint)
        if want_method is not None and want_method != method.upper():
            return False
        if want_path is None:
            return True
        got = tuple(path.strip("/").split("/"))
        return len(got) == len(want_path) and all(
            (w.startswith("{") and w.endswith("}")) or w == g for w, g in zip(want_path, got, strict=True)
        )


@dataclass
class ArmedFault:
    """A fault in the book: its id and how many more requests it will spoil (None: until cleared)."""

    id: str
    fault: Fault
    remaining: int | None
    fired: int = 0


@dataclass(frozen=True)
class FaultEvent:
    """One fault that fired: which (None for a header fault), what, where, when."""

    fault_id: str | None
    source: Source
    kind: FaultKind
    phase: Phase
    method: str
    path: str
    at: datetime


class FaultBook:
    """The faults armed on a sandbox, the log of those that fired, and the switch that ends every hold
    when the sandbox stops. `connection_closer` (set by the running server) closes a request's
    connection without an answer; it returns False when it cannot."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        self._now = now
        self._rules: list[ArmedFault] = []
        self._next_id = 1
        self.log: list[FaultEvent] = []
        self.connection_closer: Callable[[Mapping[str, object]], bool] | None = None
        self._stopping: asyncio.Event | None = None

    # --- the Python API ---------------------------------------------------------------------------

    def add(self, fault: Fault) -> ArmedFault:
        armed = ArmedFault(f"fault_{self._next_id}", fault, fault.times)
        self._next_id += 1
        self._rules.append(armed)
        return armed

    def clear(self) -> int:
        """Disarm every fault; the log stays. Returns how many were armed."""
        count = len(self._rules)
        self._rules.clear()
        return count

    def remove(self, fault_id: str) -> bool:
        before = len(self._rules)
        self._rules = [rule for rule in self._rules if rule.id != fault_id]
        return len(self._rules) < before

    @property
    def armed(self) -> list[ArmedFault]:
        return list(self._rules)

    def fired(self, kind: FaultKind | None = None) -> list[FaultEvent]:
        return [event for event in self.log if kind is None or event.kind == kind]

    # --- used by the app --------------------------------------------------------------------------

    def take(self, method: str, path: str, phase: Phase) -> ArmedFault | None:
        """The first armed fault for this request and phase, with one use spent (and gone when spent)."""
        for rule in self._rules:
            if rule.fault.phase == phase and rule.fault.matches(method, path):
                rule.fired += 1
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._rules.remove(rule)
                return rule
        return None

    def record(self, fault: Fault, fault_id: str | None, method: str, path: str) -> None:
        source: Source = "header" if fault_id is None else "rule"
        self.log.append(FaultEvent(fault_id, source, fault.kind, fault.phase, method, path, self._now()))

    async def pause(self, seconds: float, *also: asyncio.Future[Any]) -> None:
        """Wait `seconds`, or less if the sandbox stops or one of `also` finishes first."""
        stopping = self._stopping_event()
        if stopping.is_set():
            return
        waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(stopping.wait()), *also]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiters[0].cancel()

    def open(self) -> None:
        """The sandbox starts serving: holds may last."""
        self._stopping = asyncio.Event()

    def close(self) -> None:
        """The sandbox is stopping: every hold and latency ends now."""
        self._stopping_event().set()

    def _stopping_event(self) -> asyncio.Event:
        if self._stopping is None:
            self._stopping = asyncio.Event()
        return self._stopping


def fault_from_json(raw: object) -> Fault:
    """A fault from the JSON of `POST /_sandbox/faults`; ValueError says what is wrong."""
    if not isinstance(raw, dict):
        raise ValueError("each fault must be a JSON object")
    unknown = sorted(set(raw) - set(_FIELDS))
    if unknown:
        raise ValueError(f"unknown fault field(s) {', '.join(unknown)}; known: {', '.join(_FIELDS)}")
    if "kind" not in raw:
        raise ValueError("a fault needs a kind")
    endpoint = raw.get("endpoint", "*")
    if not isinstance(endpoint, str):
        raise ValueError("endpoint must be a string such as 'POST /v2/bookings' or '*'")
    return Fault(
        kind=raw["kind"],
        endpoint=endpoint,
        phase=raw.get("phase", "before"),
        times=raw.get("times", 1),
        status=raw.get("status"),
        seconds=raw.get("seconds"),
        body=raw.get("body"),
    )


def fault_from_header(value: str) -> Fault:
    """`<kind>[;phase=after][;status=503][;seconds=2][;body=not_json]`: a one-shot fault for this request."""
    kind, *options = (part.strip() for part in value.split(";"))
    fields: dict[str, object] = {"kind": kind.lower()}
    for option in options:
        if not option:
            continue
        name, sep, raw = (piece.strip() for piece in option.partition("="))
        if not sep or name not in ("phase", "status", "seconds", "body"):
            raise ValueError(f"{HEADER}: unknown option {option!r}; use phase=, status=, seconds= or body=")
        if name in fields:
            raise ValueError(f"{HEADER}: {name} given twice")
        fields[name] = _header_value(name, raw)
    return fault_from_json(fields)


def _header_value(name: str, raw: str) -> object:
    try:
        if name == "status":
            return int(raw)
        if name == "seconds":
            return float(raw)
    except ValueError:
        raise ValueError(f"{HEADER}: {name} must be a number, not {raw!r}") from None
    return raw.lower()


def armed_json(armed: ArmedFault) -> dict[str, object]:
    fault = armed.fault
    return {
        "id": armed.id,
        "kind": fault.kind,
        "endpoint": fault.endpoint,
        "phase": fault.phase,
        "times": fault.times,
        "remaining": armed.remaining,
        "fired": armed.fired,
        "status": fault.status,
        "seconds": fault.seconds,
        "body": fault.body,
    }


def _endpoint(spec: str) -> tuple[str | None, tuple[str, ...] | None]:
    """("POST", ("v2", "bookings")) for "POST /v2/bookings"; None for a wildcard part."""
    shape = f"endpoint {spec!r} must be 'METHOD /path', '/path', 'METHOD *' or '*'"
    parts = spec.split() if isinstance(spec, str) else []
    if len(parts) == 1:
        method, path = ("*", parts[0]) if parts[0].startswith("/") or parts[0] == "*" else (parts[0], "*")
    elif len(parts) == 2:
        method, path = parts
    else:
        raise ValueError(shape)
    method = method.upper()
    if method != "*" and method not in _METHODS:
        raise ValueError(shape)
    if path != "*" and not path.startswith("/"):
        raise ValueError(f"endpoint {spec!r}: the path must start with /")
    segments = None if path == "*" else tuple(path.split("?", 1)[0].strip("/").split("/"))
    return (None if method == "*" else method), segments
