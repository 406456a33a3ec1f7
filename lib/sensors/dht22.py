"""DHT22 / AM2302 temperature and humidity, through the firmware's dht module.

The firmware's dht.DHT22(pin).measure() does the single-wire timing; this wrapper turns its
errors into ours (no answer -> OSError(ETIMEDOUT) passes through; checksum -> CRCError),
decodes the 5-byte frame itself (AM2302 datasheet section 7: 16-bit RH * 10, 16-bit T * 10
with the sign in bit 15) and honours the 2 s minimum interval between measurements
(datasheet section 8) by returning the previous reading when asked sooner. That reading is kept
only while the last measurement succeeded, and only for 0..2 s by ticks_diff: a tick remembered
for days wraps (ticks_diff is meaningful below 2^29 ms), and a stale reading must never come
back as new.

    from sensors.dht22 import DHT22
    s = DHT22(machine.Pin(15))
    s.read()                               # {"temperature": 21.5, "humidity": 45.2}
"""

import time
from micropython import const

from sensors import NoReadingError
from sensors.crc import CRCError

MIN_INTERVAL_MS = const(2000)


def decode(b):
    """(temperature degC, humidity %RH) from the 5-byte frame; raises CRCError on a bad sum."""
    if (b[0] + b[1] + b[2] + b[3]) & 0xFF != b[4]:
        raise CRCError("DHT22: checksum mismatch")
    h = ((b[0] << 8) | b[1]) / 10
    t = (((b[2] & 0x7F) << 8) | b[3]) / 10
    if b[2] & 0x80:
        t = -t
    return t, h


class DHT22:
    QUANTITIES = ("temperature", "humidity")
    NAME = "DHT22"
    conversion_ms = 0

    def __init__(self, pin, sensor=None):
        if sensor is None:
            import dht

            sensor = dht.DHT22(pin)
        self._s = sensor
        self._last = None
        self._at = 0

    def start(self):
        """Nothing to start: the measurement is the ~5 ms transfer itself."""

    def read(self):
        """{"temperature": degC, "humidity": %RH}; the previous reading if < 2 s since it."""
        now = time.ticks_ms()
        if self._last is not None and 0 <= time.ticks_diff(now, self._at) < MIN_INTERVAL_MS:
            return self._last
        self._last = None  # from here on, only a new measurement is a reading
        s = self._s
        try:
            s.measure()
        except OSError:
            raise
        except Exception as e:  # the firmware raises a plain Exception("checksum error")
            if "checksum" in str(e):
                raise CRCError("DHT22: checksum mismatch")
            raise
        buf = getattr(s, "buf", None)
        if buf is not None:
            t, h = decode(buf)
        else:
            t, h = s.temperature(), s.humidity()
        if not (0 <= h <= 100 and -40 <= t <= 80):  # outside the sensor's range (section 5)
            raise NoReadingError("DHT22: implausible frame (%s degC, %s %%RH)" % (t, h))
        self._last = {"temperature": t, "humidity": h}
        self._at = now
        return self._last
