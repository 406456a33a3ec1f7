"""onewire as the ESP32 firmware has it (OneWire(pin): reset, readbit/readbyte/readinto,
writebit/writebyte/write, select_rom, scan, crc8; OneWireError), over the simulated 1-Wire
wires of that pin: every device model on the pin sees each slot; reads are the wired AND."""

import simenv

MATCH_ROM = 0x55
SKIP_ROM = 0xCC
SEARCH_ROM = 0xF0


class OneWireError(Exception):
    pass


class OneWire:
    SEARCH_ROM = SEARCH_ROM
    MATCH_ROM = MATCH_ROM
    SKIP_ROM = SKIP_ROM

    def __init__(self, pin):
        self.pin = pin
        pin.init(pin.OPEN_DRAIN, pin.PULL_UP)
        self._w = simenv.ow_wires(pin._id)

    def _low(self):
        return any(d.active_fault() == "bus_low" for d in self._w.devices)

    def reset(self, required=False):
        simenv.clock.advance_us(960)  # reset + presence: 480 us low, 480 us wait
        present = False
        for d in self._w.devices:
            if d.reset():
                present = True
        if self._low():
            present = True  # a shorted line looks like a presence pulse
        if required and not present:
            raise OneWireError
        return present

    def readbit(self):
        bit = 1
        for d in self._w.devices:
            bit &= d.read_bit()
        return 0 if self._low() else bit

    def readbyte(self):
        v = 0
        for i in range(8):
            v |= self.readbit() << i
        return v

    def readinto(self, buf):
        for i in range(len(buf)):
            buf[i] = self.readbyte()

    def writebit(self, value):
        for d in self._w.devices:
            d.write_bit(value & 1)

    def writebyte(self, value):
        for i in range(8):
            self.writebit((value >> i) & 1)

    def write(self, buf):
        for b in buf:
            self.writebyte(b)

    def select_rom(self, rom):
        self.reset()
        self.writebyte(MATCH_ROM)
        self.write(rom)

    def scan(self):
        """ROM ids (bytearray(8)) of every device, by the Search ROM binary tree walk."""
        found = []
        last_branch = -1
        rom = bytearray(8)
        for _ in range(64):  # bounded: at most one pass per device, 64 is plenty
            if not self.reset():
                return found
            self.writebyte(SEARCH_ROM)
            branch = -1
            for i in range(64):
                b = self.readbit()
                c = self.readbit()
                if b and c:
                    return found  # nobody answered
                if b != c:
                    d = b
                elif i == last_branch:
                    d = 1  # the 0 path was taken last time
                elif i > last_branch:
                    d = 0
                else:
                    d = (rom[i >> 3] >> (i & 7)) & 1
                if not b and not c and d == 0:
                    branch = i
                if d:
                    rom[i >> 3] |= 1 << (i & 7)
                else:
                    rom[i >> 3] &= ~(1 << (i & 7))
                self.writebit(d)
            found.append(bytearray(rom))
            last_branch = branch
            if last_branch < 0:
                break
        return found

    def crc8(self, data):
        # The firmware's OneWire.crc8 is the Dallas/Maxim CRC the simulated chips compute too.
        from simdev.base import crc8_maxim

        return crc8_maxim(data)
