"""ROHM BH1750FVI ambient light sensor on I2C (0x23 with ADDR low, 0x5C with ADDR high).

One-time measurement modes (datasheet page 5, instruction set): the chip measures once and
powers down, so nothing is drawn between readings. lx = count / 1.2 * (69 / MTreg), halved again
in H-resolution mode 2 (page 11). The chip has no id register: an ACK to "power on" is taken as
presence. A full-scale count (0xFFFF) raises sensors.NoReadingError: the light is at or beyond
what this mode and MTreg can measure (use a lower mtreg in direct sun), or the chip no longer
drives the bus and the pull-up reads all ones; either way the number would be wrong.

    from sensors.bh1750 import BH1750
    s = BH1750(i2c, address=0x23)
    s.read()                               # {"illuminance": 28066.7}
"""

from micropython import const

from sensors import NoReadingError
from sensors._i2ccmd import I2CCommandSensor

_CMD_POWER_ON = const(0x01)
_CMD_RESET = const(0x07)
_MTREG_DEFAULT = const(69)

# mode -> (one-time opcode, max measurement ms at MTreg 69 (page 2 electrical characteristics))
_MODES = {
    "high": (0x20, 180),  # H-resolution, 1 lx, 120 ms typ / 180 ms max
    "high2": (0x21, 180),  # H-resolution mode 2, 0.5 lx
    "low": (0x23, 24),  # L-resolution, 4 lx, 16 ms typ / 24 ms max
}


class BH1750(I2CCommandSensor):
    QUANTITIES = ("illuminance",)
    NAME = "BH1750"

    def __init__(self, i2c, address=0x23, mode="high", mtreg=_MTREG_DEFAULT):
        if mode not in _MODES:
            raise ValueError("BH1750: mode must be high, high2 or low, got %r" % (mode,))
        if not 31 <= mtreg <= 254:
            raise ValueError("BH1750: mtreg must be 31..254, got %r" % (mtreg,))
        opcode, ms = _MODES[mode]
        # 8-bit opcodes, 16-bit count; time scales with MTreg (page 11)
        super().__init__(i2c, address, 1, 2, opcode, (ms * mtreg + 68) // 69)
        self._mtreg = mtreg
        self._half = mode == "high2"
        try:
            self._command(_CMD_POWER_ON)
        except OSError:
            raise OSError("no %s" % self._what)
        self._command(_CMD_RESET)  # clears the data register (only valid while powered on)
        if mtreg != _MTREG_DEFAULT:
            # Change measurement time: 01000_MT[7:5] then 011_MT[4:0] (page 11)
            self._command(0x40 | (mtreg >> 5))
            self._command(0x60 | (mtreg & 0x1F))

    def _decode(self, b):
        # read() -> {"illuminance": lx}; start() is one one-time measurement opcode
        count = (b[0] << 8) | b[1]
        if count == 0xFFFF:
            raise NoReadingError("%s: count at full scale (saturated, or reads 0xFF)" % self._what)
        return {"illuminance": lux(count, self._mtreg, self._half)}


def lux(count, mtreg=_MTREG_DEFAULT, half=False):
    """Illuminance in lx from the 16-bit count (page 7: count / 1.2, scaled by 69 / MTreg)."""
    v = count * 69 / (1.2 * mtreg)
    if half:
        v /= 2
    return round(v, 1)
