# Imported first by the driver and simulated-board tests (test_drivers_*, test_simboard_*).
# The simulated board, its device models and the drivers do not fit a 64K test heap together
# (the sim alone takes ~25 KB on the 64-bit Unix port; on the device machine is built in), so
# importing this module under such a heap skips the test, saying why. It must therefore come
# before `import machine` / `import simenv`.
import gc


class SkipTest(Exception):
    pass


if gc.mem_alloc() + gc.mem_free() < 200000:
    raise SkipTest("simulated-board tests need more than a 64K heap")


def expect(exc, fn):
    """The exception of type exc that fn() raises; fails the test if it returns instead."""
    try:
        r = fn()
    except exc as e:
        return e
    raise AssertionError("expected %s, got %r" % (exc.__name__, r))


def heap_growth(drv, reads=1000, step=None):
    """Bytes still allocated after `reads` reads of drv, beyond what one reading holds.

    Each round is step(i) if given, else drv.start() and a clock advance of conversion_ms
    (the node loop's split read), then drv.read(). A driver that allocates only its returned
    dict per read stays near 0.
    """
    import simenv

    r = drv.read()
    gc.collect()
    before = gc.mem_alloc()
    for i in range(reads):
        if step is None:
            drv.start()
            simenv.clock.advance(drv.conversion_ms)
        else:
            step(i)
        r = drv.read()
    del r  # only the returned value was kept; drop it too
    gc.collect()
    return gc.mem_alloc() - before


class ESP32Ticks:
    """The time functions a driver uses, with the ESP32's tick arithmetic on the simulated clock.

    The 64-bit Unix port's ticks_ms() only wraps after 2^62 ms, so a gap of days cannot show a
    wrap bug there. Install this in the driver module under test (driver_ticks(module)): its
    ticks_ms() wraps at 2^30 ms as on the ESP32, ticks_diff() is meaningful only within 2^29 ms,
    and sleeps move the simulated clock as the board's own do.
    """

    PERIOD = 1 << 30
    _MASK = PERIOD - 1
    _HALF = PERIOD >> 1

    def ticks_ms(self):
        import simenv

        return (simenv.clock.uptime_us() // 1000) & self._MASK

    def ticks_add(self, t, delta):
        return (t + delta) & self._MASK

    def ticks_diff(self, a, b):
        return ((a - b + self._HALF) & self._MASK) - self._HALF

    def sleep_ms(self, ms):
        import time

        time.sleep_ms(ms)

    def sleep_us(self, us):
        import time

        time.sleep_us(us)


def driver_ticks(module):
    """Give module (a driver) ESP32 tick arithmetic: module.time = ESP32Ticks()."""
    module.time = ESP32Ticks()
    return module.time
