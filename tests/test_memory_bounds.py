"""Issue 13, "a flat memory line": what a server keeps in memory stays bounded however many requests,
bookings and sign-outs it serves (`python -m bench.soak` judges the resident memory; these pin the causes)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from appt_tools.store import _engine
from appt_tools.store._engine import create_engine, sqlite_file_engine
from appt_tools.surfaces.web.session import LocalLedger


def _sqlite_library() -> ctypes.CDLL | None:
    """The SQLite library the stdlib driver uses, to read its memory counter; None if it cannot be told."""
    name = ctypes.util.find_library("sqlite3")
    if name is None:
        return None
    try:
        library = ctypes.CDLL(name)
    except OSError:
        return None
    library.sqlite3_libversion.restype = ctypes.c_char_p
    library.sqlite3_memory_used.restype = ctypes.c_int64
    if library.sqlite3_libversion().decode() != sqlite3.sqlite_version:
        return None  # another copy than the one linked into _sqlite3: its counter would not be ours
    return library


def _big_database(path: Path, mib: int) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE t (x BLOB)")
        connection.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            "INSERT INTO t SELECT randomblob(1000) FROM n",
            (mib * 1024,),
        )
    connection.close()


async def test_every_store_connection_sets_the_process_wide_sqlite_memory_limit(tmp_path):
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    _engine.prepare_engine(engine)
    try:
        async with engine.connect() as connection:
            limit = (await connection.execute(text("PRAGMA soft_heap_limit"))).scalar_one()
    finally:
        await engine.dispose()
    assert limit == _engine.SQLITE_HEAP_LIMIT_KIB * 1024


def test_pooled_connections_reading_a_large_database_share_one_bounded_sqlite_heap(tmp_path, monkeypatch):
    """Each connection may cache SQLITE_CACHE_KIB of pages; several pooled connections reading the whole
    file must still stay within the process's limit instead of holding one copy each."""
    library = _sqlite_library()
    if library is None:
        pytest.skip("the SQLite library's memory counter is not reachable here")
    path = tmp_path / "big.db"
    _big_database(path, mib=12)
    monkeypatch.setattr(_engine, "SQLITE_HEAP_LIMIT_KIB", 4 * 1024)
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    sync = sqlite_file_engine(engine, pooled=True)
    assert sync is not None
    connections = []
    try:
        before = library.sqlite3_memory_used()
        for _ in range(4):
            connection = sync.connect()
            connections.append(connection)
            assert connection.execute(text("SELECT count(*), sum(length(x)) FROM t")).one()[0] == 12 * 1024
        grown = library.sqlite3_memory_used() - before
    finally:
        for connection in connections:
            connection.close()
        sync.dispose()
        with sqlite3.connect(":memory:") as restore:  # the limit is the process's: put the real one back
            restore.execute(f"PRAGMA soft_heap_limit={_engine.SQLITE_HEAP_LIMIT_KIB * 1024}")
        restore.close()
    # Without the limit each connection caches the whole 12 MiB file: about 48 MiB.
    assert grown < 10 * 1024 * 1024, f"SQLite grew by {grown / 2**20:.1f} MiB"


async def test_the_in_process_sign_out_ledger_forgets_sessions_whose_cookies_have_expired():
    ledger = LocalLedger()
    start = datetime(2030, 1, 1, tzinfo=UTC)
    for n in range(1000):
        now = start + timedelta(minutes=n)
        await ledger.end_session(f"s{n}", until=now + timedelta(hours=12), now=now)
    assert await ledger.session_ended("s999")
    assert await ledger.session_ended(f"s{1000 - 12 * 60}")  # its cookie is still valid: still refused
    assert len(ledger) <= 12 * 60 + 1


ARENA_COUNT = """
import ctypes, re, sys, tempfile, threading
from appt_tools.surfaces.malloc_arenas import limit_malloc_arenas
if sys.argv[1] == "limit":
    assert limit_malloc_arenas()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.fopen.restype = ctypes.c_void_p
start, done = threading.Barrier(17), threading.Barrier(17)
def work():
    start.wait()  # all 16 threads alive at once, each making its first allocations
    libc.malloc(100_000)
    done.wait()
threads = [threading.Thread(target=work) for _ in range(16)]
for t in threads:
    t.start()
start.wait()
done.wait()
with tempfile.NamedTemporaryFile("r") as out:
    stream = libc.fopen(out.name.encode(), b"w")
    libc.malloc_info(0, ctypes.c_void_p(stream))
    libc.fclose(ctypes.c_void_p(stream))
    print(len(re.findall(r'<heap nr="', out.read())))
for t in threads:
    t.join()
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc's malloc arenas"
)
def test_serve_caps_the_allocator_arenas_that_threads_would_each_get():
    """16 threads allocating at once get their own arenas (up to 8 per core) unless capped; `serve` caps
    them, so the free space they hold cannot pile up per thread."""

    def arenas(mode: str) -> int:
        env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
        done = subprocess.run(
            [sys.executable, "-c", ARENA_COUNT, mode], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return int(done.stdout)

    assert arenas("limit") <= 2
    assert arenas("default") > 2  # the default it changes (the test would pass without the cap otherwise)


def test_serve_caps_the_arenas_before_it_starts(monkeypatch):
    from appt_tools.surfaces import cli

    order: list[str] = []
    monkeypatch.setattr(cli, "limit_malloc_arenas", lambda: order.append("cap") or True)

    async def run(args: object) -> int:
        order.append("serve")
        return 0

    monkeypatch.setattr(cli, "_run", run)
    assert cli.main(["serve", "--sandbox"]) == 0
    assert order == ["cap", "serve"]


def test_the_soak_judges_the_memory_line_on_its_second_half(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))  # bench/ sits beside tests/
    from bench.soak import FLAT_MIB, memory_trend

    warm_then_flat = [(t, min(100 + t / 6, 120) + (0.5 if t % 7 == 0 else 0)) for t in range(600)]
    steady_rise = [(t, 100 + t / 60) for t in range(600)]  # 1 MiB a minute, for 10 minutes
    flat = memory_trend(warm_then_flat)
    assert flat.flat and abs(flat.growth_mib) < 0.5
    rising = memory_trend(steady_rise)
    assert not rising.flat and rising.per_minute_mib == pytest.approx(1.0)
    assert rising.growth_mib == pytest.approx(299 / 60) and rising.growth_mib > FLAT_MIB
