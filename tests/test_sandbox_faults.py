"""Faults the sandbox injects on request, over real loopback HTTP: what each kind does to the client,
before the operation (nothing happens) or after it (it happened, the answer is spoiled).

Same frozen clock as test_sandbox.py (Monday 2030-10-28 12:00Z); timing faults use short real waits,
and the 429 block is measured on the frozen clock.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta

import httpx2
import pytest

from calcom_sandbox import Fault, SandboxState, run_sandbox
from test_sandbox import (
    BOOKINGS,
    NOW,
    SLOTS,
    TUE_0900,
    TUE_1000,
    Clock,
    booking_body,
    opened,
    plain_error,
    refused,
    success,
)

CREATE = "POST /v2/bookings"
THROTTLED = "CustomThrottlerGuard - Too many requests. Please try again later."
SLOT_QUERY = {"eventTypeId": "1001", "start": "2030-10-29", "end": "2030-10-29"}


async def create(client: httpx2.AsyncClient, start: str = TUE_0900, **headers: str) -> httpx2.Response:
    return await client.post("/v2/bookings", json=booking_body(start), headers={**BOOKINGS, **headers})


def booked(state: SandboxState) -> list[str]:
    return [b.uid for b in state.bookings.values() if b.status == "accepted"]


# --- status ---------------------------------------------------------------------------------------


async def test_a_500_before_the_operation_is_nests_plain_body_and_books_nothing() -> None:
    async with opened() as (sandbox, client):
        sandbox.state.faults.add(Fault("status", CREATE))
        response = await create(client)
        assert plain_error(response, 500) == "Internal server error"
        assert booked(sandbox.state) == []
        assert [(e.kind, e.phase, e.method, e.path) for e in sandbox.state.fault_log] == [
            ("status", "before", "POST", "/v2/bookings")
        ]


@pytest.mark.parametrize(
    ("status", "media_type", "text"),
    [(502, "text/html", "502 Bad Gateway"), (503, "text/plain", "upstream connect error"), (504, "text/html", "504")],
)
async def test_a_proxy_status_answers_in_the_proxys_own_format_not_json(
    status: int, media_type: str, text: str
) -> None:
    async with opened() as (sandbox, client):
        sandbox.state.faults.add(Fault("status", "GET /v2/slots", status=status))
        response = await client.get("/v2/slots", params=SLOT_QUERY, headers=SLOTS)
        assert response.status_code == status
        assert response.headers["content-type"].startswith(media_type)
        assert text in response.text
        with pytest.raises(ValueError):
            response.json()


async def test_a_503_after_the_operation_leaves_the_booking_made() -> None:
    async with opened() as (sandbox, client):
        sandbox.state.faults.add(Fault("status", CREATE, phase="after", status=503))
        assert (await create(client)).status_code == 503
        assert len(booked(sandbox.state)) == 1
        # The retry that follows a lost answer finds the slot taken (NOTES §6).
        assert refused(await create(client), 400, "BadRequestException").startswith("User either already has")


# --- latency, timeout, drop -----------------------------------------------------------------------


@pytest.mark.parametrize("phase", ["before", "after"])
async def test_latency_delays_the_answer_and_the_operation_still_happens(phase: str) -> None:
    async with opened() as (sandbox, client):
        sandbox.state.faults.add(Fault("latency", CREATE, phase=phase, seconds=0.2))  # type: ignore[arg-type]
        started = time.monotonic()
        success(await create(client), "POST", "/v2/bookings", 201)
        assert time.monotonic() - started >= 0.2
        assert len(booked(sandbox.state)) == 1


async def test_a_timeout_before_the_operation_outlasts_the_client_and_books_nothing() -> None:
    async with opened() as (sandbox, client):
        sandbox.state.faults.add(Fault("timeout", CREATE))  # held 60 s
        started = time.monotonic()
        with pytest.raises(httpx2.ReadTimeout):
            await client.post("/v2/bookings", json=booking_body(TUE_0900), headers=BOOKINGS, timeout=0.3)
        assert time.monotonic() - started < 5
        assert booked(sandbox.state) == []


async def test_a_timeout_after_the_operation_is_the_booking_made_whose_answer_never_came() -> None:
    async with opened() as (sandbox, client):
        sandbox.state.faults.add(Fault("timeout", CREATE, phase="after"))
        with pytest.raises(httpx2.ReadTimeout):
            await client.post("/v2/bookings", json=booking_body(TUE_0900), headers=BOOKINGS, timeout=0.3)
        [uid] = booked(sandbox.state)
        # Cal.com has it: the client can find it with the look-up NOTES §6 recommends.
        found = await client.get("/v2/bookings", params={"attendeeEmail": "ana@example.com"}, headers=BOOKINGS)
        assert [b["uid"] for b in success(found, "GET", "/v2/bookings")] == [uid]


async def test_a_held_answer_ends_with_a_closed_connection_when_the_sandbox_stops() -> None:
    state = SandboxState(now=Clock(NOW))
    state.faults.add(Fault("timeout", CREATE, phase="after"))  # held 60 s once booked
    reached = asyncio.Event()

    async def note_arrival() -> None:
        reached.set()

    state.before_insert = note_arrival
    started = time.monotonic()
    async with run_sandbox(state) as sandbox:
        auth = {"Authorization": f"Bearer {sandbox.api_key}"}
        client = httpx2.AsyncClient(base_url=sandbox.base_url, headers=auth, timeout=30)
        waiting = asyncio.create_task(client.post("/v2/bookings", json=booking_body(TUE_0900), headers=BOOKINGS))
        async with asyncio.timeout(5):
            await reached.wait()
    async with asyncio.timeout(5):
        with pytest.raises(httpx2.RemoteProtocolError):
            await waiting
    await client.aclose()
    assert time.monotonic() - started < 5
    assert len(booked(state)) == 1


@pytest.mark.parametrize(("phase", "made"), [("before", 0), ("after", 1)])
async def test_a_drop_closes_the_connection_without_an_answer(phase: str, made: int) -> None:
    async with opened() as (sandbox, client):
        sandbox.state.faults.add(Fault("drop", CREATE, phase=phase))  # type: ignore[arg-type]
        with pytest.raises(httpx2.RemoteProtocolError):
            await create(client)
        assert len(booked(sandbox.state)) == made
        # The connection is gone, the server is not: the next request is answered.
        assert (await client.get("/v2/me")).status_code == 200


# --- rate limit -----------------------------------------------------------------------------------


async def test_a_rate_limit_fault_blocks_the_key_for_the_block_with_a_reset_counting_down() -> None:
    clock = Clock(NOW)
    state = SandboxState(now=clock, rate_limit_block=timedelta(seconds=5))
    async with opened(state) as (sandbox, client):
        state.faults.add(Fault("rate_limit", "GET /v2/me"))
        first = await client.get("/v2/me")
        assert refused(first, 429, "ThrottlerException") == THROTTLED
        assert (first.headers["X-RateLimit-Remaining-Default"], first.headers["X-RateLimit-Reset-Default"]) == (
            "0",
            "5",
        )
        assert "Retry-After" not in first.headers

        # The fault fired once; the block it started refuses every route for that key.
        clock.advance(seconds=2)
        blocked = await create(client)
        assert refused(blocked, 429, "ThrottlerException") == THROTTLED
        assert blocked.headers["X-RateLimit-Reset-Default"] == "3"
        assert booked(state) == []
        # Another credential is not blocked.
        async with httpx2.AsyncClient(base_url=sandbox.base_url) as anonymous:
            assert (await anonymous.get("/v2/slots", params=SLOT_QUERY, headers=SLOTS)).status_code == 200

        clock.advance(seconds=3)
        again = await client.get("/v2/me")
        assert again.status_code == 200
        assert again.headers["X-RateLimit-Remaining-Default"] == str(state.rate_limiter.limit - 1)
        assert [e.kind for e in state.fault_log] == ["rate_limit"]


async def test_a_rate_limit_fault_lasts_cal_coms_minute_by_default_or_its_own_seconds() -> None:
    clock = Clock(NOW)
    async with opened(SandboxState(now=clock)) as (sandbox, client):
        sandbox.state.faults.add(Fault("rate_limit", "GET /v2/me"))
        assert (await client.get("/v2/me")).headers["X-RateLimit-Reset-Default"] == "60"
        clock.advance(seconds=60)
        assert (await client.get("/v2/me")).status_code == 200

        sandbox.state.faults.add(Fault("rate_limit", "GET /v2/me", seconds=2))
        assert (await client.get("/v2/me")).headers["X-RateLimit-Reset-Default"] == "2"
        clock.advance(seconds=2)
        assert (await client.get("/v2/me")).status_code == 200


# --- malformed ------------------------------------------------------------------------------------


async def test_a_truncated_answer_after_booking_is_half_the_real_json() -> None:
    async with opened() as (sandbox, client):
        sandbox.state.faults.add(Fault("malformed", CREATE, phase="after"))
        response = await create(client)
        assert response.status_code == 201
        assert response.headers["content-type"] == "application/json"
        [uid] = booked(sandbox.state)
        assert response.text.startswith('{"status":"success","data":{"id":1,"uid":"' + uid)
        whole = await client.get(f"/v2/bookings/{uid}", headers=BOOKINGS)
        assert len(response.content) == len(whole.content) // 2
        with pytest.raises(json.JSONDecodeError):
            response.json()


@pytest.mark.parametrize("body", ["truncated", "not_json", "wrong_shape"])
async def test_a_malformed_answer_before_the_operation_is_a_200_that_is_not_the_expected_json(body: str) -> None:
    async with opened() as (sandbox, client):
        sandbox.state.faults.add(Fault("malformed", CREATE, body=body))  # type: ignore[arg-type]
        response = await create(client)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert booked(sandbox.state) == []
        if body == "wrong_shape":
            assert response.json() == {"status": "success", "data": "ok"}
        else:
            with pytest.raises(json.JSONDecodeError):
                response.json()


# --- which requests a fault hits ------------------------------------------------------------------


async def test_a_one_shot_fault_spoils_one_request_and_a_persistent_one_every_request_until_cleared() -> None:
    async with opened() as (sandbox, client):
        faults = sandbox.state.faults
        once = faults.add(Fault("status", "GET /v2/me"))
        assert [(await client.get("/v2/me")).status_code for _ in range(2)] == [500, 200]
        assert once.remaining == 0 and faults.armed == []

        twice = faults.add(Fault("status", "GET /v2/me", times=2))
        assert [(await client.get("/v2/me")).status_code for _ in range(3)] == [500, 500, 200]
        assert twice.fired == 2

        faults.add(Fault("status", "GET /v2/me", times=None))
        assert [(await client.get("/v2/me")).status_code for _ in range(4)] == [500] * 4
        assert faults.clear() == 1
        assert (await client.get("/v2/me")).status_code == 200
        assert len(sandbox.state.fault_log) == 1 + 2 + 4


@pytest.mark.parametrize(
    ("endpoint", "hits"),
    [
        ("*", ["GET /v2/me", "GET /v2/bookings", "POST /v2/bookings/abc/cancel"]),
        ("GET *", ["GET /v2/me", "GET /v2/bookings"]),
        ("/v2/bookings", ["GET /v2/bookings"]),
        ("POST /v2/bookings/{bookingUid}/cancel", ["POST /v2/bookings/abc/cancel"]),
        ("POST /v2/bookings/abc/cancel", ["POST /v2/bookings/abc/cancel"]),
        ("POST /v2/bookings/xyz/cancel", []),
        ("POST /v2/bookings", []),
    ],
)
async def test_a_fault_hits_only_the_requests_its_endpoint_names(endpoint: str, hits: list[str]) -> None:
    async with opened() as (sandbox, client):
        sandbox.state.faults.add(Fault("status", endpoint, times=None))
        requests = [
            ("GET", "/v2/me", {}),
            ("GET", "/v2/bookings", BOOKINGS),
            ("POST", "/v2/bookings/abc/cancel", BOOKINGS),
        ]
        spoiled = []
        for method, path, headers in requests:
            response = await client.request(method, path, headers=headers, json={} if method == "POST" else None)
            if response.status_code == 500:
                spoiled.append(f"{method} {path}")
        assert spoiled == hits


async def test_faults_do_not_touch_unknown_routes_wrong_versions_or_the_sandbox_helpers() -> None:
    async with opened() as (sandbox, client):
        sandbox.state.faults.add(Fault("status", "*", times=None))
        assert (await client.get("/v2/nothing")).status_code == 404
        assert (await client.get("/v2/bookings", headers=SLOTS)).status_code == 404
        assert (await client.get("/_sandbox/info")).status_code == 200
        assert sandbox.state.fault_log == []


async def test_a_before_fault_and_an_after_fault_on_one_request_both_fire() -> None:
    async with opened() as (sandbox, client):
        sandbox.state.faults.add(Fault("latency", CREATE, seconds=0.05))
        sandbox.state.faults.add(Fault("drop", CREATE, phase="after"))
        with pytest.raises(httpx2.RemoteProtocolError):
            await create(client)
        assert [(e.kind, e.phase) for e in sandbox.state.fault_log] == [("latency", "before"), ("drop", "after")]
        assert len(booked(sandbox.state)) == 1


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ({"kind": "explode"}, "kind must be one of"),
        ({"kind": "status", "status": 418}, "status is for the status kind and one of 500, 502, 503, 504"),
        ({"kind": "drop", "seconds": 3}, "seconds is for the latency, timeout and rate_limit kinds"),
        ({"kind": "drop", "times": 0}, "times must be at least 1"),
        ({"kind": "drop", "phase": "during"}, "phase must be before or after"),
        ({"kind": "malformed", "body": "xml"}, "body is for the malformed kind"),
        ({"kind": "drop", "endpoint": "bookings"}, "must be 'METHOD /path', '/path', 'METHOD *' or '*'"),
        ({"kind": "drop", "endpoint": "POST bookings"}, "the path must start with /"),
        ({"kind": "drop", "when": "now"}, "unknown fault field(s) when"),
    ],
)
async def test_an_invalid_fault_is_refused_with_what_is_wrong(fault: dict[str, object], message: str) -> None:
    async with opened() as (sandbox, client):
        response = await client.post("/_sandbox/faults", json=fault)
        assert response.status_code == 400
        assert message in response.json()["error"]["message"]
        assert sandbox.state.faults.armed == []


# --- the per-request header -----------------------------------------------------------------------


async def test_the_fault_header_spoils_only_its_own_request() -> None:
    async with opened() as (sandbox, client):
        response = await create(client, **{"X-Sandbox-Fault": "status; phase=after; status=503"})
        assert response.status_code == 503
        assert len(booked(sandbox.state)) == 1
        assert (await client.get("/v2/me")).status_code == 200
        [event] = sandbox.state.fault_log
        assert (event.source, event.fault_id, event.kind, event.phase) == ("header", None, "status", "after")
        assert event.at == NOW


@pytest.mark.parametrize(
    ("header", "outcome"),
    [
        ("drop", httpx2.RemoteProtocolError),
        ("timeout;seconds=30", httpx2.ReadTimeout),
        ("malformed;body=not_json", 200),
        ("rate_limit;seconds=1", 429),
        ("LATENCY;seconds=0.01", 201),
    ],
)
async def test_the_fault_header_asks_for_any_kind(header: str, outcome: type[Exception] | int) -> None:
    async with opened() as (_, client):
        request = client.post(
            "/v2/bookings", json=booking_body(TUE_1000), headers={**BOOKINGS, "X-Sandbox-Fault": header}, timeout=0.3
        )
        if isinstance(outcome, int):
            assert (await request).status_code == outcome
        else:
            with pytest.raises(outcome):
                await request


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("explode", "kind must be one of"),
        ("status;status=abc", "X-Sandbox-Fault: status must be a number"),
        ("drop;when=now", "X-Sandbox-Fault: unknown option 'when=now'"),
    ],
)
async def test_a_bad_fault_header_is_a_plain_400_and_nothing_happens(header: str, message: str) -> None:
    async with opened() as (sandbox, client):
        response = await create(client, **{"X-Sandbox-Fault": header})
        assert message in plain_error(response, 400)
        assert booked(sandbox.state) == []


# --- the HTTP controls ----------------------------------------------------------------------------


async def test_faults_armed_over_http_fire_are_listed_with_the_log_and_are_cleared() -> None:
    async with opened() as (_, client):
        armed = await client.post(
            "/_sandbox/faults",
            json=[
                {"kind": "status", "endpoint": "GET /v2/me", "status": 502},
                {"kind": "drop", "endpoint": CREATE, "phase": "after", "times": None},
            ],
        )
        assert armed.status_code == 201
        first, second = armed.json()["data"]
        assert (first["id"], first["kind"], first["times"], first["remaining"]) == ("fault_1", "status", 1, 1)
        assert (second["phase"], second["times"], second["remaining"]) == ("after", None, None)
        single = await client.post("/_sandbox/faults", json={"kind": "latency", "endpoint": "GET /v2/me", "seconds": 0})
        assert single.json()["data"][0]["id"] == "fault_3"

        assert (await client.get("/v2/me")).status_code == 502
        listed = (await client.get("/_sandbox/faults")).json()["data"]
        assert [f["id"] for f in listed["faults"]] == ["fault_2", "fault_3"]
        assert listed["log"] == [
            {
                "faultId": "fault_1",
                "source": "rule",
                "kind": "status",
                "phase": "before",
                "method": "GET",
                "path": "/v2/me",
                "at": "2030-10-28T12:00:00.000Z",
            }
        ]

        assert (await client.delete("/_sandbox/faults")).json()["data"] == {"cleared": 2}
        assert (await client.get("/_sandbox/faults")).json()["data"]["faults"] == []
        assert (await create(client)).status_code == 201


async def test_every_api_request_is_timed_with_its_injected_latency_and_control_requests_are_not() -> None:
    """GET /_sandbox/served: Cal.com's own time for each API request (the conversation bench's floor)."""
    async with opened() as (_, client):
        await client.post("/_sandbox/faults", json={"kind": "latency", "endpoint": "GET /v2/me", "seconds": 0.05})
        assert (await client.get("/v2/me")).status_code == 200
        assert (await create(client)).status_code == 201
        served = (await client.get("/_sandbox/served")).json()["data"]
        assert [(s["method"], s["path"], s["status"]) for s in served] == [
            ("GET", "/v2/me", 200),
            ("POST", "/v2/bookings", 201),
        ]
        assert served[0]["ms"] >= 50 and 0 < served[1]["ms"] < served[0]["ms"]


async def test_a_fault_needs_a_kind_and_a_json_body() -> None:
    async with opened() as (_, client):
        for body in (b"", b"not json", b'{"endpoint": "*"}', b"[1]"):
            response = await client.post("/_sandbox/faults", content=body)
            assert response.status_code == 400, body
            assert response.json()["status"] == "error"


def test_a_fault_in_python_is_checked_when_made() -> None:
    with pytest.raises(ValueError, match="seconds must be a number"):
        Fault("latency", seconds=-1)
    with pytest.raises(ValueError, match="endpoint"):
        Fault("drop", "POST /v2/bookings extra")
    assert Fault("timeout").hold_seconds == 60.0
    assert Fault("latency").hold_seconds == 1.0
    assert Fault("status").answer_status == 500
    assert Fault("malformed").malformation == "truncated"
