"""The board layer: the only place the node builds machine.I2C, Pin, ADC, WLAN, WDT.

Pins come from the board definition (`boards/<name>.json`, copied to the device as
`board.json` or found under `boards/`); a few well-known boards have built-in defaults so a
device without the file still boots. Everything else in the node gets its hardware from here,
which is what lets the same code run on an ESP32, on the simulated board and in tests.

    b = Board.load("esp32-devkitc")
    i2c = b.i2c(0)           # machine.I2C on the board's SDA/SCL, built once
    b.mac_hex()              # "a4cf12345678"
"""

import json

import machine

# Fallbacks when no board file is on the device (`nodectl build` ships boards/ as lib/boards/).
# tests/mp/test_node_board.py keeps these equal to boards/*.json.
_BUILTIN = {
    "esp32-devkitc": {"i2c": [{"sda": 21, "scl": 22, "freq": 400000}], "button": 0, "led": None},
    "lolin-d32": {"i2c": [{"sda": 21, "scl": 22, "freq": 400000}], "button": None, "led": 5},
    "esp32-s3-devkitc": {"i2c": [{"sda": 8, "scl": 9, "freq": 400000}], "button": 0, "led": 48},
    # GPIO8 (LED) and GPIO9 (boot button) are strapping pins, so I2C sits on 6/7
    "esp32-c3-supermini": {"i2c": [{"sda": 6, "scl": 7, "freq": 400000}], "button": 9, "led": 8},
    "sim": {"i2c": [{"sda": 21, "scl": 22, "freq": 400000}], "button": 0, "led": 2},
}

_RESET_CAUSES = (
    "PWRON_RESET",
    "HARD_RESET",
    "WDT_RESET",
    "DEEPSLEEP_RESET",
    "SOFT_RESET",
    "BROWNOUT_RESET",
)


def _pin_of(v):
    # board files may write {"sda": 21} or {"sda": {"gpio": 21}} or "GPIO21"
    if isinstance(v, dict):
        v = v.get("gpio", v.get("pin"))
    if isinstance(v, str):
        s = v.upper()
        if s.startswith("GPIO"):
            s = s[4:]
        elif s.startswith("IO"):
            s = s[2:]
        try:
            return int(s)
        except ValueError:
            return None
    return v


def _first(d, *keys):
    for k in keys:
        if k in d:
            return d[k]
    return None


class Board:
    def __init__(self, name, bdef=None):
        self.name = name
        self.bdef = bdef or _BUILTIN.get(name) or _BUILTIN["esp32-devkitc"]
        self._i2c = {}
        self._wlan = None
        self._wdt = None
        buses = _first(self.bdef, "i2c", "i2c_buses") or []
        if isinstance(buses, dict):
            buses = (
                [buses] if ("sda" in buses or "scl" in buses) else [buses[k] for k in sorted(buses)]
            )
        self.i2c_pins = [
            (_pin_of(b.get("sda")), _pin_of(b.get("scl")), b.get("freq", 100000)) for b in buses
        ]
        pins = self.bdef.get("pins")
        self.pins = pins if isinstance(pins, dict) else {}
        b = _first(self.bdef, "button", "boot_button")
        self.button_pin = _pin_of(b)
        self.button_active = b.get("active", 0) if isinstance(b, dict) else 0
        self.led_pin = _pin_of(self.bdef.get("led"))

    @classmethod
    def load(cls, name, paths=("board.json", "boards/%s.json", "lib/boards/%s.json")):
        for p in paths:
            if "%s" in p:
                p = p % name
            try:
                with open(p) as f:
                    d = json.load(f)
            except (OSError, ValueError):
                continue
            if isinstance(d, dict):
                return cls(name, d)
        return cls(name)

    # -- buses and pins ------------------------------------------------------------------
    def i2c(self, bus=0):
        i = self._i2c.get(bus)
        if i is None:
            if bus >= len(self.i2c_pins):
                raise OSError("board %s has no I2C bus %d" % (self.name, bus))
            sda, scl, freq = self.i2c_pins[bus]
            i = machine.I2C(bus, scl=machine.Pin(scl), sda=machine.Pin(sda), freq=freq)
            self._i2c[bus] = i
        return i

    def pin(self, n):
        return machine.Pin(n)

    def adc(self, n):
        a = machine.ADC(machine.Pin(n))
        try:
            a.atten(machine.ADC.ATTN_11DB)  # full 0..3.3 V range
        except (AttributeError, ValueError):
            pass
        return a

    def bus_for(self, scfg):
        """What sensors.make() takes for this sensor config."""
        # A normalized sensor config has "address" only for I2C types (config.TYPES).
        if "address" in scfg:
            return self.i2c(scfg.get("bus", 0))
        if scfg["type"] == "adc":
            return self.adc(scfg["pin"])
        return self.pin(scfg["pin"])

    def button_held(self):
        if self.button_pin is None:
            return False
        try:
            pull = machine.Pin.PULL_UP if self.button_active == 0 else machine.Pin.PULL_DOWN
            p = machine.Pin(self.button_pin, machine.Pin.IN, pull)
            return p.value() == self.button_active  # boot buttons pull the pin to ground
        except Exception:  # noqa: BLE001 - a board without that pin is simply not "held"
            return False

    # -- system --------------------------------------------------------------------------
    def wlan(self):
        if self._wlan is None:
            import network

            self._wlan = network.WLAN(network.STA_IF)
            self._wlan.active(True)
            try:
                self._wlan.config(reconnects=3)  # bounded: we choose the next network
            except Exception:  # noqa: BLE001 - not every port knows the option
                pass
        return self._wlan

    def mac_hex(self):
        try:
            return "".join("%02x" % b for b in self.wlan().config("mac"))
        except Exception:  # noqa: BLE001
            return "".join("%02x" % b for b in machine.unique_id())[-12:]

    def reset_cause(self):
        try:
            c = machine.reset_cause()
        except Exception:  # noqa: BLE001
            return "unknown"
        for n in _RESET_CAUSES:
            if getattr(machine, n, None) == c:
                return n[:-6].lower()
        return str(c)

    def woke_from_deepsleep(self):
        try:
            return machine.reset_cause() == machine.DEEPSLEEP_RESET
        except Exception:  # noqa: BLE001
            return False

    def rtc_memory(self, data=None):
        try:
            r = machine.RTC()
            if data is None:
                return bytes(r.memory())
            r.memory(data)
        except Exception:  # noqa: BLE001
            return b""
        return b""

    def wdt(self, timeout_ms):
        if self._wdt is None:
            self._wdt = machine.WDT(timeout=timeout_ms)
        return self._wdt

    def feed(self):
        if self._wdt is not None:
            self._wdt.feed()

    def reset(self):
        machine.reset()

    def deepsleep(self, ms):
        machine.deepsleep(ms)
