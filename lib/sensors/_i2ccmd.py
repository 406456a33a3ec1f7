"""Base for I2C sensors driven by plain commands: write a command, wait, read a fixed frame.

SHT3x, SHT4x and BH1750 all measure the same way: write a measurement command of one or two
bytes (no register address), wait the conversion time, then read a fixed-size answer. This
class holds that shared part (the start()/read() split of the sensors interface); a driver
supplies its command sizes, its measurement command and conversion time, and ``_decode(buf)``
which checks and converts the frame into the returned dict. Buffers are allocated once here.

    class BH1750(I2CCommandSensor):
        def __init__(self, i2c, address=0x23):
            super().__init__(i2c, address, 1, 2, 0x20, 180)
        def _decode(self, b):
            return {"illuminance": ((b[0] << 8) | b[1]) / 1.2}
"""

import time


class I2CCommandSensor:
    NAME: str  # set by every driver; names the chip in error messages

    def __init__(self, i2c, address, cmd_len, buf_len, meas_cmd, conversion_ms):
        self._i2c = i2c
        self._addr = address
        self._what = "%s at 0x%02x" % (self.NAME, address)
        self._cmd = bytearray(cmd_len)  # 1 or 2 bytes, big-endian
        self._buf = bytearray(buf_len)
        self._meas = meas_cmd
        self.conversion_ms = conversion_ms
        self._started = False

    def _command(self, cmd):
        c = self._cmd
        # Big-endian into a 1- or 2-byte buffer: with one byte the second store (index -1)
        # overwrites the first, leaving cmd & 0xFF.
        c[0] = cmd >> 8
        c[-1] = cmd & 0xFF
        self._i2c.writeto(self._addr, c)

    def _decode(self, b):
        raise NotImplementedError

    def start(self):
        """Trigger one measurement; read() it after conversion_ms."""
        self._command(self._meas)
        self._started = True

    def read(self):
        """{quantity: value}; blocks conversion_ms unless start() came first."""
        if not self._started:
            self.start()
            time.sleep_ms(self.conversion_ms)
        self._started = False
        b = self._buf
        self._i2c.readfrom_into(self._addr, b)
        return self._decode(b)
