"""DS18B20 model, bit by bit as on the wire (datasheet "1-Wire bus system", "ROM commands",
"Function commands"): presence pulse, Search ROM (bit, complement, direction), Match/Skip/Read
ROM, Convert T (read slots 0 until done), Read/Write/Copy Scratchpad with CRC.

Faults: absent (no presence), crc (scratchpad CRC wrong), stuck (conversion never finishes),
frozen (temperature register never updated), reset85 (scratchpad reads the 85 degC power-on
value, as after a brown-out), bus_low (data line shorted: every bit reads 0).
power_cycle() is a brown-out: the scratchpad comes back as at power-up.
"""

from simdev.base import Model, crc8_maxim

# resolution code (config bits 6..5) -> conversion time us (table 2)
_CONV_US = (93750, 187500, 375000, 750000)
_n = [0]


def make_rom(serial=None):
    if serial is None:
        _n[0] += 1
        serial = 0x03161B4AFF00 + _n[0] * 0x0101
    b = bytearray(8)
    b[0] = 0x28
    for i in range(6):
        b[1 + i] = (serial >> (8 * i)) & 0xFF
    b[7] = crc8_maxim(b[:7])
    return bytes(b)


class DS18B20Model(Model):
    NAME = "DS18B20"

    def __init__(self, rom=None):
        super().__init__()
        if isinstance(rom, str):
            rom = bytes(int(rom[i : i + 2], 16) for i in range(0, 16, 2))
        self.rom = rom or make_rom()
        self.values = {"temperature": 21.0}
        self.sp = bytearray(b"\x50\x05\x4b\x46\x7f\xff\x0c\x10\x00")  # power-on scratchpad
        self.eeprom = bytes(self.sp[2:5])
        self.conv_done_us = None
        self.conversions = 0
        self.state = "idle"
        self._bits = 0
        self._n = 0
        self._out = None
        self._outn = 0

    def power_cycle(self):
        """Power lost and back (a brown-out): TH, TL and the configuration register are reloaded
        from EEPROM and the temperature register reads +85 degC (datasheet "Power-up", table 1);
        a conversion in progress is lost."""
        self.sp[0] = 0x50
        self.sp[1] = 0x05
        self.sp[2:5] = self.eeprom
        self.conv_done_us = None
        self.state = "idle"

    # -- bus side ----------------------------------------------------------------------------
    def reset(self):
        """Reset pulse; returns True for a presence pulse."""
        self._finish_conversion()
        if self.active_fault() == "absent":
            self.state = "idle"
            return False
        self.state = "rom"
        self._bits = self._n = 0
        return True

    def write_bit(self, b):
        st = self.state
        if st in ("rom", "func", "match", "writesp"):
            self._bits |= (b & 1) << self._n
            self._n += 1
            if st == "match":
                if (b & 1) != (self.rom[(self._n - 1) >> 3] >> ((self._n - 1) & 7)) & 1:
                    self.state = "idle"
                elif self._n == 64:
                    self._enter("func")
            elif st == "writesp" and self._n == 24:
                self.sp[2] = self._bits & 0xFF
                self.sp[3] = (self._bits >> 8) & 0xFF
                self.sp[4] = 0x1F | ((self._bits >> 16) & 0x60)  # only R1 R0 are writable
                self.state = "idle"
            elif self._n == 8 and st in ("rom", "func"):
                cmd = self._bits
                self._command(cmd) if st == "func" else self._rom_command(cmd)
        elif st == "search":
            if self._n % 3 == 2:  # the master's direction bit
                i = self._n // 3
                if (b & 1) != (self.rom[i >> 3] >> (i & 7)) & 1:
                    self.state = "idle"
                    return
                self._n += 1
                if self._n == 192:
                    self._enter("func")

    def read_bit(self):
        st = self.state
        if st == "search":
            i = self._n // 3
            bit = (self.rom[i >> 3] >> (i & 7)) & 1
            phase = self._n % 3
            if phase == 2:
                return 1  # a read where a write is expected: not driving
            self._n += 1
            return bit if phase == 0 else bit ^ 1
        if st == "out":
            if self._outn >= len(self._out) * 8:
                return 1
            i = self._outn
            self._outn += 1
            return (self._out[i >> 3] >> (i & 7)) & 1
        if st == "convert":
            return 1 if self._finish_conversion() else 0
        if st == "power":
            return 1  # externally powered
        return 1

    # -- commands ----------------------------------------------------------------------------
    def _enter(self, st):
        self.state = st
        self._bits = self._n = 0

    def _rom_command(self, cmd):
        if cmd == 0xCC:
            self._enter("func")
        elif cmd == 0x55:
            self._enter("match")
        elif cmd == 0xF0:
            self._enter("search")
        elif cmd == 0x33:
            self._send(self.rom)
        else:
            self.state = "idle"

    def _command(self, cmd):
        if cmd == 0x44:
            res = (self.sp[4] >> 5) & 3
            self.conv_done_us = self.now_us() + _CONV_US[res]
            self.state = "convert"
        elif cmd == 0xBE:
            self._finish_conversion()
            sp = bytearray(self.sp)
            sp[8] = crc8_maxim(sp[:8])
            if self.active_fault() == "crc":
                sp[8] ^= 0x5A
            self._send(sp)
        elif cmd == 0x4E:
            self._enter("writesp")
        elif cmd == 0x48:
            self.eeprom = bytes(self.sp[2:5])
            self.state = "idle"
        elif cmd == 0xB8:
            self.sp[2:5] = self.eeprom
            self.state = "idle"
        elif cmd == 0xB4:
            self.state = "power"
        else:
            self.state = "idle"

    def _send(self, data):
        self._out = bytes(data)
        self._outn = 0
        self.state = "out"

    def _finish_conversion(self):
        """True once the conversion is done (updating the scratchpad the first time)."""
        if self.conv_done_us is None:
            return True
        f = self.active_fault()
        if self.now_us() < self.conv_done_us or f == "stuck":
            return False
        self.conv_done_us = None
        self.conversions += 1
        if f == "reset85":
            raw = 0x0550
        elif f == "frozen" and self.conversions > 1:
            return True
        else:
            res = (self.sp[4] >> 5) & 3
            raw = round(self.value("temperature") * 16) & 0xFFFF
            raw &= 0xFFFF & ~((1 << (3 - res)) - 1)  # undefined low bits read 0 here
        self.sp[0] = raw & 0xFF
        self.sp[1] = raw >> 8
        return True
