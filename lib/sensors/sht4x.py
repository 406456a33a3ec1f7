"""Sensirion SHT4x (SHT40/41/45) temperature and humidity on I2C.

One byte commands (datasheet section 4.5, table 7); the answer is two CRC-protected words
(section 4.4). The chip NACKs a read while it is still measuring, so a too-early read()
surfaces as OSError(ENODEV). Its serial number (command 0x89) identifies it at construction. A
temperature outside the specified -40..125 degC (section 2.2) raises sensors.NoReadingError.

    from sensors.sht4x import SHT4x
    s = SHT4x(i2c, address=0x44)
    s.read()                               # {"temperature": 21.53, "humidity": 45.2}
"""

import time
from micropython import const

from sensors import check_range
from sensors._i2ccmd import I2CCommandSensor
from sensors.crc import check_words

_CMD_SERIAL = const(0x89)
_CMD_SOFT_RESET = const(0x94)
# The datasheet gives no duration for the serial number command; Sensirion's own drivers wait
# 10 ms before reading it, and a read before the chip is ready is NACKed.
SERIAL_MS = const(10)

# precision -> (command, max duration in ms), table 4 and 7
_MODES = {
    "high": (0xFD, 9),  # 8.3 ms max
    "medium": (0xF6, 5),  # 4.5 ms max
    "low": (0xE0, 2),  # 1.6 ms max
}


class SHT4x(I2CCommandSensor):
    QUANTITIES = ("temperature", "humidity")
    NAME = "SHT4x"

    def __init__(self, i2c, address=0x44, precision="high"):
        if precision not in _MODES:
            raise ValueError("SHT4x: precision must be high, medium or low, got %r" % (precision,))
        cmd, ms = _MODES[precision]
        super().__init__(i2c, address, 1, 6, cmd, ms)  # 8-bit commands, T crc RH crc
        try:
            self._command(_CMD_SOFT_RESET)
            time.sleep_ms(1)  # soft reset time 1 ms max, table 5
            self._command(_CMD_SERIAL)
            time.sleep_ms(SERIAL_MS)
            i2c.readfrom_into(address, self._buf)
        except OSError:
            raise OSError("no %s" % self._what)
        check_words(self._buf, 2, self._what)
        self.serial = (
            (self._buf[0] << 24) | (self._buf[1] << 16) | (self._buf[3] << 8) | self._buf[4]
        )

    def _decode(self, b):
        # read() -> {"temperature": degC, "humidity": %RH}
        check_words(b, 2, self._what)
        r = decode(b)
        check_range(self._what, r["temperature"], -40, 125, "degC")  # section 2.2
        return r


def decode(b):
    """Temperature and humidity from T, crc, RH, crc (section 4.6)."""
    st = (b[0] << 8) | b[1]
    srh = (b[3] << 8) | b[4]
    # RH = -6 + 125 * Srh / (2^16 - 1), cropped to 0..100 as section 4.6 recommends
    rh = -6 + 125 * srh / 65535
    if rh < 0:
        rh = 0.0
    elif rh > 100:
        rh = 100.0
    return {"temperature": round(-45 + 175 * st / 65535, 2), "humidity": round(rh, 2)}
