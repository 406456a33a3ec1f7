# The lazy registry: make(type, bus_or_pin, **params), TYPES, and that nothing is imported early.
from driver_util import expect  # first: skips under a 64K heap (see driver_util.py)

import sys

import machine
import simenv

simenv.clock.set_speed(0)


def test_importing_the_package_imports_no_driver():
    import sensors

    loaded = [k for k in sys.modules if k.startswith("sensors.") and k != "sensors.crc"]
    assert loaded == [], loaded
    assert sensors.TYPES == (
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


def test_make_imports_only_what_it_builds():
    import sensors
    from simdev.sht import SHT3xModel

    i2c = machine.I2C(0)
    i2c.sim_attach(SHT3xModel(0x45))
    s = sensors.make("sht3x", i2c, address=0x45, repeatability="low")
    assert type(s).__name__ == "SHT3x"
    assert "sensors.sht3x" in sys.modules and "sensors.bme280" not in sys.modules
    assert sorted(s.read()) == ["humidity", "temperature"]


def test_every_type_has_quantities_read_start_and_conversion_ms():
    import sensors

    for t in sensors.TYPES:
        cls = sensors.driver_class(t)
        assert isinstance(cls.QUANTITIES, tuple) and cls.QUANTITIES, t
        assert sensors.quantities(t) == cls.QUANTITIES
        assert hasattr(cls, "read") and hasattr(cls, "start"), t


def test_unknown_type_and_unknown_parameter():
    import sensors

    e = expect(ValueError, lambda: sensors.make("bme680", None))
    assert "bme680" in str(e)
    from simdev.aht20 import AHT20Model

    i2c = machine.I2C(0)
    i2c.sim_attach(AHT20Model())
    expect(TypeError, lambda: sensors.make("aht20", i2c, colour="red"))


def test_make_builds_pin_drivers_from_pins():
    import sensors
    from simdev.ds18b20 import DS18B20Model

    simenv.ow_wires(31).attach(DS18B20Model()).set(temperature=4.5)
    assert sensors.make("ds18b20", machine.Pin(31)).read() == {"temperature": 4.5}
    assert sensors.make("digital", machine.Pin(32), pull="down").read() == {"state": 0}
    assert sensors.make("pulse", machine.Pin(33)).read() == {"count": 0, "total": 0.0}


def test_i2c_scan_names_known_devices():
    from sensors.i2cscan import scan, describe
    from simdev.bme280 import BME280Model
    from simdev.bh1750 import BH1750Model

    i2c = machine.SoftI2C(scl=machine.Pin(2), sda=machine.Pin(3))
    i2c.sim_attach(BME280Model(0x76))
    i2c.sim_attach(BME280Model(0x77, chip="bmp280"))
    i2c.sim_attach(BH1750Model(0x5C))
    from simdev.sht import SHT3xModel, SHT4xModel

    i2c.sim_attach(SHT3xModel(0x44))
    i2c.sim_attach(SHT4xModel(0x45))
    assert scan(i2c)[:2] == [(0x44, "SHT3x", "sht3x"), (0x45, "SHT4x", "sht4x")], scan(i2c)
    i2c._w.detach(0x44)
    i2c._w.detach(0x45)
    assert scan(i2c) == [
        (0x5C, "BH1750", "bh1750"),
        (0x76, "BME280", "bme280"),
        (0x77, "BMP280", "bmp280"),
    ]
    assert describe(i2c)[1] == "0x76 BME280 (bme280)"
