"""Scan an I2C bus and name the devices we know.

Addresses are shared between chips, so where a chip id register exists it is read to tell them
apart (0x76/0x77: BME280 0x60, BMP280 0x56..0x58, BME680 0x61 at register 0xD0). Each entry
says which sensors.TYPES name would drive it, or None.

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


def identify(i2c, addr):
    """(name, type or None) for one address; ("unknown", None) if we do not know it."""
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
