"""The benchmark runs: `python -m bench --quick` end to end (every section, tiny sizes). No timing is
asserted here; the figures are for people to read, on a quiet machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.e2e


def test_the_quick_bench_runs_every_section_and_writes_the_table_as_json(tmp_path):
    out = tmp_path / "results.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPT_TOOLS_")}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "metric" in done.stdout and "met?" in done.stdout
    document = json.loads(out.read_text())
    sections = {row["section"] for row in document["rows"]}
    for expected in ("floor", "find_slots warm", "Cal.com requests per call", "search (sqlite)", "memory"):
        assert expected in sections
    assert any(s.startswith("throughput") for s in sections)
    assert any(s.startswith("cold start") for s in sections)
    assert {
        "conversation: cold (a fresh serve --sandbox)",
        "conversation: tool list an LLM reads every turn",
        "conversation: warm slots",
    } <= sections
    conversation = document["details"]["conversation"]
    assert [call["tool"] for call in conversation["cold"]][:2] == ["find_slots", "book_appointment"] or (
        [call["tool"] for call in conversation["cold"]][:3] == ["find_slots", "hold_slot", "book_appointment"]
    )
    # The first find_slots: no start-up reads on the call, and the warm slots answer it (core/warm.py).
    assert conversation["cold"][0]["round_trips"] == 0
    assert document["meta"]["machine"]["cores"]
    metrics = {row["metric"] for row in document["rows"]}
    for tool in ("find_slots", "book_appointment", "reschedule", "cancel", "search_appointments"):
        assert any(m.startswith(f"{tool} p50 [") for m in metrics), tool
    for row in document["rows"]:
        assert set(row) >= {"metric", "value", "reference", "ratio", "target", "met"}
    tenants = document["details"]["tenants"]
    if "skipped" not in tenants:  # PostgreSQL reachable: several tenants on two servers ran
        assert tenants["failures"] == 0, tenants["errors"]
        assert any(s.startswith("tenants:") for s in sections)
        assert {"calls/s spread over 4 tenants", "memory per idle tenant"} <= metrics
