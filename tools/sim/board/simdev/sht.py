"""Sensirion SHT3x and SHT4x models: command-driven, CRC-protected words, NACK while measuring.

SHT3x (datasheet sections 4.3-4.13): 16-bit commands; single shot without clock stretching
NACKs the read header until the measurement is done. SHT4x (section 4.5): 8-bit commands; its
datasheet gives no duration for the serial number command (0x89), so the model takes the 10 ms
Sensirion's own drivers allow, NACKing a read before that.
Raw words invert T = -45 + 175 * S / 65535 and RH = 100 * S / 65535 (SHT3x) or
RH = -6 + 125 * S / 65535 (SHT4x).

Faults: absent, nack, bus_stuck, crc, stuck (never done: reads NACK), frozen.
"""

from simdev.base import I2CDevice, Nack, clamp, crc8_sensirion


def _word(w, corrupt=False):
    b = bytes((w >> 8, w & 0xFF))
    c = crc8_sensirion(b)
    return b + bytes((c ^ 0x01 if corrupt else c,))


class _SHT(I2CDevice):
    def __init__(self, address):
        super().__init__(address)
        self.values = {"temperature": 21.0, "humidity": 45.0}
        self.done_us = None
        self.out = None  # bytes waiting to be read
        self.last_raw = None
        self.measurements = 0

    def _measure(self, ms):
        self.done_us = self.now_us() + int(ms * 1000)
        self.out = None

    def read(self, n):
        if self.done_us is not None:
            if self.now_us() < self.done_us or self.active_fault() == "stuck":
                raise Nack()  # still measuring: the read header is not acknowledged
            self.done_us = None
            st = clamp(round((self.value("temperature") + 45) * 65535 / 175), 0, 65535)
            srh = self.raw_rh(self.value("humidity"))
            if self.active_fault() == "frozen" and self.last_raw is not None:
                st, srh = self.last_raw
            self.last_raw = (st, srh)
            self.measurements += 1
            self.out = (st, srh)
        if self.out is None:
            raise Nack()  # nothing to read
        crc = self.active_fault() == "crc"
        if isinstance(self.out, tuple):
            data = _word(self.out[0], crc) + _word(self.out[1], crc)
            self.out = None
        else:
            data, self.out = self.out, None
        return data


class SHT3xModel(_SHT):
    NAME = "SHT3x"
    _SINGLE = {0x2400: 15.5, 0x240B: 6.5, 0x2416: 4.5, 0x2C06: 15.5, 0x2C0D: 6.5, 0x2C10: 4.5}

    def __init__(self, address=0x44):
        super().__init__(address)
        self.status = 0x8010  # alert pending + system reset detected (after power-on)

    def raw_rh(self, rh):
        return clamp(round(rh * 65535 / 100), 0, 65535)

    def write(self, data):
        if len(data) != 2:
            raise Nack()
        cmd = (data[0] << 8) | data[1]
        if cmd in self._SINGLE:
            self._measure(self._SINGLE[cmd])
        elif cmd == 0x30A2:  # soft reset
            self.done_us = None
            self.out = None
        elif cmd == 0xF32D:  # read status
            self.out = _word(self.status, self.active_fault() == "crc")
        elif cmd == 0x3041:  # clear status
            self.status &= ~0x8010 & 0xFFFF
        else:
            raise Nack()  # invalid command: NACKed (section 4.10)


class SHT4xModel(_SHT):
    NAME = "SHT4x"
    _MEASURE = {0xFD: 8.3, 0xF6: 4.5, 0xE0: 1.6}

    SERIAL_MS = 10

    def __init__(self, address=0x44, serial=0x0E5B7C21):
        super().__init__(address)
        self.serial = serial
        self.serial_us = None  # when the serial number answer is ready

    def raw_rh(self, rh):
        return clamp(round((rh + 6) * 65535 / 125), 0, 65535)

    def write(self, data):
        if len(data) != 1:
            raise Nack()
        cmd = data[0]
        self.serial_us = None  # a new command drops a serial number not yet read
        if cmd in self._MEASURE:
            self._measure(self._MEASURE[cmd])
        elif cmd == 0x94:
            self.done_us = None
            self.out = None
        elif cmd == 0x89:
            crc = self.active_fault() == "crc"
            self.out = _word(self.serial >> 16, crc) + _word(self.serial & 0xFFFF, crc)
            self.serial_us = self.now_us() + self.SERIAL_MS * 1000
        else:
            raise Nack()

    def read(self, n):
        if self.serial_us is not None:
            if self.now_us() < self.serial_us:
                raise Nack()  # still fetching the serial number
            self.serial_us = None
        return super().read(n)
