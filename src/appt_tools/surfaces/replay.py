"""Signatures already accepted, in memory of a fixed size: a captured Retell request replayed within its
five-minute window is refused, and a flood of valid requests cannot grow the process.

Written by hand because no library we use keeps an expiring set in fixed memory: a dict of every signature
of the last five minutes grows with the request rate (about 300 bytes each: 9 MiB in two and a half
minutes of the soak's 180 Retell calls a second) and its expiry scan cost a pass over all of them per
request. This is an open-addressing table of 64-bit digest prefixes and expiry times in two preallocated
arrays. A slot whose entry has expired is reused; a lookup looks at every slot of its short probe window,
so a reused slot never hides an entry behind it. Only if every slot of a window holds a live entry (far
beyond any real call rate: over `capacity` / 2 signatures within the window) is the entry nearest to
expiry dropped, and from then on no signature stamped before it is accepted, so a dropped one still
cannot be replayed.
"""

from __future__ import annotations

from array import array

PROBES = 32  # slots looked at for one signature


class SeenSignatures:
    def __init__(self, window_ms: int, capacity: int = 1 << 17) -> None:
        self._window = window_ms
        self._keys = array("Q", bytes(8 * capacity))  # 0: never used
        self._expiry = array("q", bytes(8 * capacity))  # ms since the epoch
        self._capacity = capacity
        self._floor = 0  # signatures stamped at or before this are refused (see the module's docstring)

    def first_use(self, stamp_ms: int, digest_hex: str, now_ms: int) -> bool:
        """True the first time a valid signature (its stamp and hex digest) is seen within the window; False
        for a replay, and for a signature stamped no later than an entry dropped under a flood."""
        if stamp_ms <= self._floor:
            return False
        key = int(digest_hex[:16], 16) or 1
        free = oldest = -1
        for i in range(PROBES):
            slot = (key + i) % self._capacity
            held, expires = self._keys[slot], self._expiry[slot]
            if held == key and expires >= now_ms:
                return False
            if held == 0 or expires < now_ms:
                if free < 0:
                    free = slot
            elif oldest < 0 or expires < self._expiry[oldest]:
                oldest = slot
        if free < 0:  # every slot in the window is live: drop the one nearest to expiry
            free = oldest
            self._floor = max(self._floor, self._expiry[oldest] - self._window)
        self._keys[free], self._expiry[free] = key, stamp_ms + self._window
        return True
