"""Cold start: from launching the server over stdio to the answer to the first `tools/list`.

`appt-tools serve` (the installed console script) with a prepared environment (Cal.com key and URL of a
sandbox running here, a time zone, a database file whose schema an earlier launch created) beside
`python bench/trivial_server.py` (one tool on the SDK's MCPServer), launched the same way by the SDK's
stdio client, alternating, after one unmeasured launch of each (schema, bytecode and page cache warm).
`appt-tools serve --sandbox` is timed too, for information: it also starts the sandbox (its event types
are then read in the background, like every server's start-up reads).

Where the time goes: `python -X importtime` of the serve path against the SDK alone (summed by top-level
package), and `bench.startup_phases`, which times the serve path's steps in one process.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from mcp.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from bench.common import PYTHON, ROOT, Row, child_env, ratio, say
from calcom_sandbox import run_sandbox
from tests.helpers import HOST_TZ

TARGET = 1.3
PRODUCT_IMPORTS = (
    "import appt_tools.surfaces.cli, appt_tools.surfaces.mcp_server, appt_tools.runtime, appt_tools.core.reconcile"
)
SDK_IMPORTS = "import mcp.server.mcpserver"


def _appt_tools() -> list[str]:
    script = Path(PYTHON).parent / "appt-tools"
    return [str(script)] if script.exists() else [PYTHON, "-m", "appt_tools"]


async def _launch(command: list[str], env: dict[str, str]) -> float:
    """ms from spawning `command` to the answer to tools/list (the initialize handshake included).
    The server's stderr (the sandbox-mode banner) is kept out of the bench's and shown only on failure."""
    params = StdioServerParameters(command=command[0], args=command[1:], env=env, cwd=str(ROOT))
    with tempfile.TemporaryFile("w+") as errlog:
        try:
            started = time.perf_counter()
            async with Client(stdio_client(params, errlog=errlog)) as client:
                tools = await client.list_tools()
                elapsed = (time.perf_counter() - started) * 1000
        except Exception as exc:
            errlog.seek(0)
            raise RuntimeError(f"{' '.join(command)} failed: {errlog.read()[-3000:]}") from exc
    if not tools.tools:
        raise RuntimeError(f"{command} listed no tools")
    return elapsed


def _imports(statement: str) -> dict[str, float]:
    """Self import time in ms of each module `statement` imports, from `python -X importtime`."""
    done = subprocess.run(
        [PYTHON, "-X", "importtime", "-c", statement],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=ROOT,
        check=True,
    )
    modules: dict[str, float] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        _, self_us, _cumulative, name = (part.strip() for part in line.replace("import time:", "|").split("|"))
        modules[name] = int(self_us) / 1000
    return modules


def import_breakdown() -> dict[str, Any]:
    """What the serve path imports beyond what the SDK alone imports, summed by top-level package."""
    sdk = _imports(SDK_IMPORTS)
    serve = _imports(PRODUCT_IMPORTS)
    extra: dict[str, float] = {}
    for module, ms in serve.items():
        if module not in sdk:
            package = module.split(".")[0]
            extra[package] = extra.get(package, 0.0) + ms
    ordered = sorted(extra.items(), key=lambda kv: -kv[1])
    return {
        "sdk_ms": round(sum(sdk.values()), 1),
        "serve_path_ms": round(sum(serve.values()), 1),
        "extra_by_package_ms": {k: round(v, 1) for k, v in ordered if v >= 0.5},
    }


def _phases(env: dict[str, str]) -> dict[str, float]:
    done = subprocess.run(
        [PYTHON, "-m", "bench.startup_phases"], capture_output=True, text=True, env=env, cwd=ROOT, check=True
    )
    phases: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return phases


async def run(rounds: int) -> tuple[list[Row], dict[str, Any]]:
    trivial = [PYTHON, str(ROOT / "bench" / "trivial_server.py")]
    ours = [*_appt_tools(), "serve"]
    sandboxed = [*_appt_tools(), "serve", "--sandbox"]
    times: dict[str, list[float]] = {"trivial": [], "serve": [], "serve_sandbox": []}
    with tempfile.TemporaryDirectory(prefix="appt-bench-cold-") as tmp:
        async with run_sandbox() as sandbox:
            env = child_env(
                APPT_TOOLS_DATABASE_URL=f"sqlite+aiosqlite:///{Path(tmp) / 'cold.db'}",
                APPT_TOOLS_CALCOM_API_KEY=sandbox.api_key,
                APPT_TOOLS_CALCOM_BASE_URL=sandbox.base_url,
                APPT_TOOLS_TIMEZONE=HOST_TZ,
                APPT_TOOLS_EVENT_TYPE_ID=str(sandbox.state.default_event_type_id),
            )
            say(f"cold start: {rounds} launches of each")
            for command in (trivial, ours, sandboxed):  # unmeasured: schema created, caches warm
                await _launch(command, env)
            for i in range(rounds):
                order = [("trivial", trivial), ("serve", ours), ("serve_sandbox", sandboxed)]
                for name, command in order if i % 2 == 0 else reversed(order):
                    times[name].append(await _launch(command, env))
            phases = [_phases(env) for _ in range(max(1, min(rounds, 3)))]
    imports = import_breakdown()
    median_phases = {k: round(statistics.median(p[k] for p in phases), 1) for k in phases[0]}
    reference = statistics.median(times["trivial"])
    serve = statistics.median(times["serve"])
    sandbox_mode = statistics.median(times["serve_sandbox"])
    top = ", ".join(f"{k} {v:.0f}" for k, v in list(imports["extra_by_package_ms"].items())[:5])
    phase_text = ", ".join(f"{k} {v:.0f}" for k, v in median_phases.items())
    rows = [
        Row("cold start (stdio, to the first tools/list)", "trivial MCP server", reference, "ms"),
        Row(
            "cold start (stdio, to the first tools/list)",
            "appt-tools serve (prepared env)",
            serve,
            "ms",
            reference=reference,
            reference_label="trivial",
            ratio=ratio(serve, reference),
            target=f"≤{TARGET:g}×",
            met=serve <= TARGET * reference,
            note=f"in-process steps (ms): {phase_text}; imports beyond the SDK's (ms, self time): {top}",
        ),
        Row(
            "cold start (stdio, to the first tools/list)",
            "appt-tools serve --sandbox",
            sandbox_mode,
            "ms",
            reference=reference,
            reference_label="trivial",
            ratio=ratio(sandbox_mode, reference),
            target="info",
        ),
    ]
    details = {"ms": times, "imports": imports, "phases_ms": median_phases, "rounds": rounds}
    return rows, details
