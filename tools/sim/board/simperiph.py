"""machine.ADC, RTC and WDT for the simulated board (re-exported by machine.py)."""

import simenv

_clock = simenv.clock
_pin_id = simenv._sw.pin_id


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
