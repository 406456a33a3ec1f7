"""Maxim DS18B20 1-Wire temperature sensors, several on one bus, through the firmware's onewire.

Each DS18B20 is addressed by its 64-bit ROM id (family 0x28, datasheet "64-bit lasered ROM
code"); with a single sensor on the bus the ROM may be left out. Scratchpad reads are CRC
checked (datasheet "CRC generation"); the power-on value 0x0550 (+85 degC, datasheet table 1 and
"Power-up" note) means no conversion happened and raises sensors.NoReadingError, never 85, as
does a value outside the -55..+125 degC range. A sensor whose configuration register no longer
holds our resolution was reset (a brown-out reloads it from EEPROM): read() writes the
resolution again and raises NoReadingError for that sample.
Resolution 9..12 bits sets the conversion time (93.75 .. 750 ms, table 2), so use the split:

    import onewire
    from sensors.ds18b20 import DS18B20, scan, start_all
    ow = onewire.OneWire(machine.Pin(4))
    sensors = [DS18B20(ow, rom) for rom in scan(ow)]
    start_all(ow)                          # every sensor converts at once (Skip ROM + 0x44)
    time.sleep_ms(750)                     # or come back later from the node loop
    [s.read() for s in sensors]            # [{"temperature": 21.5}, ...]
"""

import time
from micropython import const

from sensors import NoReadingError, check_range
from sensors.crc import CRCError, crc8_maxim

FAMILY = const(0x28)
_CMD_MATCH_ROM = const(0x55)
_CMD_SKIP_ROM = const(0xCC)
_CMD_CONVERT_T = const(0x44)
_CMD_READ_SCRATCH = const(0xBE)
_CMD_WRITE_SCRATCH = const(0x4E)
_POWER_ON_RAW = const(0x0550)  # +85 degC

# resolution bits -> (config register R1R0 pattern, max conversion ms), datasheet figure 10/table 2
_RES = {9: (0x1F, 94), 10: (0x3F, 188), 11: (0x5F, 375), 12: (0x7F, 750)}


def rom_bytes(rom):
    """A ROM id as 8 bytes, from bytes/bytearray or a 16-digit hex string (family byte first)."""
    if isinstance(rom, str):
        if len(rom) != 16:
            raise ValueError("DS18B20 ROM must be 16 hex digits, got %r" % (rom,))
        b = bytearray(8)
        for i in range(8):
            b[i] = int(rom[2 * i : 2 * i + 2], 16)
        rom = b
    if len(rom) != 8:
        raise ValueError("DS18B20 ROM must be 8 bytes, got %r" % (rom,))
    if rom[0] != FAMILY:
        raise ValueError("not a DS18B20 ROM (family 0x%02x): %s" % (rom[0], rom_hex(rom)))
    if crc8_maxim(rom) != 0:
        raise CRCError("DS18B20 ROM CRC mismatch: %s" % rom_hex(rom))
    return bytes(rom)


def rom_hex(rom):
    return "".join("%02x" % b for b in rom)


def scan(ow):
    """ROM ids (bytes) of the DS18B20s on the bus (family 0x28, valid CRC)."""
    return [bytes(r) for r in ow.scan() if r[0] == FAMILY and crc8_maxim(r) == 0]


def start_all(ow):
    """Start a conversion on every sensor of the bus at once (Skip ROM, Convert T)."""
    if not ow.reset():
        raise OSError("no 1-Wire device answers (no presence pulse)")
    ow.writebyte(_CMD_SKIP_ROM)
    ow.writebyte(_CMD_CONVERT_T)


def decode(raw, resolution=12):
    """degC from the 16-bit two's complement temperature register (table 1: LSB = 1/16 degC).

    Bits below the resolution are undefined (datasheet "Operation - measuring temperature")
    and are masked. Raises NoReadingError for 0x0550, the power-on value.
    """
    if raw == _POWER_ON_RAW:
        raise NoReadingError("DS18B20: 85 degC power-on value, no conversion done")
    raw &= 0xFFFF & ~((1 << (12 - resolution)) - 1)
    if raw & 0x8000:
        raw -= 0x10000
    return raw / 16


class DS18B20:
    QUANTITIES = ("temperature",)
    NAME = "DS18B20"

    def __init__(self, ow, rom=None, resolution=12, parasite=False):
        if resolution not in _RES:
            raise ValueError("DS18B20: resolution must be 9..12 bits, got %r" % (resolution,))
        if not hasattr(ow, "select_rom"):  # a machine.Pin: wrap it in the firmware's OneWire
            import onewire

            ow = onewire.OneWire(ow)
        self._ow = ow
        if rom is None:
            roms = scan(ow)
            if len(roms) != 1:
                raise OSError(
                    "%d DS18B20 on the bus: give the rom of the one to read" % len(roms)
                    if roms
                    else "no DS18B20 on the 1-Wire bus"
                )
            rom = roms[0]
        self.rom = rom_bytes(rom)
        self._what = "DS18B20 %s" % rom_hex(self.rom)
        self.resolution = resolution
        self.parasite = parasite  # parasite-powered sensors cannot signal "done" (see read())
        self.conversion_ms = _RES[resolution][1]
        self._buf = bytearray(9)
        self._cfg = bytearray(3)
        self._started = False
        self._cfgbyte = _RES[resolution][0]
        self._read_scratchpad()  # presence and CRC
        if self._buf[4] != self._cfgbyte:
            self._configure()
            self._read_scratchpad()
            if self._buf[4] != self._cfgbyte:
                raise OSError(
                    "%s: resolution not accepted (config 0x%02x)" % (self._what, self._buf[4])
                )

    def _configure(self):
        # Write TH, TL (kept, from the scratchpad just read) and the config register; not
        # copied to EEPROM (no wear), so a power-on reset brings back the EEPROM resolution.
        self._cfg[0] = self._buf[2]
        self._cfg[1] = self._buf[3]
        self._cfg[2] = self._cfgbyte
        self._select()
        self._ow.writebyte(_CMD_WRITE_SCRATCH)
        self._ow.write(self._cfg)

    def _select(self):
        if not self._ow.reset():
            raise OSError("no %s (no presence pulse)" % self._what)
        self._ow.writebyte(_CMD_MATCH_ROM)
        self._ow.write(self.rom)

    def _read_scratchpad(self):
        self._select()
        self._ow.writebyte(_CMD_READ_SCRATCH)
        b = self._buf
        self._ow.readinto(b)
        ff = 0
        for i in range(9):
            if b[i] == 0xFF:
                ff += 1
        if ff == 9:
            raise OSError("no %s (no answer)" % self._what)
        if crc8_maxim(b, 0, 8) != b[8]:
            raise CRCError("%s: scratchpad CRC mismatch" % self._what)
        if b[4] & 0x9F != 0x1F:
            # Config register bits 0..4 read 1 and bit 7 reads 0 (figure 10): anything else
            # (an all-zero scratchpad has a valid CRC!) is a bus held low, not a reading.
            raise OSError("%s: implausible scratchpad (config 0x%02x)" % (self._what, b[4]))
        return b

    def start(self):
        """Start a conversion on this sensor; read() it after conversion_ms."""
        self._select()
        self._ow.writebyte(_CMD_CONVERT_T)
        self._started = True

    def read(self):
        """{"temperature": degC}; blocks until the conversion is done (at most conversion_ms
        + 10 %) unless start() (or start_all + mark_started) came first."""
        if self._started:
            self._started = False  # one start, one read, whatever happens next
        else:
            self.start()
            self._started = False  # a conversion that does not finish is not pending after
            if not self._wait_conversion():
                self._read_scratchpad()
                self._check_config()  # a reset sensor converts at 12 bits: slower than ours
                raise NoReadingError("%s: conversion did not finish" % self._what)
        b = self._read_scratchpad()
        self._check_config()
        try:
            t = decode(b[0] | (b[1] << 8), self.resolution)
        except NoReadingError:
            raise NoReadingError("%s: 85 degC power-on value, no conversion done" % self._what)
        check_range(self._what, t, -55, 125, "degC")  # measuring range, datasheet "Features"
        return {"temperature": t}

    def _check_config(self):
        # The scratchpad just read must still hold our resolution. If not, the sensor was reset
        # since we configured it (a brown-out reloads the EEPROM's): its temperature register
        # is the power-on value or a conversion at another resolution. Restore ours and say so.
        b = self._buf
        if b[4] != self._cfgbyte:
            self._configure()
            raise NoReadingError(
                "%s: sensor was reset (config 0x%02x), resolution restored" % (self._what, b[4])
            )

    def _wait_conversion(self):
        # An externally powered DS18B20 answers read slots with 0 while converting and 1 when
        # done (datasheet "CONVERT T [44h]"): poll in 10 ms steps, bounded by the table 2
        # maximum + 10 %, so a conversion that never ends is an error, never a stale value.
        # Returns False if it did not finish.
        if self.parasite:
            time.sleep_ms(self.conversion_ms)
            return True
        limit = self.conversion_ms + self.conversion_ms // 10 + 10
        waited = 0
        while not self._ow.readbit():
            if waited >= limit:
                return False
            time.sleep_ms(10)
            waited += 10
        return True

    def mark_started(self):
        """Tell this sensor a conversion was started for it by start_all()."""
        self._started = True
