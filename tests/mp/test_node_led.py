# The status LED on the simulated board: one pattern per node state, driven by the loop.
import json

import machine
import node_fakes as F
import node_heap  # noqa: F401 - skips from source in a small heap (see node_heap.py)
import simenv
from node import config, led
from node_world import World, doc

TIMEOUT = 60


class LedBoard(F.Board):
    """The fake board with the sim board's LED (GPIO2, lit when high) on real sim pins."""

    bdef = {"led": {"pin": 2, "active": 1}}
    led_pin = 2
    held = False

    def pin(self, n):
        return machine.Pin(n)

    def button_held(self):
        return self.held


F.Board = LedBoard  # node_world builds its board from node_fakes


def edges(w, ms, pin=2, step=10):
    """[(ms from start, level)] each time the pin's level changes while the node runs."""
    out, last, t0 = [], simenv.pin(pin).level(), w.clock.ms
    for _ in range(ms // step):
        w.node.step()
        lv = simenv.pin(pin).level()
        if lv != last:
            out.append((w.clock.ms - t0, lv))
            last = lv
        w.clock.advance(step)
    return out


def periods(e):
    return [e[i + 1][0] - e[i][0] for i in range(len(e) - 1)]


def shows(e, pattern):
    """The edges hold one whole cycle of `pattern` (on, off, ... times in ms)."""
    p, n = periods(e), len(pattern)
    return any(tuple(p[i : i + n]) == pattern and e[i][1] == 1 for i in range(len(p) - n + 1))


def test_patterns_have_their_timing():
    c = F.Clock()
    p = machine.Pin(2, machine.Pin.OUT)
    for state, want in led.PATTERNS.items():
        lt = led.StatusLED(p, 1, c)
        seen, last = [], None
        for t in range(0, 2 * sum(want), 10):
            c.ms = t
            lt.show(t, state)
            if p.value() != last:
                seen.append(t)
                last = p.value()
        assert p.value() in (0, 1)
        got = [seen[i + 1] - seen[i] for i in range(len(seen) - 1)]
        assert got == list(want + want)[: len(got)] and len(got) >= len(want), (state, got)


def test_active_low_led_lights_with_a_low_pin():
    c = F.Clock()
    p = machine.Pin(8, machine.Pin.OUT)
    lt = led.StatusLED(p, 0, c)
    lt.show(0, "ok")
    assert p.value() == 0  # lit
    lt.show(50, "ok")
    assert p.value() == 1  # dark


def test_fast_blink_without_wifi_then_slow_without_broker_then_short_flash():
    w = World()
    w.board.wlan().up = False
    w.mq.up = False
    e = edges(w, 2000)
    assert shows(e, (100, 100)) and set(periods(e)) == {100}, e  # looking for WiFi
    w.board.wlan().up = True
    e = edges(w, 3000)
    assert shows(e, (500, 500)) and 100 not in periods(e), e  # WiFi up, broker refusing
    w.mq.up = True
    e = edges(w, 16000)
    assert w.node.link.online()
    assert shows(e, (50, 4950)) and 500 not in periods(e)[-3:], e  # connected


def test_safe_mode_double_flash():
    LedBoard.held = True  # the boot button held at reset
    try:
        w = World()
    finally:
        LedBoard.held = False
    assert w.node.safe_reason == "boot button held"
    e = edges(w, 4000)
    assert shows(e, (100, 200, 100, 1600)), e


def test_config_error_triple_flash_in_safe_mode():
    w = World(doc(interval="ten"))  # refused, no last-good: safe mode on the salvaged config
    assert w.node.cfg_problems and w.node.safe_reason
    e = edges(w, 4000)
    assert shows(e, (100, 200, 100, 200, 100, 1300)), e


def test_status_led_false_leaves_the_pin_alone():
    w = World(doc(status_led=False))
    assert w.node.led is None
    edges(w, 1000)
    assert simenv.pin(2).mode != machine.Pin.OUT


def test_configured_pin_and_polarity_win_over_the_board():
    w = World(doc(status_led={"pin": 13, "active": 0}))
    w.board.wlan().up = False
    w.mq.up = False
    e = edges(w, 1000, pin=13)
    assert set(periods(e)) == {100} and len(e) >= 8, e  # fast blink
    assert w.node.led.active == 0 and simenv.pin(13).mode == machine.Pin.OUT
    assert simenv.pin(2).mode != machine.Pin.OUT


def test_board_led_on_a_sensor_pin_is_not_driven_and_says_why():
    from node import log

    d = doc(sensors=[{"type": "dht22", "pin": 2}])
    w = World(d)
    assert w.node.led is None
    assert any("status led off: GPIO2 is wired to sensor dht22" in x for x in log.ring), log.ring


def test_neopixel_board_led_is_not_driven():
    class S3(LedBoard):
        bdef = {"led": {"pin": 48, "active": 1, "kind": "neopixel"}}
        led_pin = 48

    cfg = config.normalize(doc(), boards=[])
    said = []
    assert led.make(cfg, S3(), F.Clock(), said.append) is None
    assert said == ["status led off: the board's LED is a neopixel, not driven"]


def test_config_errors_name_the_path():
    def msgs(v):
        return config.validate(doc(status_led=v), boards=[])

    assert msgs(True) == [] and msgs({"pin": 2, "active": 0}) == []
    assert msgs({"pin": "D4"}) == ['status_led.pin: expected an integer 0..48, got "D4"']
    assert msgs({"pin": 49}) == ["status_led.pin: expected an integer 0..48, got 49"]
    assert msgs({"active": True}) == [
        "status_led.active: expected 1 (lit when the pin is high) or 0 (lit when low), got true"
    ]
    assert msgs({"blink": 1}) == ["status_led.blink: unknown key (allowed: enabled, pin, active)"]
    d = doc(status_led={"pin": 4}, sensors=[{"type": "ds18b20", "pin": 4}])
    assert config.validate(d, boards=[]) == [
        "status_led.pin: GPIO4 is already used by sensor ds18b20"
    ]
    assert config.normalize(doc(), boards=[])["status_led"] == {
        "enabled": True,
        "pin": None,
        "active": None,
    }
    assert json.dumps(config.normalize(doc(status_led=False), boards=[])["status_led"])
