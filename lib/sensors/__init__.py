"""Sensor drivers over machine.I2C / Pin / ADC, and a lazy registry to build them by name.

Every driver takes its bus or pin (micropython-lib style) and shares one small interface:

* ``QUANTITIES``: class attribute, a tuple of the quantity names ``read()`` returns, from
  ``temperature`` (degC), ``humidity`` (%RH), ``pressure`` (hPa), ``illuminance`` (lx),
  ``voltage`` (V), ``state`` (0/1), ``count`` and ``total`` (pulses, pulses * scale).
* ``read()``: a dict ``{quantity: value}``. Without a start() first it triggers, waits about
  ``conversion_ms`` (bounded: at most the datasheet maximum plus a small margin) and reads.
* ``start()`` / ``conversion_ms``: the non-blocking split. ``start()`` triggers a measurement
  and returns at once; after ``conversion_ms`` milliseconds ``read()`` returns that measurement
  without waiting. Drivers with nothing to wait for have ``conversion_ms = 0`` and a
  ``start()`` that does nothing, so the node loop can treat all sensors alike.

Errors: a missing chip or wrong chip id raises ``OSError("no BME280 at 0x76")``; bus errors
surface as ``OSError`` (ENODEV on NACK, ETIMEDOUT on a stuck bus); a CRC/checksum failure
raises ``sensors.crc.CRCError`` (a ValueError); a value the chip reports that is not a
measurement (DS18B20 85 degC power-on value, BME280 "skipped" value, busy forever, a value
outside the chip's datasheet operating range) raises ``sensors.NoReadingError`` (a ValueError).
A driver never returns a number it cannot vouch for, nor an earlier reading as a new one.

    from sensors import make
    s = make("bme280", i2c, address=0x76)
    s.start()                      # returns at once
    ...                            # >= s.conversion_ms later:
    s.read()                       # {"temperature": 21.53, "humidity": 45.2, "pressure": 1013.2}
"""

TYPES = (
    "bme280",
    "bmp280",
    "sht3x",
    "sht4x",
    "aht20",
    "bh1750",
    "ds18b20",
    "dht22",
    "adc",
    "digital",
    "pulse",
)

# type name -> (module, class); imported only when make() asks for it (STYLE 7).
_REGISTRY = {
    "bme280": ("bme280", "BME280"),
    "bmp280": ("bme280", "BMP280"),
    "sht3x": ("sht3x", "SHT3x"),
    "sht4x": ("sht4x", "SHT4x"),
    "aht20": ("aht20", "AHT20"),
    "bh1750": ("bh1750", "BH1750"),
    "ds18b20": ("ds18b20", "DS18B20"),
    "dht22": ("dht22", "DHT22"),
    "adc": ("analog", "AnalogInput"),
    "digital": ("digital", "DigitalInput"),
    "pulse": ("digital", "PulseCounter"),
}


class NoReadingError(ValueError):
    """The sensor answered, but with a value that is not a measurement."""


def check_range(what, v, lo, hi, unit):
    """v if lo <= v <= hi (the chip's datasheet operating range), else NoReadingError: a
    driver never returns a number its chip cannot measure."""
    if lo <= v <= hi:
        return v
    raise NoReadingError("%s: %s %s is outside %s..%s" % (what, v, unit, lo, hi))


def driver_class(type_name):
    """The driver class for a type name from TYPES, importing only its module."""
    try:
        mod, cls = _REGISTRY[type_name]
    except KeyError:
        raise ValueError("unknown sensor type %r (known: %s)" % (type_name, ", ".join(TYPES)))
    m = __import__("sensors." + mod, None, None, (cls,))
    return getattr(m, cls)


def make(type_name, bus_or_pin, **params):
    """Build a driver by type name: make("sht3x", i2c, address=0x45).

    bus_or_pin is a machine.I2C for the I2C chips, a machine.Pin (or onewire.OneWire) for
    ds18b20, a Pin for dht22/digital/pulse, and a Pin or machine.ADC for adc. Unknown
    parameters raise TypeError from the driver's constructor.
    """
    return driver_class(type_name)(bus_or_pin, **params)


def quantities(type_name):
    """What a type's read() returns, e.g. quantities("sht3x") -> ("temperature", "humidity")."""
    return driver_class(type_name).QUANTITIES
