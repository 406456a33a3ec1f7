"""A debounced digital input (door contact, button) and a pulse counter (rain gauge, meter).

DigitalInput samples the pin on read() and an edge IRQ restarts the debounce window, so a level
only counts once it has been steady for debounce_ms. PulseCounter counts edges in an IRQ
handler that never allocates (safe as a hard IRQ) and ignores edges closer than debounce_ms
(a reed switch bounces for a few ms).

Ticks: ticks_diff() is only meaningful for less than 2^29 ms (6.2 days), and an input can stay
quiet for longer. A debounce window that has passed is therefore kept passed: read() re-arms
the remembered tick to exactly debounce_ms ago, so its age never grows past a read interval,
and an age that reads negative (more than 2^29 ms without a read) counts as "long ago".

    from sensors.digital import DigitalInput, PulseCounter
    door = DigitalInput(machine.Pin(27), pull="up", invert=True)
    door.read()                                  # {"state": 1}
    rain = PulseCounter(machine.Pin(26), scale=0.2794, debounce_ms=50)   # mm per tip
    rain.read()                                  # {"count": 12, "total": 3.353}
"""

import time
from machine import Pin, disable_irq, enable_irq


def _pull(pull):
    if pull is None:
        return None
    if pull == "up":
        return Pin.PULL_UP
    if pull == "down":
        return Pin.PULL_DOWN
    raise ValueError("pull must be 'up', 'down' or None, got %r" % (pull,))


class DigitalInput:
    QUANTITIES = ("state",)
    NAME = "digital"
    conversion_ms = 0

    def __init__(self, pin, pull=None, invert=False, debounce_ms=20):
        if not 0 <= debounce_ms <= 10000:
            raise ValueError("digital: debounce_ms must be 0..10000, got %r" % (debounce_ms,))
        pin.init(Pin.IN, _pull(pull))
        self._pin = pin
        self._inv = 1 if invert else 0
        self._db = debounce_ms
        self._since = time.ticks_ms()
        self._cand = self._stable = pin.value() ^ self._inv
        self.changes = 0
        self._edges = self._seen = 0
        self._irq_h = self._edge  # bound once: the handler itself must not allocate
        pin.irq(handler=self._irq_h, trigger=Pin.IRQ_RISING | Pin.IRQ_FALLING)

    def _edge(self, _pin):
        # IRQ: remember when the line last moved (small ints only, no allocation)
        self._since = time.ticks_ms()
        self._edges += 1

    def start(self):
        """Nothing to start."""

    def value(self):
        """The debounced level (after invert): a level counts once steady for debounce_ms
        since the last edge (the IRQ's time, or when read() first saw it without one)."""
        raw = self._pin.value() ^ self._inv
        irq = disable_irq()  # the edge IRQ writes _since too
        now = time.ticks_ms()
        if raw != self._cand:
            self._cand = raw
            if self._edges == self._seen:  # no IRQ saw this change: start the window now
                self._since = now
        self._seen = self._edges
        d = time.ticks_diff(now, self._since)
        if d >= self._db or d < 0:  # d < 0: over 2^29 ms ago
            self._since = time.ticks_add(now, -self._db)  # re-arm: passed, and stays so
            if raw != self._stable:
                self._stable = raw
                self.changes += 1
        enable_irq(irq)
        return self._stable

    def read(self):
        return {"state": self.value()}


class PulseCounter:
    QUANTITIES = ("count", "total")
    NAME = "pulse"
    conversion_ms = 0

    def __init__(self, pin, edge="falling", pull="up", debounce_ms=0, scale=1.0):
        if edge == "falling":
            trig = Pin.IRQ_FALLING
        elif edge == "rising":
            trig = Pin.IRQ_RISING
        else:
            raise ValueError("pulse: edge must be 'falling' or 'rising', got %r" % (edge,))
        if not 0 <= debounce_ms <= 10000:
            raise ValueError("pulse: debounce_ms must be 0..10000, got %r" % (debounce_ms,))
        pin.init(Pin.IN, _pull(pull))
        self._pin = pin
        self._db = debounce_ms
        self.scale = scale
        self._count = 0
        self._last = time.ticks_add(time.ticks_ms(), -debounce_ms)
        self._irq_h = self._edge
        pin.irq(handler=self._irq_h, trigger=trig)

    def _edge(self, _pin):
        # IRQ context: small ints only, no allocation. d < 0: the last count was over 2^29 ms
        # ago (nobody called read() to re-arm in between), so the window has long passed.
        now = time.ticks_ms()
        d = time.ticks_diff(now, self._last)
        if d >= self._db or d < 0:
            self._count += 1
            self._last = now

    def _rearm(self):
        # Once the window has passed, move _last to exactly debounce_ms ago: its age then stays
        # below one read interval and can never wrap into "just now" (ticks wrap at 2^30 ms).
        irq = disable_irq()
        now = time.ticks_ms()
        d = time.ticks_diff(now, self._last)
        if d >= self._db or d < 0:
            self._last = time.ticks_add(now, -self._db)
        enable_irq(irq)

    def start(self):
        """Nothing to start."""

    def count(self):
        self._rearm()
        return self._count

    def reset(self):
        self._count = 0

    def read(self):
        n = self.count()
        return {"count": n, "total": round(n * self.scale, 4)}
