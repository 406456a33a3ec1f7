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
