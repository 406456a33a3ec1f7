"""Sensirion SHT3x (SHT30/31/35) temperature and humidity on I2C, single-shot mode.

Single shot without clock stretching (datasheet section 4.3, table 9): the chip NACKs its read
header while it is measuring, so a too-early read() surfaces as OSError(ENODEV). Each 16-bit word
comes with a CRC-8 (section 4.12) that is checked; a mismatch raises sensors.crc.CRCError. A
temperature outside the specified -40..125 degC (section 2.2) raises sensors.NoReadingError.

    from sensors.sht3x import SHT3x
    s = SHT3x(i2c, address=0x44)           # 0x45 with ADDR high
    s.read()                               # {"temperature": 21.53, "humidity": 45.2}
"""

import time
from micropython import const

from sensors import check_range
from sensors._i2ccmd import I2CCommandSensor
from sensors.crc import check_words

_CMD_SOFT_RESET = const(0x30A2)  # section 4.9
_CMD_READ_STATUS = const(0xF32D)  # section 4.11
_CMD_CLEAR_STATUS = const(0x3041)

# repeatability -> (single shot command, no clock stretching; max duration ms), table 9 and 4
_MODES = {
    "high": (0x2400, 16),  # 15.5 ms max
    "medium": (0x240B, 7),  # 6.5 ms max
    "low": (0x2416, 5),  # 4.5 ms max
}


class SHT3x(I2CCommandSensor):
    QUANTITIES = ("temperature", "humidity")
    NAME = "SHT3x"

    def __init__(self, i2c, address=0x44, repeatability="high"):
        if repeatability not in _MODES:
            raise ValueError(
                "SHT3x: repeatability must be high, medium or low, got %r" % (repeatability,)
            )
        cmd, ms = _MODES[repeatability]
        super().__init__(i2c, address, 2, 6, cmd, ms)  # 16-bit commands, T crc RH crc
        self._status = memoryview(self._buf)[:3]
        # The status register is the only identification the SHT3x offers: a chip that ACKs
        # and answers with a valid CRC is taken as an SHT3x.
        try:
            self._command(_CMD_SOFT_RESET)
        except OSError:
            raise OSError("no %s" % self._what)
        time.sleep_ms(2)  # soft reset time 1.5 ms max, table 4
        try:
            self._command(_CMD_READ_STATUS)
            i2c.readfrom_into(address, self._status)
        except OSError:
            raise OSError("no %s" % self._what)
        check_words(self._buf, 1, self._what)

    def _decode(self, b):
        # read() -> {"temperature": degC, "humidity": %RH}; start() is one single-shot command
        check_words(b, 2, self._what)
        r = decode(b)
        check_range(self._what, r["temperature"], -40, 125, "degC")  # section 2.2
        return r


def decode(b):
    """Temperature and humidity from the 6 bytes T, crc, RH, crc (section 4.13)."""
    st = (b[0] << 8) | b[1]
    srh = (b[3] << 8) | b[4]
    # T = -45 + 175 * St / (2^16 - 1); RH = 100 * Srh / (2^16 - 1)
    return {
        "temperature": round(-45 + 175 * st / 65535, 2),
        "humidity": round(100 * srh / 65535, 2),
    }
