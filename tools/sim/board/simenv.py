"""The simulated board's shared state: configuration, clock, persisted state, wires, watchdog.

Everything here is sim-side (never imported by firmware code). machine.py documents the
environment variables; tests use this module to steer the world:

    import simenv
    simenv.clock.set_speed(0)        # time moves only when told (deterministic tests)
    simenv.clock.advance(750)        # let 750 ms of simulated time pass, at once
    simenv.drive(4, 0)               # hold GPIO4 low from outside (a button, a reed switch)
    simenv.i2c_wires(21).attach(model)   # put a device model on the I2C bus with SDA on GPIO21
"""

import sys
import os
import json

EXIT_DEEPSLEEP = 75  # machine.deepsleep(): the runner should boot again (wake after sleep_ms)
EXIT_RESET = 76  # machine.reset(): the runner should boot again at once
EXIT_WDT = 77  # the watchdog was not fed in time: the runner should boot again


def builtin(name):
    """The interpreter's own module `name`, bypassing our files of the same name on sys.path."""
    saved_mod = sys.modules.pop(name, None)
    saved_path = sys.path[:]
    del sys.path[:]
    try:
        m = __import__(name)
    finally:
        sys.path.extend(saved_path)
        if saved_mod is not None:
            sys.modules[name] = saved_mod
        else:
            sys.modules.pop(name, None)
    return m


_rt = builtin("time")  # real time
_TICKS_MASK = _rt.ticks_add(0, -1)


def _getenv(name, default=None):
    v = os.getenv(name)
    return default if v is None or v == "" else v


def _dirname(p):
    i = p.rfind("/")
    return "." if i < 0 else (p[:i] or "/")


def _exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False


def _load_json(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except OSError:
        return default


def _save_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.rename(tmp, path)


# The repository (for boards/ and scenarios). SIM_ROOT names it where this module has no useful
# __file__: frozen into the device twin.
ROOT = _getenv("SIM_ROOT") or _dirname(_dirname(_dirname(_dirname(__file__))))
STATE_DIR = _getenv("SIM_STATE_DIR")  # None: nothing persists (each run is a power-on)


def state_path(name):
    return None if STATE_DIR is None else STATE_DIR + "/" + name


def _board_path(name):
    if name.endswith(".json"):
        return name
    return _getenv("SIM_BOARDS_DIR", ROOT + "/boards") + "/" + name + ".json"


BOARD_NAME = _getenv("SIM_BOARD", "sim")
board = _load_json(_board_path(BOARD_NAME))
if board is None:
    raise OSError("SIM_BOARD: no board definition %s" % _board_path(BOARD_NAME))

SCENARIO_PATH = _getenv("SIM_SCENARIO")
scenario_data = {}
if SCENARIO_PATH:
    scenario_data = _load_json(SCENARIO_PATH)
    if scenario_data is None:
        raise OSError("SIM_SCENARIO: cannot read %s" % SCENARIO_PATH)


# ---- boot record (state dir): why we booted, and the clock across deep sleep ----------------
_boot_path = state_path("boot.json")
_prev = (_load_json(_boot_path) if _boot_path else None) or {}
# What the previous run ended with; anything else (no record, normal exit, crash) is power-on.
prev_reason = _prev.get("reason", "poweron")
if prev_reason not in ("deepsleep", "reset", "wdt"):
    prev_reason = "poweron"
boots = _prev.get("boots", 0) + 1
sleep_ms = _prev.get("sleep_ms")


class Clock:
    """Simulated time: true (world) epoch in us, advancing at `speed` x real time plus advance().

    speed 0 freezes it: only advance() and sleeps move it, so tests are exact and fast.
    The RTC (time.time(), RTC.datetime()) is the true time plus an offset NTP or RTC.init sets.

    Integer microseconds throughout: on a float32 build (the ESP32, the device twin) a float
    cannot hold an epoch in seconds, let alone in us. Real time is folded in on every reading,
    so the interpreter's ticks_us() (which wraps after about 18 minutes) never spans a wrap.
    """

    def __init__(self, epoch_us, speed):
        self._base = epoch_us
        self._origin = _rt.ticks_us()  # uptime starts where the interpreter's ticks_us() was
        self._real_last = self._origin
        self._acc = 0  # real us elapsed x speed in thousandths, folded in by _elapsed()
        self._adv = 0
        self.speed = 0
        self._milli = 0
        self.set_speed(speed)
        self.rtc_offset_us = 0
        self.override_us = None
        self.hooks = []  # callables(now_us) run on every reading: the watchdog lives here

    def _elapsed(self):
        if self._milli:
            now = _rt.ticks_us()
            self._acc += _rt.ticks_diff(now, self._real_last) * self._milli
            self._real_last = now
        return self._adv + self._acc // 1000

    def true_us(self):
        """World time in us since 1970 (what NTP would tell)."""
        if self.override_us is not None:
            return self.override_us  # inside a scripted input edge: its own time
        now = self._base + self._elapsed()
        for h in self.hooks:
            h(now)
        return now

    def uptime_us(self):
        # continuous with the interpreter's ticks_us() at speed 1 (time.py before install)
        return self.true_us() - self._base + self._origin

    def rtc_us(self):
        """The board's own idea of the time (time.time()), us since 1970."""
        return self.true_us() + self.rtc_offset_us

    def set_rtc_us(self, us):
        self.rtc_offset_us = us - self.true_us()

    def advance(self, ms):
        """Let ms of simulated time pass at once (no real sleeping)."""
        self._adv += ms * 1000 if isinstance(ms, int) else int(ms * 1000)
        self.true_us()  # run the hooks: an overdue watchdog fires now

    def advance_us(self, us):
        self._adv += int(us)
        self.true_us()

    def sleep_us(self, us):
        """Sleep in simulated time: real time scaled by speed, never less than asked."""
        us = int(us)
        target = self._base + self._elapsed() + us
        if self._milli and us > 0:
            _rt.sleep_us(us * 1000 // self._milli)
        now = self._base + self._elapsed()
        if now < target:
            self._adv += target - now
        self.true_us()

    def set_speed(self, speed):
        """Simulated seconds per real second (0: only advance() and sleeps move the clock)."""
        self._elapsed()  # what passed at the old speed
        self._real_last = _rt.ticks_us()
        self.speed = speed
        self._milli = int(speed * 1000 + 0.5) if speed > 0 else 0


def _parse_time(v):
    # "2026-06-01T00:00:00Z" or a number of seconds since 1970
    if isinstance(v, int):
        return v * 1000000
    if isinstance(v, float):
        return int(v * 1000000)
    s = v.rstrip("Z")
    d, _, t = s.partition("T")
    y, mo, dd = [int(x) for x in d.split("-")]
    hh, mi, ss = ([int(x) for x in t.split(":")] + [0, 0, 0])[:3] if t else (0, 0, 0)
    return _rt.mktime((y, mo, dd, hh, mi, ss, 0, 0)) * 1000000  # Unix port: UTC, 1970 epoch


def _initial_epoch_us():
    if prev_reason != "poweron" and "epoch_us" in _prev:
        return _prev["epoch_us"]
    if "start" in scenario_data and "epoch_us" not in _prev:
        return _parse_time(scenario_data["start"])
    if "epoch_us" in _prev and "start" in scenario_data:
        return _prev["epoch_us"]  # a power-on later in the same scenario: the world moved on
    return _rt.time_ns() // 1000


clock = Clock(_initial_epoch_us(), float(_getenv("SIM_SPEED", scenario_data.get("speed", 1))))
if prev_reason != "poweron":
    clock.rtc_offset_us = _prev.get("rtc_offset_us", 0)
elif scenario_data.get("rtc_at_boot") == "unset":
    # A real ESP32 starts its RTC at 2000-01-01 00:00:00 after power-on, until NTP sets it.
    clock.set_rtc_us(946684800 * 1000000)
# Scenario time 0: the scenario's start (kept across boots)
t0_us = _prev.get("t0_us", clock.true_us())


def scenario_t():
    """Seconds since the scenario started (true time), as a float."""
    return (clock.true_us() - t0_us) / 1000000


def save_boot(reason, extra=None):
    """Write the boot record the next run reads (no-op without SIM_STATE_DIR)."""
    if _boot_path is None:
        return
    rec = {
        "reason": reason,
        "boots": boots,
        "epoch_us": clock.true_us(),
        "t0_us": t0_us,
        "rtc_offset_us": clock.rtc_offset_us,
    }
    if extra:
        rec.update(extra)
    _save_json(_boot_path, rec)


if _boot_path is not None:
    if not _exists(STATE_DIR):
        os.mkdir(STATE_DIR)
    # Until we end through deepsleep/reset/WDT, the next boot is a power-on.
    save_boot("running")


def exit_run(code, message):
    """End the simulated run with a distinctive exit code, telling the runner why."""
    sys.stderr.write("SIM: %s\n" % message)
    sys.exit(code)


# ---- watchdog ------------------------------------------------------------------------------
class _Watchdog:
    def __init__(self):
        self.deadline = None
        self.timeout_ms = 0
        self.firing = False

    def check(self, now):
        if self.deadline is not None and now > self.deadline and not self.firing:
            self.firing = True
            save_boot("wdt")
            exit_run(
                EXIT_WDT,
                "WDT: not fed for %d ms, the board resets (exit %d)" % (self.timeout_ms, EXIT_WDT),
            )


watchdog = _Watchdog()
clock.hooks.append(watchdog.check)


# ---- pins and buses live in simwires (kept separate: smaller modules compile in less heap) --
import simwires as _sw  # noqa: E402

PinState = _sw.PinState
pins = _sw.pins
pin = _sw.pin
_pin_objs = _sw.pin_objs
drive = _sw.drive
pulse = _sw.pulse
Nack = _sw.Nack
I2CWires = _sw.I2CWires
OneWireWires = _sw.OneWireWires
i2c_wires = _sw.i2c_wires
ow_wires = _sw.ow_wires
dht_devices = _sw.dht_devices
adc_sources = _sw.adc_sources


# From now on time.* runs on the simulated clock.
import time as _time  # noqa: E402  (our time.py: installing the clock is the point)

_time._clock = clock
