"""time for the simulated board: the interpreter's time, driven by the simulated clock.

With SIM_SPEED=1 (the default) and no clock.advance(), this is real time. time.time() is
the simulated RTC (UTC, 1970 epoch as on the Unix port; a scenario may start it unset at
2000-01-01 like a powered-up ESP32); ticks_* are simulated uptime; sleeps sleep simulated time.
"""

import simenv

_rt = simenv._rt
_clock = simenv.clock
_MASK = simenv._TICKS_MASK

ticks_add = _rt.ticks_add
ticks_diff = _rt.ticks_diff
ticks_cpu = _rt.ticks_cpu
mktime = _rt.mktime


def ticks_ms():
    return (_clock.uptime_us() // 1000) & _MASK


def ticks_us():
    return _clock.uptime_us() & _MASK


def time():
    return _clock.rtc_us() / 1000000


def time_ns():
    return _clock.rtc_us() * 1000


def gmtime(secs=None):
    return _rt.gmtime(int(time()) if secs is None else secs)


def localtime(secs=None):
    return _rt.gmtime(int(time()) if secs is None else secs)  # the board keeps UTC


def sleep(s):
    _clock.sleep_us(int(s * 1000000))


def sleep_ms(ms):
    _clock.sleep_us(int(ms) * 1000)


def sleep_us(us):
    _clock.sleep_us(int(us))
if hasattr(_rt, "clock"):
    clock = _rt.clock
