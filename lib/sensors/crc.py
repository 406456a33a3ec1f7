"""CRC-8 checks used by the sensor drivers, and the error they raise.

Two CRC-8 flavours occur on the sensors we support:

* Sensirion (SHT3x datasheet section 4.12, SHT4x section 4.4, AHT20 section 5.4 step 4):
  polynomial 0x31 (x^8 + x^5 + x^4 + 1), initial value 0xFF, no reflection, no final XOR.
  Datasheet example: CRC(0xBE, 0xEF) = 0x92.
* Maxim/Dallas 1-Wire (DS18B20 datasheet, "CRC generation"): the same polynomial, reflected
  (0x8C), initial value 0, LSB first. A ROM id or scratchpad followed by its CRC byte
  checks to 0.

    from sensors.crc import crc8_sensirion, CRCError
    if crc8_sensirion(buf, 0, 2) != buf[2]:
        raise CRCError("SHT3x at 0x44: temperature CRC")
"""


class CRCError(ValueError):
    """A checksum or CRC over data read from a sensor did not match."""


def crc8_sensirion(buf, start=0, end=None):
    """CRC-8 (poly 0x31, init 0xFF) over buf[start:end], without slicing."""
    if end is None:
        end = len(buf)
    crc = 0xFF
    for i in range(start, end):
        crc ^= buf[i]
        for _ in range(8):
            if crc & 0x80:
                crc = ((crc << 1) ^ 0x31) & 0xFF
            else:
                crc = (crc << 1) & 0xFF
    return crc


def crc8_maxim(buf, start=0, end=None):
    """Dallas/Maxim 1-Wire CRC-8 (reflected poly 0x8C, init 0) over buf[start:end]."""
    if end is None:
        end = len(buf)
    crc = 0
    for i in range(start, end):
        b = buf[i]
        for _ in range(8):
            mix = (crc ^ b) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
            b >>= 1
    return crc


def check_words(buf, nwords, what):
    """Check Sensirion 2-byte words each followed by its CRC byte: buf[0:3], buf[3:6], ...

    Raises CRCError naming `what` (e.g. "SHT3x at 0x44") and the word index on a mismatch.
    """
    for w in range(nwords):
        i = w * 3
        if crc8_sensirion(buf, i, i + 2) != buf[i + 2]:
            raise CRCError("%s: CRC mismatch in word %d" % (what, w))
