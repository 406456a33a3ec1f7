"""DHT22/AM2302 model: the 40-bit frame of datasheet section 7 (RH * 10, T * 10 with sign bit
15, checksum = low byte of the sum of the first four bytes).

Faults: absent (no response: the firmware raises OSError(ETIMEDOUT)), crc (checksum wrong),
stuck (no response), frozen (the previous frame again).
"""

from simdev.base import Model


class DHT22Model(Model):
    NAME = "DHT22"

    def __init__(self):
        super().__init__()
        self.values = {"temperature": 21.0, "humidity": 45.0}
        self.last = None

    def frame(self):
        """5 bytes, or None when the sensor does not answer."""
        f = self.active_fault()
        if f in ("absent", "stuck"):
            return None
        if f == "frozen" and self.last is not None:
            return self.last
        h = round(self.value("humidity") * 10)
        t = round(self.value("temperature") * 10)
        tw = (-t | 0x8000) if t < 0 else t
        b = bytearray((h >> 8, h & 0xFF, tw >> 8, tw & 0xFF, 0))
        b[4] = (b[0] + b[1] + b[2] + b[3]) & 0xFF
        self.last = bytes(b)
        if f == "crc":
            b[4] ^= 0x01
        return b
