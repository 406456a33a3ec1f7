# BME280/BMP280 driver against the BME280 model on the simulated bus.
from driver_util import expect, heap_growth  # first: skips under a 64K heap (see driver_util.py)

import errno
import time

import machine
import simenv
from simdev.bme280 import BME280Model
from sensors import NoReadingError
from sensors.bme280 import BME280, BMP280

simenv.clock.set_speed(0)  # time moves only when we (or sleeps) move it


def bus(model=None):
    i2c = machine.SoftI2C(scl=machine.Pin(5), sda=machine.Pin(17))
    for a in (0x76, 0x77):
        i2c._w.detach(a)
    if model is not None:
        i2c.sim_attach(model)
    return i2c


def test_target_in_same_value_out():
    m = BME280Model(0x76)
    s = BME280(bus(m))
    for t, h, p in (
        (21.53, 45.2, 1013.2),
        (-39.5, 5.0, 300.0),
        (84.0, 99.0, 1100.0),
        (0.0, 50.0, 950.55),
    ):
        m.set(temperature=t, humidity=h, pressure=p)
        r = s.read()
        assert abs(r["temperature"] - t) <= 0.01, (t, r)
        assert abs(r["humidity"] - h) <= 0.05, (h, r)
        assert abs(r["pressure"] - p) <= 0.02, (p, r)
    assert sorted(r) == sorted(BME280.QUANTITIES)


def test_bmp280_has_no_humidity_and_is_identified():
    m = BME280Model(0x77, chip="bmp280")
    m.set(temperature=-12.25, pressure=987.65)
    i2c = bus(m)
    r = BMP280(i2c, address=0x77).read()
    assert sorted(r) == ["pressure", "temperature"], r
    assert abs(r["temperature"] + 12.25) <= 0.01 and abs(r["pressure"] - 987.65) <= 0.02, r
    # a BMP280 is not a BME280, and the other way round
    e = expect(OSError, lambda: BME280(i2c, address=0x77))
    assert str(e).startswith("no BME280 at 0x77"), e
    bus(BME280Model(0x76))
    expect(OSError, lambda: BMP280(i2c, address=0x76))


def test_absent_chip_names_chip_and_address():
    e = expect(OSError, lambda: BME280(bus(), address=0x76))
    assert e.args[0] == "no BME280 at 0x76", e.args
    m = BME280Model(0x76)
    m.fault = "absent"
    e = expect(OSError, lambda: BME280(bus(m)))
    assert e.args[0] == "no BME280 at 0x76", e.args


def test_split_start_then_read_does_not_block():
    m = BME280Model(0x76)
    s = BME280(bus(m), temp_os=1, press_os=1, hum_os=1)
    assert s.conversion_ms == 10, s.conversion_ms  # 1.25 + 2.3 + 2.875 + 2.875 = 9.3 ms, rounded up
    m.set(temperature=30.0)
    s.start()
    t0 = time.ticks_ms()
    simenv.clock.advance(s.conversion_ms)
    r = s.read()
    assert time.ticks_diff(time.ticks_ms(), t0) == s.conversion_ms  # read() itself did not wait
    assert abs(r["temperature"] - 30.0) <= 0.01


def test_nack_mid_transfer_is_oserror_enodev():
    m = BME280Model(0x76)
    s = BME280(bus(m))
    m.fault = "nack"
    assert expect(OSError, s.read).errno == errno.ENODEV
    m.fault = None
    assert "temperature" in s.read()


def test_stuck_bus_is_oserror_etimedout():
    m = BME280Model(0x76)
    i2c = bus(m)
    s = BME280(i2c)
    m.fault = "bus_stuck"
    e = expect(OSError, s.read)
    assert e.errno == errno.ETIMEDOUT, e
    m.fault = None
    i2c._w.stuck = True
    e = expect(OSError, s.read)
    assert e.errno == errno.ETIMEDOUT, e
    i2c._w.stuck = False


def test_measurement_never_finishing_is_no_reading():
    m = BME280Model(0x76)
    s = BME280(bus(m))
    m.fault = "stuck"
    expect(NoReadingError, s.read)


def test_reset_values_in_data_registers_are_no_reading():
    m = BME280Model(0x76)
    s = BME280(bus(m))
    s._started = True  # pretend a conversion was started: the registers still hold reset values
    expect(NoReadingError, s.read)


def test_all_ff_frame_is_no_reading_not_189_degrees():
    for chip, cls in (("bme280", BME280), ("bmp280", BMP280)):
        m = BME280Model(0x76, chip=chip)
        s = cls(bus(m))
        s.start()
        simenv.clock.advance(s.conversion_ms)
        m.read_reg(0xF3)  # the measurement completes into the data registers...
        m.regs[0xF7:0xFF] = b"\xff" * 8  # ...and the frame read back is all ones
        e = expect(NoReadingError, s.read)  # not 189.13 degC, -221 hPa, 100 %RH
        assert "outside" in str(e), e
        m.fault = "ff"  # the chip stops driving SDA altogether: the status reads 0xFF too
        expect(NoReadingError, s.read)
        m.fault = None
        assert abs(s.read()["temperature"] - 21.0) <= 0.01


def test_values_outside_the_operating_range_are_no_reading():
    m = BME280Model(0x76)
    s = BME280(bus(m))
    for t, p in ((85.5, 1000.0), (-40.5, 1000.0), (20.0, 295.0), (20.0, 1105.0)):
        m.set(temperature=t, pressure=p)
        expect(NoReadingError, s.read)
    m.set(temperature=85.0, pressure=1100.0)
    r = s.read()
    assert r["temperature"] == 85.0 and r["pressure"] == 1100.0, r


def test_calibration_that_never_loads_is_oserror():
    m = BME280Model(0x76)
    m.fault = "stuck"  # im_update never clears: the calibration registers stay unloaded
    e = expect(OSError, lambda: BME280(bus(m)))
    assert "calibration" in str(e), e
    m.fault = None
    assert abs(BME280(bus(m)).read()["pressure"] - 1013.25) <= 0.02


def test_recovers_humidity_after_a_brownout():
    m = BME280Model(0x76)
    s = BME280(bus(m))
    assert abs(s.read()["humidity"] - 45.0) <= 0.05
    m.power_cycle()  # ctrl_hum back to 0: humidity skipped until written again
    simenv.clock.advance(2)
    m.set(humidity=60.0)
    for _ in range(3):
        r = s.read()  # the first measurement after the reset is whole again
        assert abs(r["humidity"] - 60.0) <= 0.05, r


def test_bad_oversampling_is_value_error():
    expect(ValueError, lambda: BME280(bus(BME280Model(0x76)), temp_os=3))


def test_1000_reads_keep_the_heap_flat():
    m = BME280Model(0x76)
    grown = heap_growth(BME280(bus(m)))
    print("bme280 heap growth after 1000 reads:", grown)
    assert grown < 512, grown
