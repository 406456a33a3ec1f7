"""AHT20 model (datasheet v1.1 sections 5.3-6): status byte with busy (bit 7) and calibrated
(bit 3) flags, 0xAC 0x33 0x00 trigger, 80 ms measurement, 20-bit words and a CRC-8.

For 40 ms after power-on (section 5.4 step 1) the chip does not answer its address yet.
power_cycle() is a power loss and return (the calibrated bit as given).

Faults: absent, nack, bus_stuck, ff, crc, stuck (busy forever), frozen, nocal (the
initialisation command leaves the calibrated bit clear).
"""

from simdev.base import I2CDevice, Nack, clamp, crc8_sensirion

_MEASURE_US = 80000
_POWER_ON_US = 40000


class AHT20Model(I2CDevice):
    NAME = "AHT20"

    def __init__(self, address=0x38, calibrated=False):
        super().__init__(address)
        self.values = {"temperature": 21.0, "humidity": 45.0}
        self.raw = (0, 0)
        self.measurements = 0
        self.power_cycle(calibrated)

    def power_cycle(self, calibrated=False):
        self.calibrated = calibrated
        self.done_us = None
        self.ready_us = self.now_us() + _POWER_ON_US

    def acks(self):
        return self.now_us() >= self.ready_us and super().acks()

    def write(self, data):
        if data[:1] == b"\x71":
            return
        if data == b"\xbe\x08\x00":
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
