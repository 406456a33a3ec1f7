"""machine for the simulated ESP32 board (MicroPython Unix port; put tools/sim/board first on
MICROPYPATH). The firmware's own code runs unchanged on it.

Environment variables:
  SIM_BOARD       board name in boards/ (default "sim") or a path to a board .json
  SIM_BOARDS_DIR  where board names are looked up (default <repo>/boards)
  SIM_ROOT        the repository (default: found from this file; set it when the board is frozen)
  SIM_SCENARIO    path of a scenario .json (devices, values over time, faults, WiFi, NTP);
                  see tools/sim/board/scenario.py. Without it the buses are empty and tests
                  attach models themselves.
  SIM_STATE_DIR   directory that persists what a real board keeps across a reset or deep
                  sleep: boot.json (reset reason, clock, sleep ms), rtcmem.bin (RTC memory),
                  nvs.json (esp32.NVS). Unset: nothing persists, every run is a power-on.
  SIM_SPEED       simulated seconds per real second (default 1; 0 = time moves only through
                  sleeps and simenv.clock.advance(), for exact tests). Also scenario "speed".
  SIM_MAC         MAC address "aa:bb:cc:dd:ee:ff" (default from the board, else 24:0a:c4:00:00:01)

Ending a run, as a real board would restart (the runner boots the process again):
  deepsleep(ms)  exit code 75 (simenv.EXIT_DEEPSLEEP); boot.json gets reason "deepsleep" and
                 sleep_ms; the next boot's clock is ms later, reset_cause() DEEPSLEEP_RESET,
                 wake_reason() TIMER_WAKE, RTC memory kept.
  reset()        exit code 76 (EXIT_RESET); next reset_cause() SOFT_RESET (as esp_restart).
  WDT expiry     exit code 77 (EXIT_WDT), message on stderr; next reset_cause() WDT_RESET.
                 Checked whenever the simulated clock is read (every time.* call, every bus
                 transfer), so a loop that stops feeding it fails loudly.
Sim-side steering lives in simenv (clock, pin drive, wires) and in Pin.sim_drive().
"""

import os
import sys

import simenv

_bm = simenv.builtin("machine")
# keep what the Unix port's machine has (Signal, mem8/16/32, time_pulse_us, ...)
for _k in dir(_bm):
    if not _k.startswith("__"):
        globals()[_k] = getattr(_bm, _k)

_clock = simenv.clock

# reset causes and wake reasons: the ESP32 port's values
PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5
PIN_WAKE = EXT0_WAKE = 2
EXT1_WAKE = 3
TIMER_WAKE = 4
TOUCHPAD_WAKE = 5
ULP_WAKE = 6
SLEEP = 2
DEEPSLEEP = 4

_CAUSE = {
    "poweron": PWRON_RESET,
    "deepsleep": DEEPSLEEP_RESET,
    "reset": SOFT_RESET,
    "wdt": WDT_RESET,
}


def reset_cause():
    return _CAUSE[simenv.prev_reason]


def wake_reason():
    return TIMER_WAKE if simenv.prev_reason == "deepsleep" and simenv.sleep_ms else 0


def _mac():
    s = os.getenv("SIM_MAC") or simenv.board.get("mac") or "24:0a:c4:00:00:01"
    return bytes(int(x, 16) for x in s.split(":"))


def unique_id():
    return _mac()


_freq = [160000000]


def freq(hz=None):
    if hz is None:
        return _freq[0]
    if hz not in (20000000, 40000000, 80000000, 160000000, 240000000):
        raise ValueError("frequency must be 20MHz, 40MHz, 80Mhz, 160MHz or 240MHz")
    _freq[0] = hz


def idle():
    _clock.sleep_us(1000)


def disable_irq():
    return 0


def enable_irq(state=0):
    pass


def lightsleep(ms=None):
    _clock.sleep_us((ms or 0) * 1000)


def deepsleep(ms=0):
    """End the run like a real deep sleep: record it and exit with EXIT_DEEPSLEEP (75)."""
    __getattr__("RTC")()._save()
    simenv.save_boot(
        "deepsleep", {"sleep_ms": ms or None, "epoch_us": _clock.true_us() + (ms or 0) * 1000}
    )
    sys.stdout.flush() if hasattr(sys.stdout, "flush") else None
    simenv.exit_run(simenv.EXIT_DEEPSLEEP, "deepsleep(%s): exit %d" % (ms, simenv.EXIT_DEEPSLEEP))


def reset():
    """End the run like esp_restart(): exit with EXIT_RESET (76)."""
    __getattr__("RTC")()._save()
    simenv.save_boot("reset")
    simenv.exit_run(simenv.EXIT_RESET, "reset(): exit %d" % simenv.EXIT_RESET)


# ---- Pin ------------------------------------------------------------------------------------
class Pin:
    IN = 0
    OUT = 1
    OPEN_DRAIN = 2
    PULL_UP = 1
    PULL_DOWN = 2
    PULL_HOLD = 4
    IRQ_FALLING = 1
    IRQ_RISING = 2
    WAKE_LOW = 4
    WAKE_HIGH = 5
    DRIVE_0, DRIVE_1, DRIVE_2, DRIVE_3 = 0, 1, 2, 3

    def __init__(self, id, mode=-1, pull=-1, value=None, **kw):
        if not isinstance(id, int) or not 0 <= id <= 48:
            raise ValueError("invalid pin")
        self._id = id
        self._s = simenv.pin(id)
        simenv._pin_objs[id] = self
        self.init(mode, pull, value)

    def init(self, mode=-1, pull=-1, value=None, **kw):
        s = self._s
        if mode is not None and mode != -1:
            s.mode = mode
        if pull != -1:
            s.pull = pull
        if value is not None:
            s.out = 1 if value else 0

    def value(self, v=None):
        if v is None:
            _clock.true_us()  # the watchdog sees polling loops too
            return self._s.level()
        old = self._s.level()
        self._s.out = 1 if v else 0
        new = self._s.level()
        s = self._s
        if s.handler is not None and old != new:
            if (new and s.trigger & Pin.IRQ_RISING) or (not new and s.trigger & Pin.IRQ_FALLING):
                s.handler(self)

    __call__ = value

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def irq(self, handler=None, trigger=IRQ_FALLING | IRQ_RISING, wake=None, hard=False):
        self._s.handler = handler
        self._s.trigger = trigger
        return self

    def mode(self, m=None):
        if m is None:
            return self._s.mode
        self._s.mode = m

    def pull(self, p=None):
        if p is None:
            return self._s.pull
        self._s.pull = p

    def sim_drive(self, level):
        """Sim side: drive this pin from outside (None releases it)."""
        simenv.drive(self._id, level)

    def __repr__(self):
        return "Pin(%d)" % self._id


_pin_id = simenv._sw.pin_id

# The peripherals live in smaller modules (less heap to compile each).
_LAZY = {
    "I2C": "simi2c",
    "SoftI2C": "simi2c",
    "ADC": "simperiph",
    "RTC": "simperiph",
    "WDT": "simperiph",
}


def __getattr__(name):
    # I2C, SoftI2C, ADC, RTC, WDT load on first use: the sim's own heap use stays small
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(name)
    v = getattr(__import__(mod), name)
    globals()[name] = v
    return v
