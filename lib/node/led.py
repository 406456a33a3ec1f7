"""Status LED: one blink pattern per node state, stepped by the node's loop (it never sleeps).

The LED is the board's (`"led"` in boards/<board>.json) unless config.json's `status_led`
names a pin; `"status_led": false` turns it off. A WS2812 board LED ("kind": "neopixel") is
not driven, nor a pin a sensor is wired to. Each pattern is on/off times in ms, repeated:

    wifi    fast even blink           looking for WiFi
    broker  slow even blink           WiFi up, broker not connected (yet)
    ok      a short flash every 5 s   connected
    safe    two flashes every 2 s     safe mode
    config  three flashes every 2 s   config.json refused (running on last-good or in safe mode)

    led = make(cfg, board, clock, say)   # None when there is no LED to drive
    led.step(now_ms, node)      # once per loop step; changes the pin only at a phase's end
"""

import time

PATTERNS = {
    "wifi": (100, 100),
    "broker": (500, 500),
    "ok": (50, 4950),
    "safe": (100, 200, 100, 1600),
    "config": (100, 200, 100, 200, 100, 1300),
}
_LONGEST = 5000  # no phase is longer; a due time further ahead is a wrapped tick (clamped)


def state_of(node):
    """The state the LED shows, from the node's public facts."""
    if node.cfg_problems:
        return "config"
    if node.safe_reason:
        return "safe"
    lk = node.link
    if lk.online():
        return "ok"
    return "broker" if lk.wifi_up else "wifi"


class StatusLED:
    def __init__(self, pin, active=1, clock=time):
        self.pin = pin  # a machine.Pin set to output
        self.active = active  # the level that lights it (0 for an LED to 3V3)
        self.clock = clock
        self.state = None
        self._phase = 0
        self._due = 0

    def step(self, now, node):
        self.show(now, state_of(node))

    def show(self, now, state):
        c = self.clock
        if state != self.state:
            self.state = state
            self._phase = 0
        else:
            d = c.ticks_diff(self._due, now)
            if 0 < d <= _LONGEST:
                return
        p = PATTERNS[state]
        i = self._phase
        lit = i % 2 == 0
        self.pin.value(self.active if lit else 1 - self.active)
        self._due = c.ticks_add(now, p[i])  # from now: a late loop shifts, never catches up
        self._phase = (i + 1) % len(p)


def make(cfg, board, clock=time, say=None):
    """The StatusLED for this config and board, or None (off, no LED, or its pin is taken)."""
    c = cfg.get("status_led") or {}
    if not c.get("enabled", True):
        return None
    pin, active = c.get("pin"), c.get("active")
    if pin is None:
        b = getattr(board, "bdef", None) or {}
        d = b.get("led") if isinstance(b, dict) else None
        if isinstance(d, dict) and d.get("kind", "gpio") != "gpio":
            return _off(say, "the board's LED is a %s, not driven" % d["kind"])
        pin = getattr(board, "led_pin", None)
        if active is None and isinstance(d, dict):
            active = d.get("active")
    if pin is None:
        return None
    for s in cfg.get("sensors", ()):
        if s.get("pin") == pin:
            return _off(say, "GPIO%d is wired to sensor %s" % (pin, s.get("name")))
    try:
        p = board.pin(pin)
        p.init(p.OUT)
    except Exception as e:  # noqa: BLE001 - no such pin on this board: no LED, say why
        return _off(say, "GPIO%d cannot be an output (%r)" % (pin, e))
    return StatusLED(p, 1 if active is None else active, clock)


def _off(say, why):
    if say is not None:
        say("status led off: " + why)
    return None
