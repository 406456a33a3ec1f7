"""AHT20 model (datasheet v1.1 sections 5.3-6): status byte with busy (bit 7) and calibrated
(bit 3) flags, 0xAC 0x33 0x00 trigger, 80 ms measurement, 20-bit words and a CRC-8.

Faults: absent, nack, bus_stuck, crc, stuck (busy forever), frozen.
"""

from simdev.base import I2CDevice, Nack, clamp, crc8_sensirion

_MEASURE_US = 80000


class AHT20Model(I2CDevice):
    NAME = "AHT20"

    def __init__(self, address=0x38, calibrated=False):
        super().__init__(address)
        self.values = {"temperature": 21.0, "humidity": 45.0}
        self.calibrated = calibrated
        self.done_us = None
        self.raw = (0, 0)
        self.measurements = 0

    def write(self, data):
        if data[:1] == b"\x71":
            return
        if data == b"\xbe\x08\x00":
            # fault "nocal": a chip whose calibration never takes (the bit stays clear)
            self.calibrated = self.active_fault() != "nocal"
            return
        if data == b"\xac\x33\x00":
            self.done_us = self.now_us() + _MEASURE_US
            return
        if data == b"\xba":  # soft reset
            self.done_us = None
            return
        raise Nack()

    def _busy(self):
        if self.done_us is None:
            return False
        if self.now_us() < self.done_us or self.active_fault() == "stuck":
            return True
        self.done_us = None
        if not (self.active_fault() == "frozen" and self.measurements):
            srh = clamp(round(self.value("humidity") / 100 * 1048576), 0, 0xFFFFF)
            st = clamp(round((self.value("temperature") + 50) / 200 * 1048576), 0, 0xFFFFF)
            self.raw = (srh, st)
        self.measurements += 1
        return False

    def read(self, n):
        busy = self._busy()
        status = (0x80 if busy else 0) | (0x18 if self.calibrated else 0x10)
        srh, st = self.raw
        b = bytearray(7)
        b[0] = status
        b[1] = srh >> 12
        b[2] = (srh >> 4) & 0xFF
        b[3] = ((srh & 0x0F) << 4) | (st >> 16)
        b[4] = (st >> 8) & 0xFF
        b[5] = st & 0xFF
        b[6] = crc8_sensirion(b[:6]) ^ (0x01 if self.active_fault() == "crc" else 0)
        return b[:n]
