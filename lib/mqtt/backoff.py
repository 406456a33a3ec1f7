"""Exponential backoff with full jitter, between a lower and an upper bound (milliseconds).

Attempt n (counting from 0) waits a uniformly random time in [lo, min(hi, lo * 2**(n+1))]:
the ceiling doubles after every failure, and the jitter (already on the first retry) spreads a
fleet of nodes that lost the same broker, so they do not all come back in the same second.
``slowest()`` is the pace for failures that retrying cannot fix (a refused password): near the
upper bound, still jittered.
The random source is injectable (``rng(n)`` returns an int in ``[0, n)``) so tests are
repeatable::

    b = Backoff(1000, 300000)
    delay = b.next()        # 1000..2000 ms the first time, then 1000..4000, ... 1000..300000
    b.reset()               # only once a connection has stayed healthy for a while
"""

try:
    from random import getrandbits
except ImportError:  # pragma: no cover - every MicroPython port we build has it
    getrandbits = None


def _default_rng(n):
    if n <= 1:
        return 0
    if getrandbits is None:
        from os import urandom

        v = int.from_bytes(urandom(4), "little")
    else:
        # getrandbits is limited to 32 bits per call on MicroPython.
        v = getrandbits(30)
    return v % n


class Backoff:
    def __init__(self, lo_ms=1000, hi_ms=300000, rng=None):
        if lo_ms < 1 or hi_ms < lo_ms:
            raise ValueError("backoff bounds: need 1 <= lo <= hi, got %r..%r" % (lo_ms, hi_ms))
        self.lo = lo_ms
        self.hi = hi_ms
        self.rng = rng or _default_rng
        self.attempts = 0  # failures since the last reset

    def ceiling(self):
        """The upper end of the window for the next delay (ms)."""
        c = self.lo << 1
        n = self.attempts
        # Double without building a huge integer after thousands of failures.
        while n > 0 and c < self.hi:
            c <<= 1
            n -= 1
        return self.hi if c > self.hi else c

    def next(self):
        """Delay (ms) before the next attempt; counts one more failure."""
        c = self.ceiling()
        self.attempts += 1
        return self.lo + self.rng(c - self.lo + 1)

    def slowest(self):
        """Delay (ms) for a failure that retrying cannot fix: in [hi/2, hi], never below lo."""
        self.attempts += 1
        half = self.hi >> 1
        if half < self.lo:
            half = self.lo
        return half + self.rng(self.hi - half + 1)

    def reset(self):
        self.attempts = 0
