# Which interpreter runs the tests, and that it is what it claims: the device twin
# (`make test-twin`) must be 32-bit with float32 like the ESP32, or its figures mean nothing.
import sys


def _twin():
    return getattr(sys.implementation, "_build", "") == "twin"


def test_twin_is_32_bit_with_single_precision_floats():
    if _twin():
        assert sys.maxsize == 2**31 - 1, sys.maxsize
        assert 16777217.0 == 16777216.0  # a 24-bit mantissa
        assert int(float(1795885268)) != 1795885268  # why time on the device is kept in ints
    else:  # the PyPI Unix port: 64-bit, double
        assert sys.maxsize == 2**63 - 1, sys.maxsize
        assert 16777217.0 != 16777216.0


def test_twin_has_the_simulated_board_frozen_in():
    import machine

    frozen = not hasattr(machine, "__file__") or not machine.__file__.startswith("/")
    assert frozen == _twin(), getattr(machine, "__file__", None)
