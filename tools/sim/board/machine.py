"""machine for the simulated ESP32 board (MicroPython Unix port; put tools/sim/board first on
MICROPYPATH). The firmware's own code runs unchanged on it.

Environment variables:
  SIM_BOARD       board name in boards/ (default "sim") or a path to a board .json
  SIM_BOARDS_DIR  where board names are looked up (default <repo>/boards)
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

import errno
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

_CAUSE = {"poweron": PWRON_RESET, "deepsleep": DEEPSLEEP_RESET, "reset": SOFT_RESET,
          "wdt": WDT_RESET}


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
    RTC()._save()
    simenv.save_boot("deepsleep", {"sleep_ms": ms or None,
                                   "epoch_us": _clock.true_us() + (ms or 0) * 1000})
    sys.stdout.flush() if hasattr(sys.stdout, "flush") else None
    simenv.exit_run(simenv.EXIT_DEEPSLEEP, "deepsleep(%s): exit %d" % (ms, simenv.EXIT_DEEPSLEEP))


def reset():
    """End the run like esp_restart(): exit with EXIT_RESET (76)."""
    RTC()._save()
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


def _pin_id(p):
    if p is None:
        return None
    return p._id if isinstance(p, Pin) else int(p)


# ---- I2C ------------------------------------------------------------------------------------
_DEFAULT_I2C = {0: (18, 19), 1: (25, 26)}  # ESP32 port defaults (scl, sda)


class I2C:
    """Hardware/soft I2C on the simulated wires: devices are found by the SDA pin."""

    def __init__(self, id=-1, *, scl=None, sda=None, freq=400000, timeout=50000):
        b = simenv.board.get("i2c", {})
        if scl is None and sda is None:
            if id == b.get("id", 0) and "sda" in b:
                scl, sda = b["scl"], b["sda"]
            elif id in _DEFAULT_I2C:
                scl, sda = _DEFAULT_I2C[id]
            else:
                raise ValueError("I2C(%r) doesn't exist" % (id,))
        self._scl = _pin_id(scl)
        self._sda = _pin_id(sda)
        self._freq = freq
        self._w = simenv.i2c_wires(self._sda)

    def init(self, *, scl=None, sda=None, freq=400000, timeout=50000):
        self._freq = freq

    def deinit(self):
        pass

    def sim_attach(self, model):
        """Sim side: put a device model on these wires."""
        return self._w.attach(model)

    def _dev(self, addr):
        _clock.true_us()
        w = self._w
        if w.stuck:
            raise OSError(errno.ETIMEDOUT)
        for d in w.devices:
            if d.active_fault() == "bus_stuck":
                raise OSError(errno.ETIMEDOUT)
        d = w.device(addr)
        if d is None or not d.acks():
            raise OSError(errno.ENODEV)
        return d

    def scan(self):
        out = []
        for a in range(0x08, 0x78):
            try:
                self._dev(a)
                out.append(a)
            except OSError as e:
                if e.errno == errno.ETIMEDOUT:
                    raise
        return out

    def _write(self, addr, data):
        d = self._dev(addr)
        try:
            d.transfer_write(data)
        except simenv.Nack:
            raise OSError(errno.ENODEV)
        return d

    def _read(self, d, n):
        try:
            return d.transfer_read(n)
        except simenv.Nack:
            raise OSError(errno.ENODEV)

    def writeto(self, addr, buf, stop=True):
        self._write(addr, bytes(buf))
        return len(buf)

    def writevto(self, addr, vector, stop=True):
        data = b"".join(bytes(v) for v in vector)
        self._write(addr, data)
        return len(data)

    def readfrom(self, addr, nbytes, stop=True):
        return bytes(self._read(self._dev(addr), nbytes))

    def readfrom_into(self, addr, buf, stop=True):
        data = self._read(self._dev(addr), len(buf))
        for i in range(len(buf)):
            buf[i] = data[i]

    def _memaddr(self, memaddr, addrsize):
        if addrsize == 16:
            return bytes((memaddr >> 8, memaddr & 0xFF))
        return bytes((memaddr & 0xFF,))

    def writeto_mem(self, addr, memaddr, buf, *, addrsize=8):
        self._write(addr, self._memaddr(memaddr, addrsize) + bytes(buf))

    def readfrom_mem(self, addr, memaddr, nbytes, *, addrsize=8):
        d = self._write(addr, self._memaddr(memaddr, addrsize))
        return bytes(self._read(d, nbytes))

    def readfrom_mem_into(self, addr, memaddr, buf, *, addrsize=8):
        d = self._write(addr, self._memaddr(memaddr, addrsize))
        data = self._read(d, len(buf))
        for i in range(len(buf)):
            buf[i] = data[i]


class SoftI2C(I2C):
    def __init__(self, scl, sda, *, freq=400000, timeout=50000):
        super().__init__(-1, scl=scl, sda=sda, freq=freq, timeout=timeout)


# ---- ADC ------------------------------------------------------------------------------------
class ADC:
    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3
    WIDTH_9BIT, WIDTH_10BIT, WIDTH_11BIT, WIDTH_12BIT = 0, 1, 2, 3
    _FULL = (0.95, 1.25, 1.75, 3.1)  # usable range per attenuation (V), ESP32 ADC docs

    def __init__(self, pin, *, atten=None):
        self._pin = _pin_id(pin)
        self._atten = self.ATTN_0DB if atten is None else atten

    def atten(self, a):
        self._atten = a

    def width(self, w):
        pass

    def _volts(self):
        _clock.true_us()
        src = simenv.adc_sources.get(self._pin)
        v = src.pin_volts() if src is not None else 0.0
        full = self._FULL[self._atten]
        return 0.0 if v < 0 else full if v > full else v

    def read_uv(self):
        return int(self._volts() * 1000000)

    def read_u16(self):
        return int(self._volts() / self._FULL[self._atten] * 65535)

    def read(self):
        return self.read_u16() >> 4


# ---- RTC ------------------------------------------------------------------------------------
_rtc_mem = [None]


class RTC:
    """datetime() on the simulated clock; memory() (<= 2048 bytes) kept across deep sleep,
    reset() and WDT resets in SIM_STATE_DIR/rtcmem.bin, cleared by a power-on."""

    def __init__(self, id=0):
        if _rtc_mem[0] is None:
            data = b""
            p = simenv.state_path("rtcmem.bin")
            if p is not None and simenv.prev_reason != "poweron":
                try:
                    with open(p, "rb") as f:
                        data = f.read()
                except OSError:
                    pass
            _rtc_mem[0] = data

    def datetime(self, dt=None):
        if dt is None:
            us = _clock.rtc_us()
            t = simenv._rt.gmtime(us // 1000000)
            # (year, month, day, weekday 0=Monday, hours, minutes, seconds, subseconds us)
            return (t[0], t[1], t[2], t[6], t[3], t[4], t[5], us % 1000000)
        y, mo, d, _wd, h, mi, s = dt[:7]
        sub = dt[7] if len(dt) > 7 else 0
        _clock.set_rtc_us(simenv._rt.mktime((y, mo, d, h, mi, s, 0, 0)) * 1000000 + sub)

    def init(self, dt):
        self.datetime(dt)

    def memory(self, data=None):
        if data is None:
            return _rtc_mem[0]
        if len(data) > 2048:
            raise ValueError("buffer too long")
        _rtc_mem[0] = bytes(data)
        self._save()

    def _save(self):
        p = simenv.state_path("rtcmem.bin")
        if p is not None and _rtc_mem[0] is not None:
            with open(p, "wb") as f:
                f.write(_rtc_mem[0])


# ---- WDT ------------------------------------------------------------------------------------
class WDT:
    """Once started it cannot be stopped; not fed within timeout ms of simulated time, the run
    ends with exit code 77 and a message on stderr."""

    def __init__(self, id=0, timeout=5000):
        if timeout < 1:
            raise ValueError("WDT timeout too short")
        simenv.watchdog.timeout_ms = timeout
        self.feed()

    def feed(self):
        wd = simenv.watchdog
        wd.check(_clock.true_us())
        wd.deadline = _clock.true_us() + wd.timeout_ms * 1000
