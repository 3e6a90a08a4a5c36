"""Retell's replay guard (surfaces/replay.py): a signature is accepted once within its window, expired
entries make room, memory is fixed whatever the rate, and a flood never reopens a replay."""

from __future__ import annotations

import hashlib
import tracemalloc

from appt_tools.surfaces.replay import SeenSignatures

WINDOW = 5 * 60 * 1000
NOW = 1_900_000_000_000


def _digest(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


def test_a_signature_is_accepted_once_and_again_only_after_its_window():
    seen = SeenSignatures(WINDOW)
    assert seen.first_use(NOW, _digest(1), NOW)
    assert not seen.first_use(NOW, _digest(1), NOW + 1000)  # the replay
    assert seen.first_use(NOW, _digest(2), NOW + 1000)  # another request
    # Past the window the signature itself is refused as too old (auth.retell_signature_valid); the guard
    # has let its entry go, and the slot is used again.
    assert seen.first_use(NOW, _digest(1), NOW + WINDOW + 1)


def test_memory_is_fixed_however_many_signatures_arrive():
    seen = SeenSignatures(WINDOW, capacity=1 << 12)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(20_000):  # five times the table, within one window
            seen.first_use(NOW + n, _digest(n), NOW + n)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 4096


def test_a_flood_drops_entries_but_never_reopens_their_replay():
    seen = SeenSignatures(WINDOW, capacity=256)
    accepted = [n for n in range(2_000) if seen.first_use(NOW + n, _digest(n), NOW + n)]
    assert accepted == list(range(2_000))  # fresh requests keep getting through
    now = NOW + 2_000
    replays = [n for n in range(2_000) if seen.first_use(NOW + n, _digest(n), now)]
    assert replays == []  # each is either remembered or stamped before what was dropped
    assert seen.first_use(now, _digest(10**6), now)  # and a new request still passes
