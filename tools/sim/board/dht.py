"""dht as the ESP32 firmware has it: DHT11/DHT22 with measure(), humidity(), temperature() and
the raw 5-byte .buf; no answer raises OSError(ETIMEDOUT), a bad checksum a plain
Exception("checksum error"). The frame comes from the model on that pin (simenv.dht_devices)."""

import errno

import simenv


def dht_readinto(pin, buf):
    simenv.clock.advance_us(5000)  # start signal and 40 bits take about 5 ms
    m = simenv.dht_devices.get(pin._id)
    frame = m.frame() if m is not None else None
    if frame is None:
        raise OSError(errno.ETIMEDOUT)
    for i in range(5):
        buf[i] = frame[i]


class DHTBase:
    def __init__(self, pin):
        self.pin = pin
        self.buf = bytearray(5)

    def measure(self):
        buf = self.buf
        dht_readinto(self.pin, buf)
        if (buf[0] + buf[1] + buf[2] + buf[3]) & 0xFF != buf[4]:
            raise Exception("checksum error")


class DHT11(DHTBase):
    def humidity(self):
        return self.buf[0]

    def temperature(self):
        return self.buf[2]


class DHT22(DHTBase):
    def humidity(self):
        return (self.buf[0] << 8 | self.buf[1]) * 0.1

    def temperature(self):
        t = ((self.buf[2] & 0x7F) << 8 | self.buf[3]) * 0.1
        return -t if self.buf[2] & 0x80 else t
