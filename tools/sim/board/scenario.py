"""Scenario files for the simulated board: physical values over time, faults, WiFi and NTP.

A scenario is JSON (SIM_SCENARIO=path). Times are seconds since the scenario started
(``t`` below; kept across simulated deep sleep), except ``daily`` curves, which follow the
simulated wall clock (UTC).

    {
      "start": "2026-06-01T00:00:00Z",    # world time at the first boot (default: now)
      "speed": 60,                         # simulated seconds per real second (SIM_SPEED wins)
      "rtc_at_boot": "unset",              # RTC starts at 2000-01-01 until NTP (default: set)
      "devices": [
        {"type": "bme280", "address": 118, "sda": 21,      # sda defaults to the board's I2C
         "values": {"temperature": {"daily": {"mean": 21, "amplitude": 3, "peak_hour": 15}},
                    "humidity": 45,
                    "pressure": {"ramp": {"from_t": 0, "to_t": 3600, "from": 1013, "to": 1005}}},
         "faults": [{"kind": "nack", "from_t": 600, "to_t": 660}]},
        {"type": "ds18b20", "pin": 4, "rom": "28ff4a1b031603f0", "values": {"temperature": 5}},
        {"type": "dht22", "pin": 15, "values": {"temperature": 20, "humidity": 50}},
        {"type": "adc", "pin": 35, "divider": 2.0,
         "values": {"voltage": {"steps": [[0, 4.1], [7200, 3.6]]}}}
      ],
      "wifi": {"ssid": "simnet", "password": "secret", "rssi": -62, "connect_ms": 1500,
               "outages": [{"from_t": 300, "to_t": 420}]},
      "ntp": {"fail": [{"from_t": 0, "to_t": 30}]},
      "mcu_temperature": 48
    }

Value curves: a number; {"const": v}; {"ramp": {"from_t", "to_t", "from", "to"}} (held
outside); {"points": [[t, v], ...]} (linear between points); {"steps": [[t, v], ...]} (held
from each t); {"daily": {"mean", "amplitude", "peak_hour"}} (sine over the UTC day).
Device types: bme280, bmp280, sht3x, sht4x, aht20, bh1750 (I2C, "address", "sda"), ds18b20
(1-Wire on "pin", several may share one), dht22 ("pin"), adc ("pin", "divider"), and scripted
inputs: {"type": "input", "pin": 27, "level": <curve>} (a door contact: >= 0.5 is high) and
{"type": "pulses", "pin": 26, "per_minute": <curve>, "low_ms": 50} (a rain gauge or meter
pulling the pin low). Input edges fire at their own simulated time, IRQs included.
Fault kinds are listed in simdev/base.py.
"""

import math

import simenv


def _window(w, t):
    return w.get("from_t", 0) <= t < w.get("to_t", 1e18)


def active(windows, t=None):
    """True if t (default: now) falls into one of the windows [{"from_t", "to_t"}]."""
    if not windows:
        return False
    if windows is True:
        return True
    if t is None:
        t = simenv.scenario_t()
    return any(_window(w, t) for w in windows)


def curve(spec):
    """A callable t -> value from a curve spec (see the module docstring)."""
    if isinstance(spec, (int, float)):
        v = spec
        return lambda t: v
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ValueError("scenario: bad value curve %r" % (spec,))
    kind = list(spec)[0]
    a = spec[kind]
    if kind == "const":
        return lambda t: a
    if kind == "ramp":
        t0, t1, v0, v1 = a["from_t"], a["to_t"], a["from"], a["to"]

        def ramp(t):
            if t <= t0:
                return v0
            if t >= t1:
                return v1
            return v0 + (v1 - v0) * (t - t0) / (t1 - t0)

        return ramp
    if kind == "points":
        pts = a

        def points(t):
            if t <= pts[0][0]:
                return pts[0][1]
            for i in range(1, len(pts)):
                if t < pts[i][0]:
                    (ta, va), (tb, vb) = pts[i - 1], pts[i]
                    return va + (vb - va) * (t - ta) / (tb - ta)
            return pts[-1][1]

        return points
    if kind == "steps":
        st = a

        def steps(t):
            v = st[0][1]
            for tt, vv in st:
                if t >= tt:
                    v = vv
            return v

        return steps
    if kind == "daily":
        mean, amp, peak = a.get("mean", 20), a.get("amplitude", 3), a.get("peak_hour", 15)

        def daily(_t):
            # follows the world clock, not scenario time: warmest at peak_hour UTC
            sec = (simenv.clock.true_us() // 1000000) % 86400
            return mean + amp * math.cos(2 * math.pi * (sec / 3600 - peak) / 24)

        return daily
    raise ValueError("scenario: unknown curve kind %r" % kind)


def _make(spec, board):
    t = spec["type"]
    if t in ("bme280", "bmp280"):
        from simdev.bme280 import BME280Model

        m = BME280Model(spec.get("address", 0x76), chip=t)
    elif t == "sht3x":
        from simdev.sht import SHT3xModel

        m = SHT3xModel(spec.get("address", 0x44))
    elif t == "sht4x":
        from simdev.sht import SHT4xModel

        m = SHT4xModel(spec.get("address", 0x44))
    elif t == "aht20":
        from simdev.aht20 import AHT20Model

        m = AHT20Model(spec.get("address", 0x38))
    elif t == "bh1750":
        from simdev.bh1750 import BH1750Model

        m = BH1750Model(spec.get("address", 0x23))
    elif t == "ds18b20":
        from simdev.ds18b20 import DS18B20Model

        m = DS18B20Model(spec.get("rom"))
    elif t == "dht22":
        from simdev.dht22 import DHT22Model

        m = DHT22Model()
    elif t == "adc":
        from simdev.adc import VoltageSource

        m = VoltageSource(spec.get("divider", 1.0))
    else:
        raise ValueError("scenario: unknown device type %r" % t)
    for q, c in spec.get("values", {}).items():
        m.values[q] = curve(c)
    m.fault_windows = spec.get("faults", [])
    return m


class _Inputs:
    """Clock hook that drives scripted input pins; each edge is fired at its own time."""

    def __init__(self):
        self.items = []
        self.busy = False

    def hook(self, now_us):
        if self.busy:
            return
        self.busy = True
        try:
            for it in self.items:
                it.update(now_us)
        finally:
            self.busy = False


def _edge(pin, level, at_us):
    c = simenv.clock
    c.override_us = at_us  # the IRQ handler reads the edge's own time
    try:
        simenv.drive(pin, level)
    finally:
        c.override_us = None


class _Level:
    # {"type": "input", "pin": 27, "level": <curve>}: >= 0.5 drives high, else low
    def __init__(self, pin, c):
        self.pin, self.c, self.last, self.at = pin, c, None, None

    def _level(self, us):
        return 1 if self.c((us - simenv.t0_us) / 1000000) >= 0.5 else 0

    def update(self, now_us):
        v = self._level(now_us)
        if v != self.last:
            at = now_us
            if self.last is not None and self.at is not None:
                lo, hi = self.at, now_us  # find when it changed, to 1 ms
                while hi - lo > 1000:
                    mid = (lo + hi) // 2
                    if self._level(mid) == v:
                        hi = mid
                    else:
                        lo = mid
                at = hi
            self.last = v
            _edge(self.pin, v, at)
        self.at = now_us


class _Pulses:
    # {"type": "pulses", "pin": 26, "per_minute": <curve>, "low_ms": 50}: low pulses to ground
    def __init__(self, pin, c, low_ms):
        self.pin, self.c, self.low_us = pin, c, int(low_ms * 1000)
        self.next = None
        self.low = False

    def update(self, now_us):
        if self.next is None:
            self.next = now_us
            simenv.drive(self.pin, 1)
        for _ in range(10000):  # bounded per clock reading; the rest come at the next one
            if now_us < self.next:
                return
            at = self.next
            if self.low:
                _edge(self.pin, 1, at)
                self.low = False
                rate = self.c((at - simenv.t0_us) / 1000000)
                gap = int(60000000 / rate) - self.low_us if rate > 0 else 1000000
                self.next = at + max(gap, 1000)
            elif self.c((at - simenv.t0_us) / 1000000) > 0:
                _edge(self.pin, 0, at)
                self.low = True
                self.next = at + self.low_us
            else:
                self.next = at + 1000000  # no pulses now: look again in a second


def attach_all(data, board):
    """Put the scenario's devices on the simulated board's wires."""
    i2c_sda = board.get("i2c", {}).get("sda")
    inputs = _Inputs()
    for spec in data.get("devices", []):
        t = spec["type"]
        if t == "input":
            inputs.items.append(_Level(spec["pin"], curve(spec["level"])))
            continue
        if t == "pulses":
            c = curve(spec["per_minute"])
            inputs.items.append(_Pulses(spec["pin"], c, spec.get("low_ms", 50)))
            continue
        m = _make(spec, board)
        if t in ("ds18b20",):
            simenv.ow_wires(spec.get("pin", board.get("onewire_pin"))).attach(m)
        elif t == "dht22":
            simenv.dht_devices[spec.get("pin", board.get("dht_pin"))] = m
        elif t == "adc":
            simenv.adc_sources[spec["pin"]] = m
        else:
            simenv.i2c_wires(spec.get("sda", i2c_sda)).attach(m)
    if inputs.items:
        simenv.clock.hooks.append(inputs.hook)


def wifi():
    return simenv.scenario_data.get("wifi", {})


def wifi_down(t=None):
    return active(wifi().get("outages"), t)


def ntp_fails(t=None):
    return active(simenv.scenario_data.get("ntp", {}).get("fail"), t)
