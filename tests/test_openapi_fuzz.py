"""Issue 13, item 9: Schemathesis against the app's own `/openapi.json`, over real loopback HTTP (uvicorn,
the real sandbox, a real SQLite file). Every operation gets generated bodies, valid and invalid; every
answer must be no 5xx and match the status, content type and schema the document declares.

The server runs in a thread with its own event loop, because Schemathesis drives its calls synchronously.
Examples per operation are bounded (`FUZZ_EXAMPLES`) so the whole file stays near a minute."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, given, settings
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from appt_tools.runtime import CalcomTarget, open_service
from appt_tools.surfaces.auth import Credentials
from appt_tools.surfaces.http.app import HttpSettings, build_http_app
from appt_tools.surfaces.mcp_server import build_server
from calcom_sandbox import SandboxState, run_sandbox
from helpers import BUSINESS_ENV, HOST_TZ

FUZZ_EXAMPLES = int(os.environ.get("APPT_TOOLS_FUZZ_EXAMPLES", "60"))
KEY = "k_live_fuzz_0123456789abcdefghij"


class _LiveServer:
    """The whole HTTP application on 127.0.0.1:<free port>, in a thread of its own."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.base_url = ""
        self.ready = threading.Event()
        self.failure: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="fuzz-server", daemon=True)

    def __enter__(self) -> _LiveServer:
        self._thread.start()
        if not self.ready.wait(30) or self.failure is not None:
            raise RuntimeError(f"the server did not start: {self.failure!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the test through `failure`
            self.failure = exc
            self.ready.set()

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with run_sandbox(SandboxState(host_time_zone=HOST_TZ)) as sandbox:
            env = {**BUSINESS_ENV, "APPT_TOOLS_EVENT_TYPE_ID": str(sandbox.state.default_event_type_id)}
            target = CalcomTarget(base_url=sandbox.base_url, api_key=sandbox.api_key)
            async with open_service(
                database_url=f"sqlite+aiosqlite:///{self.database}", environ=env, calcom=target
            ) as service:
                app = build_http_app(
                    build_server(service),
                    settings=HttpSettings(credentials=Credentials((SecretStr(KEY),)), request_log="off"),
                )
                sock = socket.socket()
                sock.bind(("127.0.0.1", 0))
                self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
                server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
                task = asyncio.create_task(server.serve(sockets=[sock]))
                while not server.started:
                    if task.done():
                        task.result()
                    await asyncio.sleep(0.01)
                self.ready.set()
                await self._stop.wait()
                server.should_exit = True
                await task
                sock.close()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_LiveServer]:
    with _LiveServer(tmp_path_factory.mktemp("fuzz") / "appointments.db") as server:
        yield server


def _operations(base_url: str) -> list[schemathesis.APIOperation]:
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


# Schemathesis's own pytest plugin does not load under pytest 9, so each operation's strategy is driven
# by Hypothesis directly: the same generated cases, the same checks.
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_operation_answers_a_5xx_or_off_its_documented_schema(live_server, mode):
    operations = _operations(live_server.base_url)
    assert len(operations) >= 9  # /healthz and every tool
    checked: list[str] = []
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and not operation.body:
            continue  # /healthz takes nothing, so nothing about it can be invalid

        @given(case=operation.as_strategy(generation_mode=mode, headers={"Authorization": f"Bearer {KEY}"}))
        @settings(
            max_examples=FUZZ_EXAMPLES,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def fuzz(case: schemathesis.Case) -> None:
            response = case.call(timeout=30)
            assert response.status_code < 500, (
                f"{case.method} {case.path}: {response.status_code} {response.text[:500]}"
            )
            # Every answer matches its declared status, content type and schema; an invalid body is refused.
            case.validate_response(
                response,
                checks=[
                    not_a_server_error,
                    status_code_conformance,
                    content_type_conformance,
                    response_schema_conformance,
                    negative_data_rejection,
                ],
            )

        fuzz()
        checked.append(operation.label)
    assert len(checked) >= len(operations) - 1
