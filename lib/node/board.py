"""The board layer: the only place the node builds machine.I2C, Pin, ADC, WLAN, WDT.

Pins come from the board definition (`boards/<name>.json`, copied to the device as
`board.json` or found under `boards/`), read once at boot by node.boardfile (dropped after); a
few well-known boards have built-in defaults so a device without the file still boots.
Everything else in the node gets its hardware from here, which is what lets the same code run
on an ESP32, on the simulated board and in tests.

    b = Board.load("esp32-devkitc")
    i2c = b.i2c(0)           # machine.I2C on the board's SDA/SCL, built once
    b.mac_hex()              # "a4cf12345678"
"""

import machine

_RESET_CAUSES = (
    "PWRON_RESET",
    "HARD_RESET",
    "WDT_RESET",
    "DEEPSLEEP_RESET",
    "SOFT_RESET",
    "BROWNOUT_RESET",
)


class Board:
    def __init__(self, name, bdef=None):
        """bdef: the board definition (a board file's content); None: the built-in one."""
        from node import boardfile, cold

        self.name = name
        self._i2c = {}
        self._wlan = None
        self._wdt = None
        pins = boardfile.pins(name, bdef)
        self.i2c_pins, self.button_pin, self.button_active, self.led_pin = pins
        cold.unload("node.boardfile")

    @classmethod
    def load(cls, name, paths=("board.json", "boards/%s.json", "lib/boards/%s.json")):
        """The board from the first board file found (else its built-in definition)."""
        from node import boardfile

        return cls(name, boardfile.read(name, paths))

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
