"""ASAIR AHT20 temperature and humidity on I2C (address 0x38).

Datasheet (AHT20 v1.1) section 5.4: check the calibration bit of the status byte, trigger with
0xAC 0x33 0x00, wait 80 ms, read status + 20-bit humidity + 20-bit temperature + CRC-8
(poly 0x31, init 0xFF). Busy (bit 7) after a bounded wait raises sensors.NoReadingError; a CRC
mismatch raises sensors.crc.CRCError.

    from sensors.aht20 import AHT20
    s = AHT20(i2c)
    s.read()                               # {"temperature": 21.53, "humidity": 45.2}
"""

import time
from micropython import const

from sensors import NoReadingError
from sensors.crc import CRCError, crc8_sensirion

_ADDRESS = const(0x38)
_CMD_STATUS = const(0x71)
_STATUS_BUSY = const(0x80)
_STATUS_CAL = const(0x08)
_MEASURE_MS = const(80)  # section 5.4 step 3: wait 80 ms for the measurement


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
        self._trigger = b"\xac\x33\x00"  # section 5.4 step 2 (a constant, never rebuilt)
        self._started = False
        up = time.ticks_ms()  # ms since boot (power-on), until ticks first wrap after 12 days
        if 0 <= up < 40:
            time.sleep_ms(40 - up)  # section 5.4: 40 ms after power-on before the first command
        if not self._status_byte() & _STATUS_CAL:
            # Not calibrated: initialise (0xBE 0x08 0x00) and give it 10 ms (section 5.4 step 1).
            i2c.writeto(address, b"\xbe\x08\x00")
            time.sleep_ms(10)
            if not self._status_byte() & _STATUS_CAL:
                raise OSError("%s: not calibrated after its init command" % self._what)

    def _status_byte(self):
        try:
            self._i2c.writeto(self._addr, b"\x71")
            self._i2c.readfrom_into(self._addr, self._status)
        except OSError:
            raise OSError("no %s" % self._what)
        return self._buf[0]

    def start(self):
        """Trigger one measurement; read() it after conversion_ms."""
        self._i2c.writeto(self._addr, self._trigger)
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
        return decode(b)


def decode(b):
    """Temperature and humidity from status, 5 data bytes (section 6: RH = Srh / 2^20 * 100 %,
    T = St / 2^20 * 200 - 50 degC)."""
    srh = (b[1] << 12) | (b[2] << 4) | (b[3] >> 4)
    st = ((b[3] & 0x0F) << 16) | (b[4] << 8) | b[5]
    return {
        "temperature": round(st * 200 / 1048576 - 50, 2),
        "humidity": round(srh * 100 / 1048576, 2),
    }
