"""BME280 / BMP280 model: calibration registers, forced/normal mode, raw values made by
inverting the datasheet's floating-point compensation (BME280 section 8.1, BMP280 section 3.12)
for the target temperature, pressure and humidity.

After power-on or a soft reset the chip copies its NVM into the image registers (status bit
im_update, section 5.4.4) during its 2 ms start-up time (table 1); until then the calibration
registers read 0.

Faults: absent, nack, bus_stuck, ff, stuck (the measuring and im_update bits never clear),
frozen.
"""

from simdev.base import RegisterDevice, clamp

# Bosch's worked example (BMP280 datasheet section 3.12) and a plausible humidity set.
CAL_T = (27504, 26435, -1000)
CAL_P = (36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000)
CAL_H = (75, 362, 0, 313, 50, 30)

_STARTUP_US = 2000
_OS = (0, 1, 2, 4, 8, 16, 16, 16)


def comp_t(adc, t):
    v1 = (adc / 16384.0 - t[0] / 1024.0) * t[1]
    d = adc / 131072.0 - t[0] / 8192.0
    v2 = d * d * t[2]
    tf = v1 + v2
    return tf / 5120.0, tf


def comp_p(adc, tf, p):
    v1 = tf / 2.0 - 64000.0
    v2 = v1 * v1 * p[5] / 32768.0
    v2 = v2 + v1 * p[4] * 2.0
    v2 = v2 / 4.0 + p[3] * 65536.0
    v1 = (p[2] * v1 * v1 / 524288.0 + p[1] * v1) / 524288.0
    v1 = (1.0 + v1 / 32768.0) * p[0]
    if v1 == 0:
        return 0
    q = 1048576.0 - adc
    q = (q - v2 / 4096.0) * 6250.0 / v1
    v1 = p[8] * q * q / 2147483648.0
    v2 = q * p[7] / 32768.0
    return q + (v1 + v2 + p[6]) / 16.0


def comp_h(adc, tf, h):
    v = tf - 76800.0
    v = (adc - (h[3] * 64.0 + h[4] / 16384.0 * v)) * (
        h[1] / 65536.0 * (1.0 + h[5] / 67108864.0 * v * (1.0 + h[2] / 67108864.0 * v))
    )
    v = v * (1.0 - h[0] * v / 524288.0)
    return clamp(v, 0.0, 100.0)


def _invert(f, target, lo, hi, increasing=True):
    # Binary search over the raw ADC range for the code whose compensated value is nearest.
    while hi - lo > 1:
        mid = (lo + hi) // 2
        v = f(mid)
        if (v < target) == increasing:
            lo = mid
        else:
            hi = mid
    return lo if abs(f(lo) - target) <= abs(f(hi) - target) else hi


class BME280Model(RegisterDevice):
    def __init__(self, address=0x76, chip="bme280", cal_t=CAL_T, cal_p=CAL_P, cal_h=CAL_H):
        super().__init__(address)
        self.humidity = chip == "bme280"
        self.chip_id = 0x60 if self.humidity else 0x58
        self.cal_t, self.cal_p, self.cal_h = cal_t, cal_p, cal_h
        self.values = {"temperature": 21.0, "pressure": 1013.25, "humidity": 45.0}
        self.done_us = None
        self.pending = None
        self.measurements = 0
        self.nvm_us = None
        self._power_on()

    def _power_on(self):
        r = self.regs
        for i in range(256):
            r[i] = 0
        r[0xD0] = self.chip_id
        # data register reset values (sections 5.4.7..5.4.9): "no measurement"
        r[0xF7:0xFF] = b"\x80\x00\x00\x80\x00\x00\x80\x00"
        self.nvm_us = self.now_us() + _STARTUP_US  # NVM copy under way until then
        self.done_us = None

    def _copy_nvm(self):
        r = self.regs
        words = list(self.cal_t) + list(self.cal_p)
        for i, w in enumerate(words):
            w &= 0xFFFF
            r[0x88 + 2 * i] = w & 0xFF
            r[0x89 + 2 * i] = w >> 8
        if self.humidity:
            h = self.cal_h
            r[0xA1] = h[0]
            r[0xE1] = h[1] & 0xFF
            r[0xE2] = (h[1] >> 8) & 0xFF
            r[0xE3] = h[2]
            h4, h5 = h[3] & 0xFFF, h[4] & 0xFFF
            r[0xE4] = h4 >> 4
            r[0xE5] = (h4 & 0x0F) | ((h5 & 0x0F) << 4)
            r[0xE6] = h5 >> 4
            r[0xE7] = h[5] & 0xFF

    def _nvm_busy(self):
        if self.nvm_us is None:
            return False
        if self.now_us() < self.nvm_us or self.active_fault() == "stuck":
            return True
        self.nvm_us = None
        self._copy_nvm()
        return False

    def power_cycle(self):
        """Power lost and back (a brown-out): every register back to its reset value."""
        self._power_on()

    def raw_for(self, t, p_hpa, h):
        adc_t = _invert(lambda a: comp_t(a, self.cal_t)[0], t, 0, 0xFFFFF)
        tf = comp_t(adc_t, self.cal_t)[1]
        adc_p = _invert(lambda a: comp_p(a, tf, self.cal_p), p_hpa * 100, 0, 0xFFFFF, False)
        adc_h = _invert(lambda a: comp_h(a, tf, self.cal_h), h, 0, 0xFFFF)
        return adc_t, adc_p, adc_h

    def write_reg(self, reg, value):
        if reg == 0xE0:
            if value == 0xB6:
                self._power_on()
            return
        if reg in (0xF2, 0xF5) or (reg == 0xF2 and self.humidity):
            self.regs[reg] = value & (0x07 if reg == 0xF2 else 0xFD)
            return
        if reg == 0xF4:
            self.regs[reg] = value
            if value & 0x03:  # forced (01/10) or normal (11): measure
                self._start()
            return
        # other registers are read-only

    def _start(self):
        ctrl = self.regs[0xF4]
        ot, op = _OS[ctrl >> 5], _OS[(ctrl >> 2) & 7]
        oh = _OS[self.regs[0xF2] & 7] if self.humidity else 0
        us = 1250 + 2300 * ot + (2300 * op + 575 if op else 0) + (2300 * oh + 575 if oh else 0)
        self.done_us = self.now_us() + us
        adc = self.raw_for(
            self.value("temperature"), self.value("pressure"), self.value("humidity")
        )
        self.pending = (
            adc[0] if ot else 0x80000,
            adc[1] if op else 0x80000,
            adc[2] if oh else 0x8000,
        )

    def _update(self):
        if self.done_us is None or self.now_us() < self.done_us or self.active_fault() == "stuck":
            return
        self.done_us = None
        self.measurements += 1
        if (self.regs[0xF4] & 3) != 3:
            self.regs[0xF4] &= 0xFC  # forced mode returns to sleep
        if self.active_fault() == "frozen" and self.measurements > 1:
            return
        t, p, h = self.pending
        r = self.regs
        r[0xF7], r[0xF8], r[0xF9] = p >> 12, (p >> 4) & 0xFF, (p & 0x0F) << 4
        r[0xFA], r[0xFB], r[0xFC] = t >> 12, (t >> 4) & 0xFF, (t & 0x0F) << 4
        if self.humidity:
            r[0xFD], r[0xFE] = h >> 8, h & 0xFF

    def before_read(self):
        self._nvm_busy()
        self._update()

    def read_reg(self, reg):
        if reg == 0xF3:
            self._update()
            return (0x08 if self.done_us is not None else 0) | (1 if self._nvm_busy() else 0)
        if not self.humidity and reg >= 0xFD:
            return 0x00
        return self.regs[reg]
