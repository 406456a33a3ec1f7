"""Scan an I2C bus and name the devices we know.

Addresses are shared between chips, so where a chip id register exists it is read to tell them
apart (0x76/0x77: BME280 0x60, BMP280 0x56..0x58, BME680 0x61 at register 0xD0), and at
0x44/0x45 an SHT4x is told from an SHT3x by the command each answers. Each entry says which
sensors.TYPES name would drive it, or None.

    from sensors.i2cscan import scan
    scan(i2c)    # [(0x23, "BH1750", "bh1750"), (0x76, "BME280", "bme280")]
"""

# address -> (name, type) for chips without a readable id at that address
_KNOWN = {
    0x23: ("BH1750", "bh1750"),
    0x5C: ("BH1750", "bh1750"),
    0x38: ("AHT20", "aht20"),
    0x44: ("SHT3x/SHT4x", None),
    0x45: ("SHT3x/SHT4x", None),
    0x46: ("SHT4x", "sht4x"),
    0x3C: ("SSD1306 display", None),
    0x3D: ("SSD1306 display", None),
    0x68: ("DS3231/MPU6050", None),
    0x57: ("AT24C32 EEPROM", None),
    0x40: ("INA219/HTU21D/Si7021", None),
    0x5A: ("CCS811/MLX90614", None),
    0x29: ("VL53L0X/TSL2591", None),
    0x39: ("TSL2561/APDS9960", None),
}

_BOSCH = {
    0x60: ("BME280", "bme280"),
    0x56: ("BMP280", "bmp280"),
    0x57: ("BMP280", "bmp280"),
    0x58: ("BMP280", "bmp280"),
    0x61: ("BME680", None),
    0x55: ("BMP180", None),
}


def _sensirion(i2c, addr, cmd, n):
    # Send a command, wait 10 ms (what Sensirion's drivers allow the SHT4x serial number
    # command), read n bytes and check the first word's CRC: True if it all worked.
    import time

    from sensors.crc import crc8_sensirion

    buf = bytearray(n)
    try:
        i2c.writeto(addr, cmd)
        time.sleep_ms(10)
        i2c.readfrom_into(addr, buf)
    except OSError:
        return False
    return crc8_sensirion(buf, 0, 2) == buf[2]


def identify(i2c, addr):
    """(name, type or None) for one address; ("unknown", None) if we do not know it."""
    if addr in (0x44, 0x45):
        # SHT4x answers its serial number command (0x89, SHT4x 4.5) with CRC-checked words;
        # SHT3x answers the status register command (0xF32D, SHT3x 4.11).
        if _sensirion(i2c, addr, b"\x89", 6):
            return ("SHT4x", "sht4x")
        if _sensirion(i2c, addr, b"\xf3\x2d", 3):
            return ("SHT3x", "sht3x")
        return _KNOWN[addr]
    if addr in (0x76, 0x77):
        buf = bytearray(1)
        try:
            i2c.readfrom_mem_into(addr, 0xD0, buf)  # Bosch chip id register
        except OSError:
            return ("Bosch sensor?", None)
        return _BOSCH.get(buf[0], ("unknown chip id 0x%02x" % buf[0], None))
    return _KNOWN.get(addr, ("unknown", None))


def scan(i2c):
    """[(address, name, type or None), ...] for every address that ACKs."""
    return [(a,) + identify(i2c, a) for a in i2c.scan()]


def describe(i2c):
    """One line per device, e.g. "0x76 BME280 (bme280)"."""
    return ["0x%02x %s%s" % (a, n, " (%s)" % t if t else "") for a, n, t in scan(i2c)]
