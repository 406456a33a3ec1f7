"""DHT22 / AM2302 temperature and humidity, through the firmware's dht module.

The firmware's dht.DHT22(pin).measure() does the single-wire timing; this wrapper turns its
errors into ours (no answer -> OSError(ETIMEDOUT) passes through; checksum -> CRCError),
decodes the 5-byte frame itself (AM2302 datasheet section 7: 16-bit RH * 10, 16-bit T * 10
with the sign in bit 15) and honours the 2 s minimum interval between measurements
(datasheet section 8) by waiting out the rest of it when asked sooner: every reading returned
is a new measurement, never a remembered one.

    from sensors.dht22 import DHT22
    s = DHT22(machine.Pin(15))
    s.read()                               # {"temperature": 21.5, "humidity": 45.2}
"""

import time
from micropython import const

from sensors import check_range
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
        self._at = None  # ticks_ms of the last measurement attempt; None: none yet

    def start(self):
        """Nothing to start: the measurement is the ~5 ms transfer itself."""

    def read(self):
        """{"temperature": degC, "humidity": %RH}, measured now; if the previous measurement
        was less than 2 s ago, first waits out the rest of those 2 s."""
        if self._at is not None:
            # An age outside 0..2 s (negative once ticks_diff passes 2^29 ms) needs no wait;
            # the worst a wrapped age can cause is one needless wait of under 2 s.
            age = time.ticks_diff(time.ticks_ms(), self._at)
            if 0 <= age < MIN_INTERVAL_MS:
                time.sleep_ms(MIN_INTERVAL_MS - age)
        self._at = time.ticks_ms()
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
        check_range("DHT22", t, -40, 80, "degC")  # operating range, section 5
        check_range("DHT22", h, 0, 100, "%RH")
        return {"temperature": t, "humidity": h}
