# What a test needs from the interpreter, said once. The device twin (`make test-twin`) is built
# from a MicroPython source without mbedTLS, so it has no `ssl`; a TLS test there skips and says
# why instead of failing (the ESP32 firmware has ssl; the Unix port runs these tests).


class SkipTest(Exception):
    pass


def ssl():
    """Skip the calling test when this interpreter has no `ssl` module."""
    try:
        import ssl  # noqa: F401
    except ImportError:
        raise SkipTest("no ssl in this interpreter (the device twin is built without mbedTLS)")
