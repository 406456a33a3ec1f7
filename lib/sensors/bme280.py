"""Bosch BME280 (temperature, humidity, pressure) and BMP280 (temperature, pressure) on I2C.

Forced mode only (datasheet BME280 section 3.3.3, BMP280 3.6.2): each start() triggers one
measurement and the chip goes back to sleep, so a node that reads once a minute draws almost
nothing in between. Compensation is Bosch's integer code (BME280 section 4.2.3, BMP280 section
3.11.3): 32-bit for temperature and humidity, 64-bit for pressure, in our own words. A result
outside the operating range (-40..85 degC, 300..1100 hPa; section 1, table 1) is not a reading:
an all-0xFF frame, from a chip that stopped driving the bus, would otherwise be 189 degC.

    from sensors.bme280 import BME280
    s = BME280(i2c, address=0x76)          # OSError("no BME280 at 0x76") if absent/wrong chip
    s.read()    # {"temperature": 21.53, "humidity": 45.2, "pressure": 1013.2}
    s.start(); time.sleep_ms(s.conversion_ms); s.read()    # the non-blocking split
"""

import time
from micropython import const

from sensors import NoReadingError, check_range

# Registers (BME280 section 5.3 memory map; BMP280 section 4.2 is the same minus humidity).
_REG_CALIB_TP = const(0x88)  # 24 bytes: dig_T1..dig_T3, dig_P1..dig_P9 (little endian)
_REG_CALIB_H1 = const(0xA1)  # dig_H1, u8
_REG_CHIP_ID = const(0xD0)
_REG_RESET = const(0xE0)
_REG_CALIB_H2 = const(0xE1)  # 7 bytes: dig_H2..dig_H6 (section 4.2.2, table 16)
_REG_CTRL_HUM = const(0xF2)
_REG_STATUS = const(0xF3)
_REG_CTRL_MEAS = const(0xF4)
_REG_CONFIG = const(0xF5)
_REG_DATA = const(0xF7)  # press_msb .. hum_lsb

_RESET_WORD = const(0xB6)  # section 5.4.2
_STATUS_MEASURING = const(0x08)
_STATUS_IM_UPDATE = const(0x01)
_MODE_FORCED = const(0x01)

# Data register reset values mean "no measurement" (sections 5.4.7 to 5.4.9).
_SKIPPED_20 = const(0x80000)
_SKIPPED_16 = const(0x8000)

CHIP_ID_BME280 = const(0x60)
CHIP_IDS_BMP280 = (0x56, 0x57, 0x58)  # 0x56/0x57 samples, 0x58 mass production


# oversampling factor -> osrs_x code (section 5.4.3/5.4.5)
_OSRS = {1: 1, 2: 2, 4: 3, 8: 4, 16: 5}
# IIR filter coefficient -> filter code (section 5.4.6)
_IIR = {0: 0, 2: 1, 4: 2, 8: 3, 16: 4}


def _s16(v):
    return v - 0x10000 if v & 0x8000 else v


def _tdiv(n, d):
    # C integer division truncates toward zero; Python's // floors.
    q = abs(n) // abs(d)
    return q if (n < 0) == (d < 0) else -q


def compensate_t(adc_t, t1, t2, t3):
    """(temperature in 0.01 degC, t_fine) from a 20-bit raw value (BME280 4.2.3)."""
    var1 = (((adc_t >> 3) - (t1 << 1)) * t2) >> 11
    d = (adc_t >> 4) - t1
    var2 = (((d * d) >> 12) * t3) >> 14
    t_fine = var1 + var2
    return (t_fine * 5 + 128) >> 8, t_fine


def compensate_p(adc_p, t_fine, p):
    """Pressure in Pa as Q24.8 (Pa * 256) from a 20-bit raw value; p = (dig_P1..dig_P9).

    Returns 0 when dig_P1 makes the divisor zero (the datasheet's guard against a bad chip).
    """
    var1 = t_fine - 128000
    var2 = var1 * var1 * p[5]
    var2 += (var1 * p[4]) << 17
    var2 += p[3] << 35
    var1 = ((var1 * var1 * p[2]) >> 8) + ((var1 * p[1]) << 12)
    var1 = (((1 << 47) + var1) * p[0]) >> 33
    if var1 == 0:
        return 0
    q = 1048576 - adc_p
    q = _tdiv(((q << 31) - var2) * 3125, var1)
    var1 = (p[8] * (q >> 13) * (q >> 13)) >> 25
    var2 = (p[7] * q) >> 19
    return ((q + var1 + var2) >> 8) + (p[6] << 4)


def compensate_h(adc_h, t_fine, h):
    """Relative humidity as Q22.10 (%RH * 1024) from a 16-bit raw value; h = (dig_H1..dig_H6)."""
    v = t_fine - 76800
    a = (((adc_h << 14) - (h[3] << 20) - (h[4] * v)) + 16384) >> 15
    b = (((((v * h[5]) >> 10) * (((v * h[2]) >> 11) + 32768)) >> 10) + 2097152) * h[1] + 8192
    v = a * (b >> 14)
    v -= ((((v >> 15) * (v >> 15)) >> 7) * h[0]) >> 4
    if v < 0:
        v = 0
    elif v > 419430400:
        v = 419430400
    return v >> 12


class BME280:
    """BME280 in forced mode. Oversampling factors 1, 2, 4, 8 or 16; iir 0 (off) .. 16."""

    QUANTITIES = ("temperature", "humidity", "pressure")
    NAME = "BME280"
    _HUMIDITY = True

    def __init__(self, i2c, address=0x76, temp_os=2, press_os=16, hum_os=1, iir=0):
        self._i2c = i2c
        self._addr = address
        self._what = "%s at 0x%02x" % (self.NAME, address)
        for v in (temp_os, press_os, hum_os):
            if v not in _OSRS:
                raise ValueError(
                    "%s: oversampling must be 1, 2, 4, 8 or 16, got %r" % (self._what, v)
                )
        if iir not in _IIR:
            raise ValueError("%s: iir must be 0, 2, 4, 8 or 16, got %r" % (self._what, iir))
        self._buf = bytearray(8)  # burst read of the data registers, reused for every sample
        self._data = memoryview(self._buf)[: 8 if self._HUMIDITY else 6]
        self._one = bytearray(1)
        self._started = False
        self._check_chip()
        self._one[0] = _RESET_WORD
        i2c.writeto_mem(address, _REG_RESET, self._one)
        time.sleep_ms(2)  # start-up time after reset, section 1 table 1 (2 ms max)
        if not self._wait_status(_STATUS_IM_UPDATE, 10):  # NVM copied to image registers
            # the calibration read now would be whatever the image registers hold
            raise OSError("%s: calibration data not loaded (im_update stays set)" % self._what)
        self._read_calibration()
        # Measurement time, section 9.1: 1.25 + 2.3*T + (2.3*P + 0.575) + (2.3*H + 0.575) ms (max).
        us = 1250 + 2300 * temp_os + 2300 * press_os + 575
        if self._HUMIDITY:
            us += 2300 * hum_os + 575
        self.conversion_ms = (us + 999) // 1000
        # config only takes effect in sleep mode (5.4.6); ctrl_hum only after ctrl_meas (5.4.3).
        self._one[0] = _IIR[iir] << 2
        i2c.writeto_mem(address, _REG_CONFIG, self._one)
        self._hum = _OSRS[hum_os]
        self._meas = (_OSRS[temp_os] << 5) | (_OSRS[press_os] << 2)
        self._one[0] = self._meas  # mode 00: sleep
        i2c.writeto_mem(address, _REG_CTRL_MEAS, self._one)

    def _check_chip(self):
        try:
            self._i2c.readfrom_mem_into(self._addr, _REG_CHIP_ID, self._one)
        except OSError:
            raise OSError("no %s" % self._what)
        if not self._chip_ok(self._one[0]):
            raise OSError("no %s (chip id 0x%02x)" % (self._what, self._one[0]))

    def _chip_ok(self, chip_id):
        return chip_id == CHIP_ID_BME280

    def _read_calibration(self):
        # Once per construction; little-endian words, table 16 (BME280) / table 17 (BMP280).
        c = bytearray(24)
        self._i2c.readfrom_mem_into(self._addr, _REG_CALIB_TP, c)
        w = [c[i] | (c[i + 1] << 8) for i in range(0, 24, 2)]
        self._t = (w[0], _s16(w[1]), _s16(w[2]))
        self._p = (w[3],) + tuple(_s16(x) for x in w[4:12])
        if self._HUMIDITY:
            self._i2c.readfrom_mem_into(self._addr, _REG_CALIB_H1, self._one)
            h1 = self._one[0]
            e = bytearray(7)
            self._i2c.readfrom_mem_into(self._addr, _REG_CALIB_H2, e)
            h4 = (e[3] << 4) | (e[4] & 0x0F)  # 0xE4[11:4] / 0xE5[3:0], signed 12 bit
            h5 = (e[5] << 4) | (e[4] >> 4)  # 0xE6[11:4] / 0xE5[7:4], signed 12 bit
            self._h = (
                h1,
                _s16(e[0] | (e[1] << 8)),
                e[2],
                h4 - 0x1000 if h4 & 0x800 else h4,
                h5 - 0x1000 if h5 & 0x800 else h5,
                e[6] - 0x100 if e[6] & 0x80 else e[6],
            )

    def _wait_status(self, mask, ms):
        for _ in range(ms):
            self._i2c.readfrom_mem_into(self._addr, _REG_STATUS, self._one)
            if not self._one[0] & mask:
                return True
            time.sleep_ms(1)
        return False

    def start(self):
        """Trigger one forced-mode measurement; read() it after conversion_ms."""
        if self._HUMIDITY:
            # Every time: a chip reset since (brown-out) has ctrl_hum 0, humidity skipped for
            # good. It takes effect with the ctrl_meas write that follows (5.4.3).
            self._one[0] = self._hum
            self._i2c.writeto_mem(self._addr, _REG_CTRL_HUM, self._one)
        self._one[0] = self._meas | _MODE_FORCED
        self._i2c.writeto_mem(self._addr, _REG_CTRL_MEAS, self._one)
        self._started = True

    def read(self):
        """{quantity: value} in degC, %RH, hPa. Blocks conversion_ms unless start() came first."""
        if not self._started:
            self.start()
            time.sleep_ms(self.conversion_ms)
        self._started = False
        # Bounded wait in case read() came early: twice the datasheet maximum.
        if not self._wait_status(_STATUS_MEASURING, self.conversion_ms + 2):
            raise NoReadingError("%s: measurement did not finish" % self._what)
        b = self._buf
        self._i2c.readfrom_mem_into(self._addr, _REG_DATA, self._data)
        adc_p = (b[0] << 12) | (b[1] << 4) | (b[2] >> 4)
        adc_t = (b[3] << 12) | (b[4] << 4) | (b[5] >> 4)
        if adc_t == _SKIPPED_20 or adc_p == _SKIPPED_20:
            raise NoReadingError("%s: no measurement in data registers" % self._what)
        t, t_fine = compensate_t(adc_t, self._t[0], self._t[1], self._t[2])
        # operating range: BME280 section 1 table 1, BMP280 table 2
        t = check_range(self._what, t / 100, -40, 85, "degC")
        p = compensate_p(adc_p, t_fine, self._p)
        if p == 0:
            raise NoReadingError("%s: invalid pressure calibration" % self._what)
        hpa = check_range(self._what, round(p / 25600, 2), 300, 1100, "hPa")
        out = {"temperature": t, "pressure": hpa}
        if self._HUMIDITY:
            adc_h = (b[6] << 8) | b[7]
            if adc_h == _SKIPPED_16:
                raise NoReadingError("%s: no humidity measurement" % self._what)
            out["humidity"] = round(compensate_h(adc_h, t_fine, self._h) / 1024, 2)
        return out


class BMP280(BME280):
    """BMP280: as BME280 without humidity (chip id 0x56/0x57/0x58)."""

    QUANTITIES = ("temperature", "pressure")
    NAME = "BMP280"
    _HUMIDITY = False

    def __init__(self, i2c, address=0x76, temp_os=2, press_os=16, iir=0):
        super().__init__(i2c, address, temp_os=temp_os, press_os=press_os, hum_os=1, iir=iir)

    def _chip_ok(self, chip_id):
        return chip_id in CHIP_IDS_BMP280
