"""Base classes for device models: target values, faults, I2C transfer handling.

Fault kinds (set ``model.fault = "crc"`` in a test, or windows in a scenario):

=========== ===========================================================================
absent      the chip does not answer at all (no ACK, no presence pulse, no DHT response)
nack        ACKs its address, then NACKs the first data byte written or read
bus_stuck   holds SDA low: every transfer on that I2C bus times out (ETIMEDOUT)
crc         corrupts the CRC/checksum of the data it sends (SHT, AHT20, DS18B20, DHT22)
stuck       never finishes a measurement (busy bit / NACK while measuring / no conversion)
frozen      keeps answering with the last measured raw value (undetectable by a driver)
reset85     DS18B20 only: the scratchpad holds the 85 degC power-on value
bus_low     DS18B20 only: data line shorted low, every bit reads 0
ff          I2C: ACKs, but every byte read is 0xFF (the chip no longer drives SDA, which
            the pull-up holds high: a browned-out or latched-up chip)
=========== ===========================================================================
"""

import simenv
from simenv import Nack


class Model:
    NAME = "device"

    def __init__(self):
        self.values = {}  # quantity -> callable(t) or number
        self.fault = None
        self.fault_windows = []

    def set(self, **kw):
        """Set target physical values: model.set(temperature=21.5, humidity=40)."""
        for k, v in kw.items():
            self.values[k] = v

    def value(self, q, default=0.0):
        v = self.values.get(q, default)
        if callable(v):
            v = v(simenv.scenario_t())
        return v

    def active_fault(self):
        if self.fault:
            return self.fault
        if self.fault_windows:
            t = simenv.scenario_t()
            for w in self.fault_windows:
                if w.get("from_t", 0) <= t < w.get("to_t", 1e18):
                    return w["kind"]
        return None

    def now_us(self):
        return simenv.clock.true_us()


class I2CDevice(Model):
    """A chip on I2C: write(data) and read(n) are whole transfers after its address byte."""

    def __init__(self, address):
        super().__init__()
        self.address = address

    def acks(self):
        return self.active_fault() != "absent"

    def transfer_write(self, data):
        if self.active_fault() == "nack":
            raise Nack()
        self.write(bytes(data))

    def transfer_read(self, n):
        f = self.active_fault()
        if f == "nack":
            raise Nack()
        if f == "ff":
            return b"\xff" * n
        out = self.read(n)
        if len(out) < n:
            out = bytes(out) + b"\xff" * (n - len(out))  # released SDA reads 1
        return out[:n]

    def write(self, data):
        raise Nack()

    def read(self, n):
        raise Nack()


class RegisterDevice(I2CDevice):
    """Register-addressed chip: first byte written sets the pointer, which auto-increments."""

    def __init__(self, address):
        super().__init__(address)
        self.regs = bytearray(256)
        self.ptr = 0

    def write(self, data):
        if not data:
            return
        self.ptr = data[0]
        for b in data[1:]:
            self.write_reg(self.ptr, b)
            self.ptr = (self.ptr + 1) & 0xFF

    def read(self, n):
        self.before_read()
        out = bytearray(n)
        for i in range(n):
            out[i] = self.read_reg(self.ptr)
            self.ptr = (self.ptr + 1) & 0xFF
        return out

    def write_reg(self, reg, value):
        self.regs[reg] = value

    def read_reg(self, reg):
        return self.regs[reg]

    def before_read(self):
        pass


def crc8_sensirion(data):
    # Sim-side copy on purpose: the model must not trust the driver's code.
    crc = 0xFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def crc8_maxim(data):
    crc = 0
    for b in data:
        for _ in range(8):
            mix = (crc ^ b) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
            b >>= 1
    return crc


def clamp(v, lo, hi):
    return lo if v < lo else hi if v > hi else v
