"""time for the simulated board: the interpreter's time, driven by the simulated clock.

Kept tiny on purpose (every `import time` loads it): until the simulated board is in use
(machine/network/... imported, or a SIM_* variable set) it is the interpreter's own time. Then
ticks_* are simulated uptime, time.time() the simulated RTC (UTC, 1970 epoch as on the Unix
port; whole seconds, an int, as on the ESP32), and sleeps sleep simulated time. With
SIM_SPEED=1 (the default) and no simenv.clock.advance(), that is real time, continuous with
what came before.
"""

import sys
import os

_saved = sys.modules.pop("time", None)
_path = sys.path[:]
del sys.path[:]
try:
    import time as _rt  # the built-in module
finally:
    sys.path.extend(_path)
    sys.modules["time"] = _saved
del _saved, _path

_clock = None  # simenv installs its Clock here
_MASK = _rt.ticks_add(0, -1)
ticks_add = _rt.ticks_add
ticks_diff = _rt.ticks_diff
ticks_cpu = _rt.ticks_cpu
mktime = _rt.mktime


def ticks_ms():
    c = _clock
    return _rt.ticks_ms() if c is None else (c.uptime_us() // 1000) & _MASK


def ticks_us():
    c = _clock
    return _rt.ticks_us() if c is None else c.uptime_us() & _MASK


def time():
    # An int, as on the ESP32: a float32 cannot hold an epoch to the second.
    c = _clock
    return _rt.time_ns() // 1000000000 if c is None else c.rtc_us() // 1000000


def time_ns():
    c = _clock
    return _rt.time_ns() if c is None else c.rtc_us() * 1000


def gmtime(secs=None):
    if secs is None:
        return _rt.gmtime() if _clock is None else _rt.gmtime(time())
    return _rt.gmtime(secs)


def localtime(secs=None):
    if _clock is None:
        return _rt.localtime() if secs is None else _rt.localtime(secs)
    return _rt.gmtime(time() if secs is None else secs)  # the board keeps UTC


def sleep(s):
    c = _clock
    _rt.sleep(s) if c is None else c.sleep_us(int(s * 1000000))


def sleep_ms(ms):
    c = _clock
    _rt.sleep_ms(ms) if c is None else c.sleep_us(int(ms) * 1000)


def sleep_us(us):
    c = _clock
    _rt.sleep_us(us) if c is None else c.sleep_us(int(us))


if os.getenv("SIM_SCENARIO") or os.getenv("SIM_STATE_DIR") or os.getenv("SIM_SPEED"):
    import simenv  # noqa: F401  (a simulated run: the clock is simulated from the start)
