# SHT3x, SHT4x, AHT20, BH1750 drivers against their models; faults give documented errors.
from driver_util import expect, heap_growth  # first: skips under a 64K heap (see driver_util.py)

import errno
import time

import machine
import simenv
from simdev.sht import SHT3xModel, SHT4xModel
from simdev.aht20 import AHT20Model
from simdev.bh1750 import BH1750Model
from sensors import NoReadingError
from sensors.crc import CRCError
from sensors.sht3x import SHT3x
from sensors.sht4x import SHT4x
from sensors.aht20 import AHT20
from sensors.bh1750 import BH1750
from sensors import i2cscan

simenv.clock.set_speed(0)


def bus(model=None):
    i2c = machine.SoftI2C(scl=machine.Pin(13), sda=machine.Pin(14))
    i2c._w.devices = []
    i2c._w.stuck = False
    if model is not None:
        i2c.sim_attach(model)
    return i2c


def chips():
    """Fresh models of the four I2C chips with their driver classes (pass model.address)."""
    return (
        (SHT3xModel(0x44), SHT3x),
        (SHT4xModel(0x45), SHT4x),  # SHT40-B address: a non-default one is covered too
        (AHT20Model(), AHT20),
        (BH1750Model(), BH1750),
    )


def roundtrip(model, drv, cases, tol):
    for vals in cases:
        model.set(**vals)
        r = drv.read()
        for q, v in vals.items():
            assert abs(r[q] - v) <= tol[q], (q, v, r)
        assert sorted(r) == sorted(drv.QUANTITIES), r


def test_sht3x_target_in_same_value_out():
    m = SHT3xModel(0x44)
    s = SHT3x(bus(m))
    roundtrip(
        m,
        s,
        (
            {"temperature": 21.53, "humidity": 45.2},
            {"temperature": -40.0, "humidity": 0.5},
            {"temperature": 124.9, "humidity": 99.99},
        ),
        {"temperature": 0.01, "humidity": 0.01},
    )


def test_sht4x_target_in_same_value_out():
    m = SHT4xModel(0x44)
    s = SHT4x(bus(m))
    assert s.serial == m.serial
    roundtrip(
        m,
        s,
        (
            {"temperature": 21.53, "humidity": 45.2},
            {"temperature": -40.0, "humidity": 0.0},
            {"temperature": 124.9, "humidity": 100.0},
        ),
        {"temperature": 0.01, "humidity": 0.01},
    )


def test_aht20_target_in_same_value_out_and_calibrates():
    m = AHT20Model()
    s = AHT20(bus(m))
    assert m.calibrated  # the driver sent 0xBE 0x08 0x00 to an uncalibrated chip
    roundtrip(
        m,
        s,
        (
            {"temperature": 21.53, "humidity": 45.2},
            {"temperature": -39.99, "humidity": 1.0},
            {"temperature": 84.5, "humidity": 99.9},
        ),
        {"temperature": 0.01, "humidity": 0.01},
    )


def test_bh1750_target_in_same_value_out():
    m = BH1750Model()
    for mode, res in (("high", 0.84), ("high2", 0.42), ("low", 0.84)):
        s = BH1750(bus(m), mode=mode)
        roundtrip(
            m,
            s,
            ({"illuminance": 0.0}, {"illuminance": 321.4}, {"illuminance": 27000.0}),
            {"illuminance": res},
        )
    s = BH1750(bus(m), mtreg=254)  # longer integration: finer counts
    assert s.conversion_ms == 663, s.conversion_ms  # 180 ms * 254 / 69, rounded up
    roundtrip(m, s, ({"illuminance": 12.34},), {"illuminance": 0.23})


def test_absent_chips_are_named():
    for cls, name, addr in (
        (SHT3x, "SHT3x", 0x44),
        (SHT4x, "SHT4x", 0x44),
        (AHT20, "AHT20", 0x38),
        (BH1750, "BH1750", 0x23),
    ):
        e = expect(OSError, lambda c=cls, a=addr: c(bus(), address=a))
        assert e.args[0] == "no %s at 0x%02x" % (name, addr), e.args


def test_sht3x_and_sht4x_do_not_pass_for_each_other():
    expect(OSError, lambda: SHT3x(bus(SHT4xModel(0x44))))
    expect(OSError, lambda: SHT4x(bus(SHT3xModel(0x44))))


def test_crc_corruption_raises_crc_error():
    for model, cls in ((SHT3xModel(0x44), SHT3x), (SHT4xModel(0x44), SHT4x), (AHT20Model(), AHT20)):
        s = cls(bus(model))
        model.fault = "crc"
        expect(CRCError, s.read)
        model.fault = None
        s.read()


def test_crc_corruption_at_construction_raises_crc_error():
    m = SHT3xModel(0x44)
    m.fault = "crc"
    expect(CRCError, lambda: SHT3x(bus(m)))


def test_nack_mid_transfer_and_stuck_bus_are_oserrors():
    for model, cls in chips():
        s = cls(bus(model), address=model.address)
        model.fault = "nack"
        assert expect(OSError, s.read).errno == errno.ENODEV
        model.fault = "bus_stuck"
        assert expect(OSError, s.read).errno == errno.ETIMEDOUT
        model.fault = None
        s._started = False
        s.read()


def test_measurement_never_finishing():
    # SHT NACKs its read header while measuring; AHT20 stays busy
    for model, cls in ((SHT3xModel(0x44), SHT3x), (SHT4xModel(0x44), SHT4x)):
        s = cls(bus(model))
        model.fault = "stuck"
        assert expect(OSError, s.read).errno == errno.ENODEV
    m = AHT20Model()
    s = AHT20(bus(m))
    m.fault = "stuck"
    expect(NoReadingError, s.read)


def test_sht_read_too_early_is_enodev_not_a_number():
    m = SHT3xModel(0x44)
    s = SHT3x(bus(m))
    s.start()
    assert expect(OSError, s.read).errno == errno.ENODEV


def test_split_reads_do_not_wait():
    for model, cls in chips():
        s = cls(bus(model), address=model.address)
        s.start()
        simenv.clock.advance(s.conversion_ms)
        t0 = time.ticks_ms()
        s.read()
        assert time.ticks_diff(time.ticks_ms(), t0) == 0, cls


def test_sht4x_gives_its_serial_number_command_10_ms():
    m = SHT4xModel(0x44)  # NACKs a read of the serial number for 10 ms, as Sensirion allows
    s = SHT4x(bus(m))
    assert s.serial == 0x0E5B7C21
    i2c = bus(m)
    assert i2cscan.identify(i2c, 0x44) == ("SHT4x", "sht4x")


def test_aht20_waits_40_ms_after_power_on():
    m = AHT20Model()  # powered on just now: no answer for 40 ms
    assert AHT20(bus(m)).read()["temperature"] == 21.0
    m.power_cycle(calibrated=True)
    assert AHT20(bus(m)).read()["humidity"] == 45.0


def test_aht20_that_stays_uncalibrated_after_init_is_oserror():
    m = AHT20Model()
    m.fault = "nocal"
    e = expect(OSError, lambda: AHT20(bus(m)))
    assert "not calibrated" in str(e), e


def test_aht20_reset_between_reads_is_no_reading_then_initialised_again():
    m = AHT20Model()
    s = AHT20(bus(m))
    assert s.read()["temperature"] == 21.0
    m.power_cycle()  # a brown-out: the calibrated bit comes back clear
    simenv.clock.advance(40)
    m.set(temperature=30.0)
    e = expect(NoReadingError, s.read)
    assert "not calibrated" in str(e), e
    assert m.calibrated
    simenv.clock.advance(10)
    assert s.read()["temperature"] == 30.0


def test_temperatures_outside_the_datasheet_range_are_no_reading():
    for model, cls, lo, hi in (
        (SHT3xModel(0x44), SHT3x, -40, 125),
        (SHT4xModel(0x44), SHT4x, -40, 125),
        (AHT20Model(), AHT20, -40, 85),
    ):
        s = cls(bus(model))
        for t in (lo - 1, hi + 1):  # the raw words reach -45..130 (AHT20: -50..150)
            model.set(temperature=t)
            e = expect(NoReadingError, s.read)
            assert "outside" in str(e), (cls.NAME, t, e)
        for t in (lo, hi):
            model.set(temperature=t)
            assert s.read()["temperature"] == t, (cls.NAME, t)


def test_a_chip_reading_all_ones_never_gives_a_number():
    # The chip ACKs but no longer drives SDA: every byte is 0xFF. CRCs catch it on the
    # Sensirion chips, the busy bit on the AHT20, the full-scale count on the BH1750.
    for model, cls in chips():
        s = cls(bus(model), address=model.address)
        model.fault = "ff"
        e = expect(ValueError, s.read)  # CRCError or NoReadingError
        print(cls.NAME, repr(e))
        model.fault = None
        s.read()


def test_bh1750_saturated_count_is_no_reading():
    m = BH1750Model()
    s = BH1750(bus(m))
    m.set(illuminance=100000.0)  # direct sun: beyond the default range
    expect(NoReadingError, s.read)
    s = BH1750(bus(m), mtreg=31)  # the shortest integration reaches it
    assert abs(s.read()["illuminance"] - 100000.0) < 2.5


def test_bad_arguments_are_value_errors():
    expect(ValueError, lambda: SHT3x(bus(SHT3xModel(0x44)), repeatability="ultra"))
    expect(ValueError, lambda: SHT4x(bus(SHT4xModel(0x44)), precision="x"))
    expect(ValueError, lambda: BH1750(bus(BH1750Model()), mtreg=300))


def test_1000_reads_keep_the_heap_flat():
    for model, cls in chips():
        grown = heap_growth(cls(bus(model), address=model.address))
        print(cls.NAME, "heap growth after 1000 reads:", grown)
        assert grown < 512, (cls.NAME, grown)
