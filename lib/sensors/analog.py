"""An analog voltage on an ADC pin, e.g. a battery through a resistor divider, calibrated.

Uses ADC.read_uv() (the ESP32 port's eFuse-calibrated reading) averaged over `samples`, then
V = measured * divider * gain + offset. divider is (R_top + R_bottom) / R_bottom; gain and offset
come from calibrate() against a multimeter (one point: gain only; two points: gain and offset).
An input at the attenuation's full scale is clipped: the true voltage is that or more, so read()
raises sensors.NoReadingError instead of returning it (pick a bigger divider or attenuation).

    from sensors.analog import AnalogInput
    bat = AnalogInput(machine.Pin(35), divider=2.0)     # 100k/100k divider
    bat.read()                                          # {"voltage": 4.12}
"""

from micropython import const

from sensors import NoReadingError

_ATTN_DEFAULT = const(3)  # ADC.ATTN_11DB on the ESP32 port: full scale about 3.1 V


class AnalogInput:
    QUANTITIES = ("voltage",)
    NAME = "ADC"
    conversion_ms = 0

    def __init__(self, adc, divider=1.0, gain=1.0, offset=0.0, samples=8, atten=None):
        if not hasattr(adc, "read_u16"):  # a Pin: build the ADC on it
            import machine

            adc = machine.ADC(adc)
            if atten is None:
                atten = getattr(machine.ADC, "ATTN_11DB", _ATTN_DEFAULT)
        if atten is not None and hasattr(adc, "atten"):
            adc.atten(atten)
        if not 1 <= samples <= 64:
            raise ValueError("ADC: samples must be 1..64, got %r" % (samples,))
        if divider <= 0:
            raise ValueError("ADC: divider must be > 0, got %r" % (divider,))
        self._adc = adc
        self._uv = hasattr(adc, "read_uv")
        self.divider = divider
        self.gain = gain
        self.offset = offset
        self.samples = samples

    def start(self):
        """Nothing to start: an ADC read takes microseconds."""

    def measured(self):
        """The averaged voltage at the divider input, before gain/offset (V)."""
        adc = self._adc
        acc = 0
        if self._uv:
            for _ in range(self.samples):
                acc += adc.read_uv()
            return acc / self.samples / 1000000 * self.divider
        for _ in range(self.samples):
            acc += adc.read_u16()
        return acc / self.samples * 3.3 / 65535 * self.divider  # uncalibrated fallback

    def read(self):
        v = self.measured()
        if self._adc.read_u16() >= 65535:  # the converter's top code: clipped
            raise NoReadingError("ADC: input at full scale (clipped), %s V or more" % round(v, 3))
        return {"voltage": round(v * self.gain + self.offset, 3)}

    def calibrate(self, measured1, actual1, measured2=None, actual2=None):
        """Set gain (and offset with two points) from readings of measured() vs a meter."""
        if measured2 is None:
            if measured1 == 0:
                raise ValueError("ADC: cannot calibrate on a 0 V reading")
            self.gain = actual1 / measured1
            self.offset = 0.0
        else:
            if measured1 == measured2:
                raise ValueError("ADC: two calibration points need different readings")
            self.gain = (actual2 - actual1) / (measured2 - measured1)
            self.offset = actual1 - measured1 * self.gain
