"""ASAIR AHT20 temperature and humidity on I2C (address 0x38).

Datasheet (AHT20 v1.1) section 5.4: wait 40 ms after power-on, check the calibration bit of the
status byte (initialising with 0xBE 0x08 0x00 and checking again if it is clear), trigger with
0xAC 0x33 0x00, wait 80 ms, read status + 20-bit humidity + 20-bit temperature + CRC-8
(poly 0x31, init 0xFF). Busy (bit 7) after a bounded wait, a frame without the calibration bit
(the chip was reset: it is initialised again) and a temperature outside -40..85 degC raise
sensors.NoReadingError; a CRC mismatch raises sensors.crc.CRCError.

    from sensors.aht20 import AHT20
    s = AHT20(i2c)
    s.read()                               # {"temperature": 21.53, "humidity": 45.2}
"""

import time
from micropython import const

from sensors import NoReadingError, check_range
from sensors.crc import CRCError, crc8_sensirion

_ADDRESS = const(0x38)
_STATUS_BUSY = const(0x80)
_STATUS_CAL = const(0x08)
_POWER_ON_MS = const(40)  # section 5.4 step 1
_INIT_MS = const(10)  # section 5.4 step 1, after 0xBE 0x08 0x00
_MEASURE_MS = const(80)  # section 5.4 step 3: wait 80 ms for the measurement
_INIT = b"\xbe\x08\x00"
_TRIGGER = b"\xac\x33\x00"  # section 5.4 step 2


class AHT20:
    QUANTITIES = ("temperature", "humidity")
    NAME = "AHT20"
    conversion_ms = _MEASURE_MS

    def __init__(self, i2c, address=_ADDRESS):
        self._i2c = i2c
        self._addr = address
        self._what = "AHT20 at 0x%02x" % address
        self._buf = bytearray(7)
        self._status = memoryview(self._buf)[:1]
        self._started = False
        # The chip needs 40 ms after power-on before its first command. We cannot know when its
        # power came (with the board's, or just now from a switched supply), and this runs once.
        time.sleep_ms(_POWER_ON_MS)
        try:
            st = self._read_status()
        except OSError:
            raise OSError("no %s" % self._what)
        if not st & _STATUS_CAL:
            i2c.writeto(address, _INIT)
            time.sleep_ms(_INIT_MS)
            st = self._read_status()
            if not st & _STATUS_CAL:
                raise OSError("%s: not calibrated after init (status 0x%02x)" % (self._what, st))

    def _read_status(self):
        self._i2c.writeto(self._addr, b"\x71")
        self._i2c.readfrom_into(self._addr, self._status)
        return self._buf[0]

    def start(self):
        """Trigger one measurement; read() it after conversion_ms."""
        self._i2c.writeto(self._addr, _TRIGGER)
        self._started = True

    def read(self):
        """{"temperature": degC, "humidity": %RH}; blocks ~80 ms unless start() came first."""
        if not self._started:
            self.start()
            time.sleep_ms(_MEASURE_MS)
        self._started = False
        b = self._buf
        for _ in range(3):  # bounded: 3 more polls 10 ms apart if still busy
            self._i2c.readfrom_into(self._addr, b)
            if not b[0] & _STATUS_BUSY:
                break
            time.sleep_ms(10)
        else:
            raise NoReadingError("%s: still busy" % self._what)
        if crc8_sensirion(b, 0, 6) != b[6]:
            raise CRCError("%s: CRC mismatch" % self._what)
        if not b[0] & _STATUS_CAL:
            # Reset since we checked (a brown-out): this sample is uncalibrated. Initialise
            # again (it takes 10 ms, long before the next measurement).
            self._i2c.writeto(self._addr, _INIT)
            raise NoReadingError("%s: not calibrated (reset?), initialised again" % self._what)
        r = decode(b)
        check_range(self._what, r["temperature"], -40, 85, "degC")  # datasheet range
        return r


def decode(b):
    """Temperature and humidity from status, 5 data bytes (section 6: RH = Srh / 2^20 * 100 %,
    T = St / 2^20 * 200 - 50 degC)."""
    srh = (b[1] << 12) | (b[2] << 4) | (b[3] >> 4)
    st = ((b[3] & 0x0F) << 16) | (b[4] << 8) | b[5]
    return {
        "temperature": round(st * 200 / 1048576 - 50, 2),
        "humidity": round(srh * 100 / 1048576, 2),
    }
