"""BH1750FVI model (datasheet pages 5-11): opcodes for power, reset, one-time and continuous
modes, MTreg; the 16-bit count is lx * 1.2 * MTreg / 69 (doubled in H-resolution mode 2).

The chip has no status or CRC: "frozen" and "stuck" both mean the count stops changing, which
no driver can see. Faults: absent, nack, bus_stuck, frozen/stuck.
"""

from simdev.base import I2CDevice, Nack, clamp

_TIME_MS = {0x10: 120, 0x11: 120, 0x13: 16, 0x20: 120, 0x21: 120, 0x23: 16}


class BH1750Model(I2CDevice):
    NAME = "BH1750"

    def __init__(self, address=0x23):
        super().__init__(address)
        self.values = {"illuminance": 100.0}
        self.powered = False
        self.mode = None
        self.mtreg = 69
        self.count = 0
        self.done_us = None
        self.measurements = 0

    def write(self, data):
        if len(data) != 1:
            raise Nack()
        op = data[0]
        if op == 0x00:
            self.powered = False
        elif op == 0x01:
            self.powered = True
        elif op == 0x07:
            if self.powered:
                self.count = 0
        elif op & 0xF8 == 0x40:
            self.mtreg = (self.mtreg & 0x1F) | ((op & 0x07) << 5)
        elif op & 0xE0 == 0x60:
            self.mtreg = (self.mtreg & 0xE0) | (op & 0x1F)
        elif op in _TIME_MS:
            self.mode = op
            self.powered = True
            self.done_us = self.now_us() + _TIME_MS[op] * 1000 * self.mtreg // 69
        else:
            raise Nack()

    def _update(self):
        if self.done_us is None or self.now_us() < self.done_us:
            return
        if self.active_fault() in ("frozen", "stuck") and self.measurements:
            self.done_us = None
            return
        c = self.value("illuminance") * 1.2 * self.mtreg / 69
        if self.mode in (0x11, 0x21):
            c *= 2
        self.count = clamp(round(c), 0, 0xFFFF)
        self.measurements += 1
        if self.mode & 0x20:  # one-time modes power down after measuring
            self.done_us = None
            self.powered = False
        else:
            self.done_us += _TIME_MS[self.mode] * 1000 * self.mtreg // 69

    def read(self, n):
        self._update()
        return bytes((self.count >> 8, self.count & 0xFF))
